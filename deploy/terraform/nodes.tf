# Node slots. Each slot is pinned to one availability zone and owns:
# - a network interface with a fixed private IP: the node's peer and client
#   address, which Raft membership stores, so a replacement instance comes
#   back at the same address;
# - a persistent gp3 data volume, KMS-encrypted, never deleted when the
#   instance is replaced (a final snapshot is kept if Terraform deletes it);
# - a launch template (IMDSv2 only, no public IP, encrypted root volume) whose
#   user data carries only the slot's identity and configuration, never a
#   secret;
# - an Auto Scaling group of exactly one instance in that zone, which
#   terminates a failed instance before launching its replacement (the volume
#   and interface attach to one instance at a time).
# Before each start of safekeep-node, safekeep-prepare (files/safekeep-prepare.sh,
# run by the unit's AWS drop-in) installs the release binary, attaches the
# slot's interface and volume, downloads the TLS files and starts the CloudWatch
# agent.
#
# A slot's node id changes only when its generation (node_generations) is
# raised: that replaces the slot's volume, TLS secret and Auto Scaling group
# together, and the new node joins the running cluster.

locals {
  # Where the boot script attaches the slot's data volume and interface.
  data_volume_device = "/dev/sdf"
  eni_device_index   = 1
  # Seconds a new instance gets to boot and join before EC2 health checks count.
  health_check_grace_seconds = 600
  # Most samples the agent accepts from one scrape of /metrics, and the longest a scrape may take.
  metrics_sample_limit               = 10000
  metrics_scrape_timeout_max_seconds = 10

  ami_ssm_parameter = "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-${var.instance_architecture}"

  # Paths on the node (files/ and templates/ write them).
  config_dir  = "/etc/safekeep"
  data_mount  = "/var/lib/safekeep"
  data_dir    = "/var/lib/safekeep/data"
  tls_dir     = "/etc/safekeep/tls"
  node_log    = "/var/log/safekeep/node.log"
  prepare_log = "/var/log/safekeep/prepare.log"
}

data "aws_ssm_parameter" "ami" {
  count = var.ami_id == null ? 1 : 0

  name = local.ami_ssm_parameter
}

# A slot's identity: changing it (a raised generation) replaces everything
# that belongs to the old node id.
resource "terraform_data" "identity" {
  for_each = local.slots

  input = {
    slot    = each.key
    node_id = each.value.node_id
  }
}

resource "aws_network_interface" "node" {
  for_each = local.slots

  subnet_id       = each.value.subnet_id
  security_groups = [aws_security_group.node.id]
  description     = "safekeep ${var.name}: fixed address of node slot ${each.key}"

  tags = merge(local.common_tags, {
    Name            = "${var.name}-slot-${each.key}"
    "safekeep:slot" = each.key
  })
}

resource "aws_ebs_volume" "data" {
  for_each = local.slots

  availability_zone = each.value.zone
  type              = "gp3"
  size              = var.data_volume_size_gib
  iops              = var.data_volume_iops
  throughput        = var.data_volume_throughput_mibps
  encrypted         = true
  kms_key_id        = aws_kms_key.this.arn
  final_snapshot    = true

  tags = merge(local.common_tags, {
    Name               = "${var.name}-data-node-${each.value.node_id}"
    "safekeep:slot"    = each.key
    "safekeep:node-id" = tostring(each.value.node_id)
    "safekeep:role"    = "data"
  })

  lifecycle {
    replace_triggered_by = [terraform_data.identity[each.key]]
  }
}

# ---------------------------------------------------------------- boot configuration

