# Centralized logs and the quorum alarm.
#
# Log groups (KMS-encrypted, retained log_retention_days):
# - /safekeep/<cluster>/node: every node's log and its boot script's log,
#   shipped by the CloudWatch agent, one stream per node and instance;
# - /safekeep/<cluster>/metrics: the node metrics the agent scrapes from
#   /metrics, as embedded metric format, which CloudWatch turns into metrics
#   in var.metrics_namespace with dimensions cluster and cluster+node_id;
# - /safekeep/<cluster>/vpc-flow-logs: all VPC traffic;
# - /aws/vendedlogs/fis/safekeep-<cluster>: the zone drill's experiment log.
#
# The quorum alarm fires when, for two minutes running, either no node
# reports itself leader (metric safekeep_raft_is_leader, maximum over the
# cluster) or fewer than a quorum of nodes pass the load balancer's /readyz
# check (AWS/NetworkELB HealthyHostCount, minimum). A node is ready only when
# it has a leader that heard from a quorum recently, so the two together say
# "the cluster can commit writes". Missing data counts as breaching: a
# cluster that stopped reporting has lost its quorum as far as anyone knows.
# It is the stop condition of the FIS drill.

locals {
  log_group_names = {
    node      = "/safekeep/${var.name}/node"
    metrics   = "/safekeep/${var.name}/metrics"
    flow_logs = "/safekeep/${var.name}/vpc-flow-logs"
    fis       = "/aws/vendedlogs/fis/safekeep-${var.name}"
  }

  # Metrics the agent turns into CloudWatch metrics (node/src/metrics_names.rs).
  scraped_node_metrics = [
    "^safekeep_raft_is_leader$",
    "^safekeep_raft_term$",
    "^safekeep_raft_leader_changes_total$",
    "^safekeep_raft_committed_index$",
    "^safekeep_raft_applied_index$",
    "^safekeep_raft_last_log_index$",
    "^safekeep_tls_cert_not_after_seconds$",
    "^safekeep_tls_reload_failures_total$",
    "^safekeep_tls_handshake_failures_total$",
  ]

  # Quorum alarm: one-minute periods, two of them in breach to fire.
  quorum_alarm_period_seconds     = 60
  quorum_alarm_evaluation_periods = 2
}

resource "aws_cloudwatch_log_group" "node" {
  name              = local.log_group_names.node
  retention_in_days = var.log_retention_days
  kms_key_id        = aws_kms_key.this.arn

  tags = local.common_tags
}

resource "aws_cloudwatch_log_group" "metrics" {
  name              = local.log_group_names.metrics
  retention_in_days = var.log_retention_days
  kms_key_id        = aws_kms_key.this.arn

  tags = local.common_tags
}

resource "aws_cloudwatch_log_group" "flow_logs" {
  count = var.enable_flow_logs ? 1 : 0

  name              = local.log_group_names.flow_logs
  retention_in_days = var.log_retention_days
  kms_key_id        = aws_kms_key.this.arn

  tags = local.common_tags
}

resource "aws_cloudwatch_log_group" "fis" {
  count = var.enable_fis_experiment ? 1 : 0

  name              = local.log_group_names.fis
  retention_in_days = var.log_retention_days
  kms_key_id        = aws_kms_key.this.arn

  tags = local.common_tags
}

resource "aws_cloudwatch_metric_alarm" "quorum" {
  alarm_name          = "${var.name}-quorum"
  alarm_description   = "safekeep ${var.name}: no leader, or fewer than ${local.quorum} of ${var.node_count} nodes ready (/readyz), for ${local.quorum_alarm_evaluation_periods} minutes. Stop condition of the zone drill."
  comparison_operator = "LessThanThreshold"
  threshold           = 1
  evaluation_periods  = local.quorum_alarm_evaluation_periods
  datapoints_to_alarm = local.quorum_alarm_evaluation_periods
  treat_missing_data  = "breaching"
  alarm_actions       = var.alarm_actions
  ok_actions          = var.alarm_actions

  metric_query {
    id          = "has_quorum"
    label       = "1 when a leader exists and a quorum of nodes is ready"
    expression  = "IF(FILL(leader, 0) >= 1, 1, 0) * IF(FILL(ready, 0) >= ${local.quorum}, 1, 0)"
    return_data = true
  }

  metric_query {
    id = "leader"

    metric {
      namespace   = var.metrics_namespace
      metric_name = "safekeep_raft_is_leader"
      dimensions = {
        cluster = var.name
      }
      period = local.quorum_alarm_period_seconds
      stat   = "Maximum"
    }
  }

  metric_query {
    id = "ready"

    metric {
      namespace   = "AWS/NetworkELB"
      metric_name = "HealthyHostCount"
      dimensions = {
        LoadBalancer = aws_lb.this.arn_suffix
        TargetGroup  = aws_lb_target_group.client.arn_suffix
      }
      period = local.quorum_alarm_period_seconds
      stat   = "Minimum"
    }
  }

  tags = local.common_tags
}
