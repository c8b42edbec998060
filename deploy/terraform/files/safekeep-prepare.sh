#!/usr/bin/env bash
# safekeep-prepare: readies an Amazon Linux 2023 instance of the deploy/terraform
# module for its node slot. Reads the slot's identity from /etc/safekeep/slot.conf
# (identifiers only; secrets come from Secrets Manager at run time).
#
#   safekeep-prepare boot   install the release binary (SHA-256 checked), attach
#                           the slot's network interface and data volume, mount
#                           it (formatting only a blank volume, and only for a
#                           node id never claimed before), download the TLS files,
#                           start the CloudWatch agent
#   safekeep-prepare tls    download the TLS files again (certificate rotation)
#
# Every step is idempotent: the node unit's AWS drop-in runs `boot` before every
# start of the node, and the hourly safekeep-tls-refresh timer runs `tls`.
# Every wait is bounded; on failure the unit retries the start.
set -euo pipefail

readonly SLOT_CONF=/etc/safekeep/slot.conf
readonly NODE_BINARY=/usr/local/bin/safekeep-node
readonly NODE_USER=safekeep
readonly CW_AGENT_CTL=/opt/aws/amazon-cloudwatch-agent/bin/amazon-cloudwatch-agent-ctl
# Attach retries: a volume or interface still held by a terminating instance frees up within minutes.
readonly ATTACH_ATTEMPTS=60
readonly ATTACH_WAIT_SECONDS=5
# Waits for the attached device or address to appear on this instance.
readonly APPEAR_ATTEMPTS=60
readonly APPEAR_WAIT_SECONDS=2
# Download retries of the release binary and the package install.
readonly DOWNLOAD_ATTEMPTS=5
readonly DOWNLOAD_WAIT_SECONDS=10
readonly IMDS=http://169.254.169.254
readonly IMDS_TOKEN_TTL_SECONDS=300

# shellcheck source=/dev/null
. "$SLOT_CONF"

log() {
  printf '%s safekeep-prepare[slot %s node %s]: %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" \
    "$SAFEKEEP_SLOT" "$SAFEKEEP_NODE_ID" "$*" | tee -a "$SAFEKEEP_PREPARE_LOG" >&2
}

die() {
  log "FATAL: $*"
  exit 1
}

aws_cli() {
  aws --region "$SAFEKEEP_REGION" "$@"
}

instance_id() {
  local token
  token=$(curl -fsS -X PUT "$IMDS/latest/api/token" \
    -H "X-aws-ec2-metadata-token-ttl-seconds: $IMDS_TOKEN_TTL_SECONDS")
  curl -fsS -H "X-aws-ec2-metadata-token: $token" "$IMDS/latest/meta-data/instance-id"
}

install_release() {
  if [ -x "$NODE_BINARY" ] && printf '%s  %s\n' "$SAFEKEEP_RELEASE_SHA256" "$NODE_BINARY" | sha256sum --check --status; then
    log "release binary already installed"
    return
  fi
  local tmp attempt
  tmp=$(mktemp)
  for attempt in $(seq 1 "$DOWNLOAD_ATTEMPTS"); do
    case "$SAFEKEEP_RELEASE_URL" in
      s3://*) aws_cli s3 cp --only-show-errors "$SAFEKEEP_RELEASE_URL" "$tmp" && break ;;
      https://*) curl -fsSL --proto '=https' --tlsv1.2 -o "$tmp" "$SAFEKEEP_RELEASE_URL" && break ;;
      *) die "release URL must be s3:// or https://" ;;
    esac
    log "release download failed (attempt $attempt of $DOWNLOAD_ATTEMPTS)"
    sleep "$DOWNLOAD_WAIT_SECONDS"
  done
  if ! printf '%s  %s\n' "$SAFEKEEP_RELEASE_SHA256" "$tmp" | sha256sum --check --status; then
    rm -f "$tmp"
    die "release binary does not match SHA-256 $SAFEKEEP_RELEASE_SHA256; refusing to install it"
  fi
  install -m 0755 -o root -g root "$tmp" "$NODE_BINARY"
  rm -f "$tmp"
  log "installed release binary $SAFEKEEP_RELEASE_SHA256"
}

ensure_user() {
  if ! id -u "$NODE_USER" >/dev/null 2>&1; then
    useradd --system --no-create-home --shell /usr/sbin/nologin "$NODE_USER"
    log "created user $NODE_USER"
  fi
}