locals {
  node_toml = {
    for key, slot in local.slots : key => templatefile("${path.module}/templates/node.toml.tftpl", {
      cluster         = var.name
      slot            = key
      node_id         = slot.node_id
      zone            = slot.zone
      data_dir        = local.data_dir
      address         = local.slot_addresses[key]
      client_port     = var.client_port
      peer_port       = var.peer_port
      http_port       = var.http_port
      bootstrap       = slot.bootstrap
      initial_members = local.initial_members
      # Any other slot's peer address to join through (the lowest-numbered one).
      join_address = "${local.slot_addresses[[for other in keys(local.slots) : other if other != key][0]]}:${var.peer_port}"
      tls_dir      = local.tls_dir
      client_ca    = var.tls_separate_client_ca
      kms_key_arn  = aws_kms_key.this.arn
      region       = local.region
      backup_url   = "s3://${aws_s3_bucket.backups.id}/${trimsuffix(local.backup_prefix_root, "/")}"
      backup_days  = var.backup_retention_days
    })
  }

  slot_conf = {
    for key, slot in local.slots : key => templatefile("${path.module}/templates/slot.conf.tftpl", {
      cluster            = var.name
      slot               = key
      node_id            = slot.node_id
      region             = local.region
      volume_id          = aws_ebs_volume.data[key].id
      volume_device      = local.data_volume_device
      eni_id             = aws_network_interface.node[key].id
      eni_ip             = local.slot_addresses[key]
      eni_device_index   = local.eni_device_index
      data_mount         = local.data_mount
      data_dir           = local.data_dir
      tls_dir            = local.tls_dir
      tls_secret_arn     = aws_secretsmanager_secret.node_tls[key].arn
      ca_secret_arn      = aws_secretsmanager_secret.ca.arn
      client_ca          = var.tls_separate_client_ca
      release_url        = var.release_url
      release_sha256     = var.release_sha256
      backup_bucket      = aws_s3_bucket.backups.id
      identity_claim_key = "${local.identity_prefix_root}${slot.node_id}.json"
      cw_agent_config    = "${local.config_dir}/amazon-cloudwatch-agent.json"
      node_log           = local.node_log
      prepare_log        = local.prepare_log
      generation         = slot.generation
    })
  }

  cw_agent_config = {
    for key, slot in local.slots : key => jsonencode({
      agent = {
        run_as_user = "root"
      }
      logs = {
        logs_collected = {
          files = {
            collect_list = [
              {
                file_path       = local.node_log
                log_group_name  = aws_cloudwatch_log_group.node.name
                log_stream_name = "node-${slot.node_id}-{instance_id}"
                timezone        = "UTC"
              },
              {
                file_path       = local.prepare_log
                log_group_name  = aws_cloudwatch_log_group.node.name
                log_stream_name = "prepare-node-${slot.node_id}-{instance_id}"
                timezone        = "UTC"
              },
            ]
          }
        }
        metrics_collected = {
          prometheus = {
            log_group_name         = aws_cloudwatch_log_group.metrics.name
            prometheus_config_path = "${local.config_dir}/prometheus.yaml"
            emf_processor = {
              metric_declaration_dedup = true
              metric_namespace         = var.metrics_namespace
              metric_declaration = [
                {
                  source_labels    = ["job"]
                  label_matcher    = "^safekeep$"
                  dimensions       = [["cluster"], ["cluster", "node_id"]]
                  metric_selectors = local.scraped_node_metrics
                },
                {
                  source_labels    = ["job"]
                  label_matcher    = "^safekeep$"
                  dimensions       = [["cluster", "peer"]]
                  metric_selectors = ["^safekeep_raft_follower_lag_entries$"]
                },
              ]
            }
          }
        }
      }
    })
  }

  prometheus_config = {
    for key, slot in local.slots : key => yamlencode({
      global = {
        scrape_interval = "${var.metrics_scrape_interval_seconds}s"
        scrape_timeout  = "${min(local.metrics_scrape_timeout_max_seconds, var.metrics_scrape_interval_seconds)}s"
      }
      scrape_configs = [
        {
          job_name     = "safekeep"
          metrics_path = "/metrics"
          sample_limit = local.metrics_sample_limit
          static_configs = [
            {
              targets = ["${local.slot_addresses[key]}:${var.http_port}"]
              labels = {
                cluster = var.name
                node_id = tostring(slot.node_id)
                zone    = slot.zone
              }
            },
          ]
        },
      ]
    })
  }
}

data "cloudinit_config" "node" {
  for_each = local.slots

  gzip          = true
  base64_encode = true

  part {
    content_type = "text/cloud-config"
    filename     = "safekeep.yaml"
    content = join("\n", ["#cloud-config", yamlencode({
      write_files = [
        { path = "/etc/systemd/system/safekeep-node.service", permissions = "0644", content = file("${path.module}/files/safekeep-node.service") },
        { path = "/etc/systemd/system/safekeep-node.service.d/10-aws.conf", permissions = "0644", content = file("${path.module}/files/safekeep-node-aws.conf") },
        { path = "/etc/systemd/system/safekeep-tls-refresh.service", permissions = "0644", content = file("${path.module}/files/safekeep-tls-refresh.service") },
        { path = "/etc/systemd/system/safekeep-tls-refresh.timer", permissions = "0644", content = file("${path.module}/files/safekeep-tls-refresh.timer") },
        { path = "/etc/logrotate.d/safekeep", permissions = "0644", content = file("${path.module}/files/logrotate-safekeep") },
        { path = "/usr/local/sbin/safekeep-prepare", permissions = "0755", content = file("${path.module}/files/safekeep-prepare.sh") },
        { path = "${local.config_dir}/slot.conf", permissions = "0644", content = local.slot_conf[each.key] },
        { path = "${local.config_dir}/node.toml", permissions = "0644", content = local.node_toml[each.key] },
        { path = "${local.config_dir}/amazon-cloudwatch-agent.json", permissions = "0644", content = local.cw_agent_config[each.key] },
        { path = "${local.config_dir}/prometheus.yaml", permissions = "0644", content = local.prometheus_config[each.key] },
      ]
      runcmd = [
        ["systemctl", "daemon-reload"],
        ["systemctl", "enable", "safekeep-node.service", "safekeep-tls-refresh.timer"],
        ["systemctl", "start", "--no-block", "safekeep-node.service", "safekeep-tls-refresh.timer"],
      ]
    })])
  }
}

