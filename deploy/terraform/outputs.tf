# Outputs of the safekeep module: where clients connect, what each node slot
# is, and the resources operators need for certificates, backups, logs and
# the zone drill.

output "client_endpoint" {
  description = "host:port applications and the safekeep CLI connect to (the internal load balancer). Node certificates must name this host as a DNS SAN."
  value       = "${aws_lb.this.dns_name}:${var.client_port}"
}

output "load_balancer_arn" {
  description = "ARN of the internal Network Load Balancer."
  value       = aws_lb.this.arn
}

output "load_balancer_dns_name" {
  description = "DNS name of the internal Network Load Balancer."
  value       = aws_lb.this.dns_name
}

output "target_group_arn" {
  description = "ARN of the target group of the nodes' client port (health check: /readyz on the HTTP port)."
  value       = aws_lb_target_group.client.arn
}

output "vpc_id" {
  description = "VPC the cluster runs in."
  value       = local.vpc_id
}

output "private_subnet_ids" {
  description = "Private subnets of the cluster, one per availability zone."
  value       = local.private_subnet_ids
}

output "node_security_group_id" {
  description = "Security group of the nodes."
  value       = aws_security_group.node.id
}

output "load_balancer_security_group_id" {
  description = "Security group of the load balancer; allow it as a source where clients need it."
  value       = aws_security_group.nlb.id
}

output "nodes" {
  description = "Each node slot by index: node id, zone, fixed address, peer and client addresses (for `safekeep cluster add-learner`), Auto Scaling group, data volume, TLS secret and backup prefix."
  value = {
    for key, slot in local.slots : key => {
      node_id             = slot.node_id
      generation          = slot.generation
      zone                = slot.zone
      address             = local.slot_addresses[key]
      peer_address        = "${local.slot_addresses[key]}:${var.peer_port}"
      client_address      = "${local.slot_addresses[key]}:${var.client_port}"
      forms_cluster       = slot.bootstrap
      autoscaling_group   = aws_autoscaling_group.node[key].name
      data_volume_id      = aws_ebs_volume.data[key].id
      network_interface   = aws_network_interface.node[key].id
      tls_secret_arn      = aws_secretsmanager_secret.node_tls[key].arn
      backup_prefix       = local.backup_prefix_root
      iam_role_arn        = aws_iam_role.node[key].arn
      certificate_uri_san = "urn:safekeep:node:${slot.node_id}"
    }
  }
}

output "ca_secret_arn" {
  description = "Secrets Manager secret the CA bundle goes into (JSON: ca_pem, and client_ca_pem with tls_separate_client_ca)."
  value       = aws_secretsmanager_secret.ca.arn
}

output "kms_key_arn" {
  description = "ARN of the cluster's KMS key (tenant data keys, volumes, backups, secrets, logs)."
  value       = aws_kms_key.this.arn
}

output "kms_key_alias" {
  description = "Alias of the cluster's KMS key."
  value       = aws_kms_alias.this.name
}

output "backup_bucket_name" {
  description = "S3 bucket of the backups; the cluster's backups are under backups/<cluster>/."
  value       = aws_s3_bucket.backups.id
}

output "access_log_bucket_name" {
  description = "S3 bucket holding the backup bucket's server access logs."
  value       = aws_s3_bucket.access_logs.id
}

output "log_group_names" {
  description = "CloudWatch log groups: node (node and boot logs), metrics (scraped /metrics), flow_logs, fis."
  value       = local.log_group_names
}

output "quorum_alarm_arn" {
  description = "ARN of the quorum alarm (no leader, or fewer than a quorum of ready nodes); the zone drill's stop condition."
  value       = aws_cloudwatch_metric_alarm.quorum.arn
}

output "fis_experiment_template_id" {
  description = "Id of the FIS zone drill template (null when enable_fis_experiment is false): `aws fis start-experiment --experiment-template-id ID`."
  value       = var.enable_fis_experiment ? aws_fis_experiment_template.zone_power_interruption[0].id : null
}
