# The zone drill: an AWS FIS experiment template for the "AZ Availability:
# Power Interruption" scenario, aimed at this cluster only. In one zone it
# stops every running node instance tagged safekeep:cluster = <cluster> (they
# start again after the duration; if Auto Scaling replaces them meanwhile, the
# action still completes), and makes launches of the cluster's Auto Scaling
# groups in that zone fail with insufficient capacity, so the slot cannot
# simply move: the cluster must ride out the zone loss with the nodes it has.
# The experiment stops early if the quorum alarm fires.
#
# Run it while a `safekeep-chaos` drill in existing-cluster mode drives the
# load balancer's address and checks the recorded history: the drill then
# proves that this very deployment loses no acknowledged write.

locals {
  fis_zone     = coalesce(var.fis_availability_zone, local.slots["0"].zone)
  fis_duration = "PT${var.fis_duration_minutes}M"
}

data "aws_iam_policy_document" "fis_assume" {
  statement {
    effect  = "Allow"
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["fis.amazonaws.com"]
    }
    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }
  }
}

resource "aws_iam_role" "fis" {
  count = var.enable_fis_experiment ? 1 : 0

  name               = "${var.name}-fis-zone-drill"
  description        = "safekeep ${var.name}: runs the availability zone drill against this cluster only"
  assume_role_policy = data.aws_iam_policy_document.fis_assume.json

  tags = local.common_tags
}

data "aws_iam_policy_document" "fis" {
  count = var.enable_fis_experiment ? 1 : 0

  statement {
    sid       = "StopAndStartThisClustersNodes"
    effect    = "Allow"
    actions   = ["ec2:StopInstances", "ec2:StartInstances"]
    resources = ["arn:${local.partition}:ec2:${local.region}:${local.account_id}:instance/*"]
    condition {
      test     = "StringEquals"
      variable = "aws:ResourceTag/safekeep:cluster"
      values   = [var.name]
    }
  }

  statement {
    sid       = "RestartNodesWithEncryptedVolumes"
    effect    = "Allow"
    actions   = ["kms:CreateGrant"]
    resources = [aws_kms_key.this.arn]
    condition {
      test     = "Bool"
      variable = "kms:GrantIsForAWSResource"
      values   = ["true"]
    }
    condition {
      test     = "StringEquals"
      variable = "kms:ViaService"
      values   = ["ec2.${local.region}.amazonaws.com"]
    }
  }

  statement {
    sid       = "FailLaunchesInTheZone"
    effect    = "Allow"
    actions   = ["ec2:InjectApiError"]
    resources = ["*"]
    condition {
      test     = "ForAnyValue:StringEquals"
      variable = "ec2:FisActionId"
      values   = ["aws:ec2:asg-insufficient-instance-capacity-error"]
    }
  }

  statement {
    sid    = "ResolveTargets"
    effect = "Allow"
    actions = [
      "autoscaling:DescribeAutoScalingGroups",
      "ec2:DescribeInstances",
      "tag:GetResources",
    ]
    resources = ["*"]
  }

  statement {
    sid    = "DeliverExperimentLog"
    effect = "Allow"
    actions = [
      "logs:CreateLogDelivery",
      "logs:DescribeLogGroups",
      "logs:DescribeResourcePolicies",
      "logs:PutResourcePolicy",
    ]
    resources = ["*"]
  }
}

resource "aws_iam_role_policy" "fis" {
  count = var.enable_fis_experiment ? 1 : 0

  name   = "zone-drill"
  role   = aws_iam_role.fis[0].id
  policy = data.aws_iam_policy_document.fis[0].json
}

resource "aws_fis_experiment_template" "zone_power_interruption" {
  count = var.enable_fis_experiment ? 1 : 0

  description = "safekeep ${var.name}: AZ power interruption in ${local.fis_zone} for ${var.fis_duration_minutes} min; stops on the quorum alarm"
  role_arn    = aws_iam_role.fis[0].arn

  stop_condition {
    source = "aws:cloudwatch:alarm"
    value  = aws_cloudwatch_metric_alarm.quorum.arn
  }

  action {
    name        = "stop-nodes-in-zone"
    action_id   = "aws:ec2:stop-instances"
    description = "Power off this cluster's nodes in ${local.fis_zone}"

    parameter {
      key   = "startInstancesAfterDuration"
      value = local.fis_duration
    }

    parameter {
      key   = "completeIfInstancesTerminated"
      value = "true"
    }

    target {
      key   = "Instances"
      value = "nodes-in-zone"
    }
  }

  action {
    name        = "fail-launches-in-zone"
    action_id   = "aws:ec2:asg-insufficient-instance-capacity-error"
    description = "Keep Auto Scaling from launching replacements in ${local.fis_zone}"

    parameter {
      key   = "availabilityZoneIdentifiers"
      value = local.fis_zone
    }

    parameter {
      key   = "duration"
      value = local.fis_duration
    }

    parameter {
      key   = "percentage"
      value = "100"
    }

    target {
      key   = "AutoScalingGroups"
      value = "node-groups"
    }
  }

  target {
    name           = "nodes-in-zone"
    resource_type  = "aws:ec2:instance"
    selection_mode = "ALL"

    resource_tag {
      key   = "safekeep:cluster"
      value = var.name
    }

    filter {
      path   = "Placement.AvailabilityZone"
      values = [local.fis_zone]
    }

    filter {
      path   = "State.Name"
      values = ["running"]
    }
  }

  target {
    name           = "node-groups"
    resource_type  = "aws:ec2:autoscaling-group"
    selection_mode = "ALL"

    resource_tag {
      key   = "safekeep:cluster"
      value = var.name
    }
  }

  experiment_options {
    account_targeting            = "single-account"
    empty_target_resolution_mode = "fail"
  }

  log_configuration {
    log_schema_version = 2

    cloudwatch_logs_configuration {
      log_group_arn = "${aws_cloudwatch_log_group.fis[0].arn}:*"
    }
  }

  tags = merge(local.common_tags, { Name = "${var.name}-zone-power-interruption" })
}