# ---------------------------------------------------------------- instances

resource "aws_launch_template" "node" {
  for_each = local.slots

  name_prefix            = "${var.name}-slot-${each.key}-"
  description            = "safekeep ${var.name}: node slot ${each.key} in ${each.value.zone}"
  image_id               = var.ami_id != null ? var.ami_id : nonsensitive(data.aws_ssm_parameter.ami[0].value)
  instance_type          = var.instance_type
  ebs_optimized          = true
  update_default_version = true
  user_data              = data.cloudinit_config.node[each.key].rendered

  iam_instance_profile {
    arn = aws_iam_instance_profile.node[each.key].arn
  }

  metadata_options {
    http_endpoint               = "enabled"
    http_tokens                 = "required"
    http_put_response_hop_limit = 1
    instance_metadata_tags      = "disabled"
  }

  monitoring {
    enabled = true
  }

  network_interfaces {
    device_index                = 0
    associate_public_ip_address = false
    delete_on_termination       = true
    security_groups             = [aws_security_group.node.id]
  }

  block_device_mappings {
    device_name = "/dev/xvda"

    ebs {
      volume_type           = "gp3"
      volume_size           = var.root_volume_size_gib
      encrypted             = true
      kms_key_id            = aws_kms_key.this.arn
      delete_on_termination = true
    }
  }

  tag_specifications {
    resource_type = "instance"
    tags = merge(local.common_tags, {
      Name               = "${var.name}-node-${each.value.node_id}"
      "safekeep:slot"    = each.key
      "safekeep:node-id" = tostring(each.value.node_id)
    })
  }

  tag_specifications {
    resource_type = "volume"
    tags = merge(local.common_tags, {
      Name               = "${var.name}-root-node-${each.value.node_id}"
      "safekeep:node-id" = tostring(each.value.node_id)
      "safekeep:role"    = "root"
    })
  }

  tags = merge(local.common_tags, { "safekeep:slot" = each.key })
}

resource "aws_autoscaling_group" "node" {
  for_each = local.slots

  name                      = "${var.name}-slot-${each.key}"
  min_size                  = 1
  max_size                  = 1
  desired_capacity          = 1
  vpc_zone_identifier       = [each.value.subnet_id]
  health_check_type         = "EC2"
  health_check_grace_period = local.health_check_grace_seconds
  capacity_rebalance        = false
  wait_for_capacity_timeout = "0"

  launch_template {
    id      = aws_launch_template.node[each.key].id
    version = aws_launch_template.node[each.key].latest_version
  }

  # Terminate first, then launch: the slot's volume and interface attach to one instance at a time.
  instance_maintenance_policy {
    min_healthy_percentage = 0
    max_healthy_percentage = 100
  }

  dynamic "tag" {
    for_each = merge(local.common_tags, {
      "safekeep:slot"    = each.key
      "safekeep:node-id" = tostring(each.value.node_id)
    })

    content {
      key                 = tag.key
      value               = tag.value
      propagate_at_launch = true
    }
  }

  lifecycle {
    replace_triggered_by = [terraform_data.identity[each.key]]

    precondition {
      condition     = length(distinct(local.zones)) >= local.min_zones && length(distinct(local.zones)) == length(local.zones)
      error_message = "The cluster needs at least 3 private subnets, each in a different availability zone."
    }
    precondition {
      condition     = var.initial_node_count <= var.node_count
      error_message = "initial_node_count cannot exceed node_count."
    }
    precondition {
      condition     = alltrue([for slot in keys(var.node_generations) : tonumber(slot) < var.node_count])
      error_message = "node_generations names a slot that does not exist (slots are 0 .. node_count-1)."
    }
    precondition {
      condition     = var.create_vpc || (var.vpc_id != null && length(var.private_subnet_ids) >= local.min_zones)
      error_message = "With create_vpc = false, set vpc_id and at least 3 private_subnet_ids."
    }
    precondition {
      condition     = !var.enable_nat_gateway || var.create_vpc
      error_message = "enable_nat_gateway only applies to the VPC the module creates."
    }
    precondition {
      condition     = !var.create_vpc || var.create_vpc_endpoints || var.enable_nat_gateway
      error_message = "Nodes in the created VPC need a way to the AWS APIs: keep create_vpc_endpoints or set enable_nat_gateway."
    }
    precondition {
      condition     = !var.create_vpc || local.release_s3_bucket != null || var.enable_nat_gateway
      error_message = "An https release_url needs a route to the internet: set enable_nat_gateway, or publish the binary to S3."
    }
  }
}