# attach_network_interface INSTANCE_ID: attach the slot's interface (its fixed address) here.
attach_network_interface() {
  local instance="$1" attempt status owner
  for attempt in $(seq 1 "$ATTACH_ATTEMPTS"); do
    read -r status owner < <(aws_cli ec2 describe-network-interfaces \
      --network-interface-ids "$SAFEKEEP_ENI_ID" \
      --query 'NetworkInterfaces[0].[Status, Attachment.InstanceId]' --output text)
    if [ "$owner" = "$instance" ]; then
      log "network interface $SAFEKEEP_ENI_ID attached"
      return
    fi
    if [ "$status" = "available" ]; then
      aws_cli ec2 attach-network-interface --instance-id "$instance" \
        --network-interface-id "$SAFEKEEP_ENI_ID" --device-index "$SAFEKEEP_ENI_DEVICE_INDEX" >/dev/null ||
        log "attach of network interface failed; retrying"
    else
      log "network interface $SAFEKEEP_ENI_ID is $status (held by $owner); waiting (attempt $attempt of $ATTACH_ATTEMPTS)"
    fi
    sleep "$ATTACH_WAIT_SECONDS"
  done
  die "network interface $SAFEKEEP_ENI_ID did not attach"
}

wait_for_address() {
  local attempt
  for attempt in $(seq 1 "$APPEAR_ATTEMPTS"); do
    if ip -o -4 addr show | grep -q " inet $SAFEKEEP_ENI_IP/"; then
      log "address $SAFEKEEP_ENI_IP is up"
      return
    fi
    sleep "$APPEAR_WAIT_SECONDS"
  done
  die "address $SAFEKEEP_ENI_IP did not come up (attempt $attempt)"
}

# attach_volume INSTANCE_ID: attach the slot's data volume here.
attach_volume() {
  local instance="$1" attempt state owner
  for attempt in $(seq 1 "$ATTACH_ATTEMPTS"); do
    read -r state owner < <(aws_cli ec2 describe-volumes --volume-ids "$SAFEKEEP_VOLUME_ID" \
      --query 'Volumes[0].[State, Attachments[0].InstanceId]' --output text)
    if [ "$owner" = "$instance" ]; then
      log "data volume $SAFEKEEP_VOLUME_ID attached"
      return
    fi
    if [ "$state" = "available" ]; then
      aws_cli ec2 attach-volume --instance-id "$instance" --volume-id "$SAFEKEEP_VOLUME_ID" \
        --device "$SAFEKEEP_VOLUME_DEVICE" >/dev/null || log "attach of data volume failed; retrying"
    else
      log "data volume $SAFEKEEP_VOLUME_ID is $state (held by $owner); waiting (attempt $attempt of $ATTACH_ATTEMPTS)"
    fi
    sleep "$ATTACH_WAIT_SECONDS"
  done
  die "data volume $SAFEKEEP_VOLUME_ID did not attach"
}

# The NVMe device of the data volume: its serial number is the volume id without the dash.
volume_device() {
  local attempt path
  path="/dev/disk/by-id/nvme-Amazon_Elastic_Block_Store_${SAFEKEEP_VOLUME_ID//-/}"
  for attempt in $(seq 1 "$APPEAR_ATTEMPTS"); do
    if [ -b "$path" ]; then
      readlink -f "$path"
      return
    fi
    sleep "$APPEAR_WAIT_SECONDS"
  done
  die "device of data volume $SAFEKEEP_VOLUME_ID did not appear (attempt $attempt)"
}

# A blank volume may only become node $SAFEKEEP_NODE_ID if that id was never
# claimed: a reused id would let a node with an empty disk vote as a member
# that once held data. Raising the slot's generation gives it a fresh id.
claim_node_id() {
  local instance="$1" claims claim
  if ! claims=$(aws_cli s3api list-objects-v2 --bucket "$SAFEKEEP_BACKUP_BUCKET" \
    --prefix "$SAFEKEEP_IDENTITY_CLAIM_KEY" --query KeyCount --output text); then
    die "cannot check whether node id $SAFEKEEP_NODE_ID was claimed before; not formatting"
  fi
  if [ "$claims" != "0" ]; then
    die "node id $SAFEKEEP_NODE_ID was claimed before (s3://$SAFEKEEP_BACKUP_BUCKET/$SAFEKEEP_IDENTITY_CLAIM_KEY) but its data volume is blank; raise node_generations[\"$SAFEKEEP_SLOT\"] to give slot $SAFEKEEP_SLOT a fresh node id"
  fi
  claim=$(mktemp)
  printf '{"cluster":"%s","slot":%s,"node_id":%s,"generation":%s,"volume_id":"%s","instance_id":"%s","claimed_at":"%s"}\n' \
    "$SAFEKEEP_CLUSTER" "$SAFEKEEP_SLOT" "$SAFEKEEP_NODE_ID" "$SAFEKEEP_GENERATION" "$SAFEKEEP_VOLUME_ID" \
    "$instance" "$(date -u +%Y-%m-%dT%H:%M:%SZ)" >"$claim"
  aws_cli s3 cp --only-show-errors "$claim" "s3://$SAFEKEEP_BACKUP_BUCKET/$SAFEKEEP_IDENTITY_CLAIM_KEY"
  rm -f "$claim"
  log "claimed node id $SAFEKEEP_NODE_ID"
}

