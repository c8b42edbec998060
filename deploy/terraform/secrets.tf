# TLS material in Secrets Manager, encrypted with the cluster key. The module
# creates the secrets but never their values, so no certificate or private key
# passes through Terraform state, images or user data: the operator's PKI
# writes them with `aws secretsmanager put-secret-value`, and each node reads
# its own at boot and every hour after (certificate rotation without restarts).
#
# - <cluster>/ca: {"ca_pem": "...", "client_ca_pem": "..."}; client_ca_pem only
#   with tls_separate_client_ca (client certificates from another CA)
# - <cluster>/node-<id>/tls: {"cert_pem": "...", "key_pem": "..."} for node <id>,
#   a certificate with the URI SAN urn:safekeep:node:<id> and the DNS SANs
#   peer.safekeep.internal and the load balancer's name (output client_endpoint).
#
# Encryption at rest needs no secret: each node's KMS key provider wraps its
# tenant data keys with the cluster key (node.toml: [encryption] kms_key_id).

resource "aws_secretsmanager_secret" "ca" {
  #checkov:skip=CKV2_AWS_57:The CA bundle is public material issued by the operator's PKI; it changes only when that PKI re-issues it (put-secret-value), which no rotation function here can do.
  name                    = "safekeep/${var.name}/ca"
  description             = "safekeep ${var.name}: CA certificates nodes trust (JSON: ca_pem, and client_ca_pem with a separate client CA)"
  kms_key_id              = aws_kms_key.this.arn
  recovery_window_in_days = var.tls_secret_recovery_window_days

  tags = local.common_tags
}

resource "aws_secretsmanager_secret" "node_tls" {
  #checkov:skip=CKV2_AWS_57:Node certificates are issued by the operator's PKI and rotated by writing a new version (put-secret-value); nodes download it hourly and reload without a restart. A Secrets Manager rotation function cannot issue certificates from that CA.
  for_each = local.slots

  name                    = "safekeep/${var.name}/node-${each.value.node_id}/tls"
  description             = "safekeep ${var.name}: TLS certificate and key of node ${each.value.node_id} (slot ${each.key}; JSON: cert_pem, key_pem)"
  kms_key_id              = aws_kms_key.this.arn
  recovery_window_in_days = var.tls_secret_recovery_window_days

  tags = merge(local.common_tags, {
    "safekeep:slot"    = each.key
    "safekeep:node-id" = tostring(each.value.node_id)
  })
}