mount_data_volume() {
  local instance="$1" device
  device=$(volume_device)
  if ! blkid -p "$device" >/dev/null 2>&1; then
    claim_node_id "$instance"
    log "formatting blank data volume $SAFEKEEP_VOLUME_ID ($device)"
    mkfs.xfs -q -L safekeep-data "$device"
  fi
  mkdir -p "$SAFEKEEP_DATA_MOUNT"
  if ! mountpoint -q "$SAFEKEEP_DATA_MOUNT"; then
    mount -o noatime "$device" "$SAFEKEEP_DATA_MOUNT"
    log "mounted $device on $SAFEKEEP_DATA_MOUNT"
  fi
  mkdir -p "$SAFEKEEP_DATA_DIR"
  chown "$NODE_USER:$NODE_USER" "$SAFEKEEP_DATA_MOUNT" "$SAFEKEEP_DATA_DIR"
  chmod 0700 "$SAFEKEEP_DATA_MOUNT" "$SAFEKEEP_DATA_DIR"
}

# write_secret_field SECRET_ARN FIELD FILE: write one JSON field of a secret to
# FILE (owner safekeep, mode 600), replacing it atomically so the node's reload
# never reads half a file.
write_secret_field() {
  local arn="$1" field="$2" file="$3" tmp
  tmp=$(mktemp "$SAFEKEEP_TLS_DIR/.download.XXXXXX")
  if ! aws_cli secretsmanager get-secret-value --secret-id "$arn" --query SecretString --output text |
    python3 -c 'import json, sys
value = json.load(sys.stdin).get(sys.argv[1])
if not value:
    sys.exit(3)
sys.stdout.write(value)' "$field" >"$tmp"; then
    rm -f "$tmp"
    die "secret $arn has no field $field yet: write it with aws secretsmanager put-secret-value"
  fi
  chown "$NODE_USER:$NODE_USER" "$tmp"
  chmod 0600 "$tmp"
  mv -f "$tmp" "$file"
}

fetch_tls() {
  install -d -m 0750 -o root -g "$NODE_USER" "$SAFEKEEP_TLS_DIR"
  write_secret_field "$SAFEKEEP_TLS_SECRET_ARN" cert_pem "$SAFEKEEP_TLS_DIR/node.pem"
  write_secret_field "$SAFEKEEP_TLS_SECRET_ARN" key_pem "$SAFEKEEP_TLS_DIR/node.key"
  write_secret_field "$SAFEKEEP_CA_SECRET_ARN" ca_pem "$SAFEKEEP_TLS_DIR/ca.pem"
  if [ "$SAFEKEEP_TLS_CLIENT_CA" = "true" ]; then
    write_secret_field "$SAFEKEEP_CA_SECRET_ARN" client_ca_pem "$SAFEKEEP_TLS_DIR/client-ca.pem"
  fi
  log "TLS files downloaded"
}

start_cloudwatch_agent() {
  local attempt
  if [ ! -x "$CW_AGENT_CTL" ]; then
    for attempt in $(seq 1 "$DOWNLOAD_ATTEMPTS"); do
      dnf install -y -q amazon-cloudwatch-agent && break
      log "installing the CloudWatch agent failed (attempt $attempt of $DOWNLOAD_ATTEMPTS)"
      sleep "$DOWNLOAD_WAIT_SECONDS"
    done
  fi
  # Shipping logs must not keep the node from serving: warn, and try again at the next start.
  if [ ! -x "$CW_AGENT_CTL" ]; then
    log "WARNING: the CloudWatch agent is not installed; logs and metrics stay on this instance"
    return
  fi
  if "$CW_AGENT_CTL" -a fetch-config -m ec2 -s -c "file:$SAFEKEEP_CW_AGENT_CONFIG" >/dev/null; then
    log "CloudWatch agent running"
  else
    log "WARNING: the CloudWatch agent did not start; logs and metrics stay on this instance"
  fi
}

main() {
  install -d -m 0755 "$(dirname "$SAFEKEEP_NODE_LOG")"
  case "${1:-}" in
    boot)
      local instance
      instance=$(instance_id)
      log "preparing instance $instance (generation $SAFEKEEP_GENERATION)"
      ensure_user
      start_cloudwatch_agent
      install_release
      attach_network_interface "$instance"
      wait_for_address
      attach_volume "$instance"
      mount_data_volume "$instance"
      fetch_tls
      log "ready: safekeep-node may start"
      ;;
    tls)
      fetch_tls
      ;;
    *)
      echo "usage: safekeep-prepare boot|tls" >&2
      exit 2
      ;;
  esac
}

main "$@"
