# IAM: one role per node slot, allowed only what that slot's node and its
# boot script need -
# - attach its own data volume and network interface (tag-scoped), and the
#   describe calls to wait for them;
# - the cluster KMS key: Encrypt/Decrypt of tenant data keys (with the data
#   key encryption context), and use through S3, Secrets Manager and EC2;
# - read its own TLS secret and the CA secret;
# - the cluster's backup prefix backups/<cluster>/ (every node may be the
#   one that ships; no deletes: the lifecycle expires backups, so a node
#   cannot erase them) and its own identity claim;
# - read the release binary object (when it lives in S3);
# - write to the cluster's node and metrics log groups.
# The node's peers need no discovery call: every slot's address is fixed (its
# network interface) and written into node.toml.
# Also the role VPC flow logs deliver with.

locals {
  node_log_group_arns = [
    aws_cloudwatch_log_group.node.arn,
    aws_cloudwatch_log_group.metrics.arn,
  ]
}

data "aws_iam_policy_document" "ec2_assume" {
  statement {
    effect  = "Allow"
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["ec2.${local.dns_suffix}"]
    }
  }
}

resource "aws_iam_role" "node" {
  for_each = local.slots

  name               = "${var.name}-node-slot-${each.key}"
  description        = "safekeep ${var.name}: node slot ${each.key} (${each.value.zone})"
  assume_role_policy = data.aws_iam_policy_document.ec2_assume.json

  tags = merge(local.common_tags, { "safekeep:slot" = each.key })
}

resource "aws_iam_instance_profile" "node" {
  for_each = local.slots

  name = "${var.name}-node-slot-${each.key}"
  role = aws_iam_role.node[each.key].name

  tags = merge(local.common_tags, { "safekeep:slot" = each.key })
}

data "aws_iam_policy_document" "node" {
  for_each = local.slots

  statement {
    sid     = "AttachOwnDataVolume"
    effect  = "Allow"
    actions = ["ec2:AttachVolume"]
    resources = [
      aws_ebs_volume.data[each.key].arn,
      "arn:${local.partition}:ec2:${local.region}:${local.account_id}:instance/*",
    ]
    condition {
      test     = "StringEquals"
      variable = "aws:ResourceTag/safekeep:cluster"
      values   = [var.name]
    }
    condition {
      test     = "StringEquals"
      variable = "aws:ResourceTag/safekeep:slot"
      values   = [each.key]
    }
  }

  statement {
    sid     = "AttachOwnNetworkInterface"
    effect  = "Allow"
    actions = ["ec2:AttachNetworkInterface"]
    resources = [
      aws_network_interface.node[each.key].arn,
      "arn:${local.partition}:ec2:${local.region}:${local.account_id}:instance/*",
    ]
    condition {
      test     = "StringEquals"
      variable = "aws:ResourceTag/safekeep:cluster"
      values   = [var.name]
    }
    condition {
      test     = "StringEquals"
      variable = "aws:ResourceTag/safekeep:slot"
      values   = [each.key]
    }
  }

  statement {
    sid    = "WaitForAttachments"
    effect = "Allow"
    actions = [
      "ec2:DescribeNetworkInterfaces",
      "ec2:DescribeVolumes",
    ]
    resources = ["*"]
    condition {
      test     = "StringEquals"
      variable = "aws:RequestedRegion"
      values   = [local.region]
    }
  }

  statement {
    sid       = "CheckTheKeyAtStart"
    effect    = "Allow"
    actions   = ["kms:DescribeKey"]
    resources = [aws_kms_key.this.arn]
  }

  statement {
    sid       = "WrapTenantDataKeys"
    effect    = "Allow"
    actions   = ["kms:Encrypt", "kms:Decrypt"]
    resources = [aws_kms_key.this.arn]
    condition {
      test     = "ForAllValues:StringEquals"
      variable = "kms:EncryptionContextKeys"
      values   = var.kms_encryption_context_keys
    }
    condition {
      test     = "Null"
      variable = "kms:EncryptionContextKeys"
      values   = ["false"]
    }
  }

  statement {
    sid    = "UseKeyThroughServices"
    effect = "Allow"
    actions = [
      "kms:Decrypt",
      "kms:DescribeKey",
      "kms:GenerateDataKey",
    ]
    resources = [aws_kms_key.this.arn]
    condition {
      test     = "StringEquals"
      variable = "kms:ViaService"
      values   = local.kms_via_services
    }
  }

  statement {
    sid       = "GrantEc2TheDataVolumeKey"
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
    sid     = "ReadOwnTlsSecrets"
    effect  = "Allow"
    actions = ["secretsmanager:GetSecretValue"]
    resources = [
      aws_secretsmanager_secret.node_tls[each.key].arn,
      aws_secretsmanager_secret.ca.arn,
    ]
  }

  statement {
    sid       = "ListClusterBackupsAndOwnIdentityClaim"
    effect    = "Allow"
    actions   = ["s3:ListBucket"]
    resources = [aws_s3_bucket.backups.arn]
    condition {
      test     = "StringLike"
      variable = "s3:prefix"
      values = [
        "${local.backup_prefix_root}*",
        "${local.identity_prefix_root}${each.value.node_id}.json",
      ]
    }
  }

  statement {
    sid    = "ReadWriteClusterBackups"
    effect = "Allow"
    actions = [
      "s3:AbortMultipartUpload",
      "s3:GetObject",
      "s3:ListMultipartUploadParts",
      "s3:PutObject",
    ]
    resources = ["${aws_s3_bucket.backups.arn}/${local.backup_prefix_root}*"]
  }

  statement {
    sid       = "ClaimOwnNodeId"
    effect    = "Allow"
    actions   = ["s3:GetObject", "s3:PutObject"]
    resources = ["${aws_s3_bucket.backups.arn}/${local.identity_prefix_root}${each.value.node_id}.json"]
  }

  dynamic "statement" {
    for_each = local.release_s3_bucket == null ? [] : [local.release_s3_bucket]

    content {
      sid       = "ReadReleaseBinary"
      effect    = "Allow"
      actions   = ["s3:GetObject"]
      resources = ["arn:${local.partition}:s3:::${local.release_s3_bucket}/${local.release_s3_key}"]
    }
  }

  statement {
    sid    = "ShipLogsAndMetrics"
    effect = "Allow"
    actions = [
      "logs:CreateLogStream",
      "logs:DescribeLogStreams",
      "logs:PutLogEvents",
    ]
    resources = flatten([for arn in local.node_log_group_arns : [arn, "${arn}:log-stream:*"]])
  }
}

resource "aws_iam_role_policy" "node" {
  for_each = local.slots

  name   = "safekeep-node"
  role   = aws_iam_role.node[each.key].id
  policy = data.aws_iam_policy_document.node[each.key].json
}

resource "aws_iam_role_policy_attachment" "node_session_manager" {
  for_each = var.enable_session_manager ? local.slots : {}

  role       = aws_iam_role.node[each.key].name
  policy_arn = "arn:${local.partition}:iam::aws:policy/AmazonSSMManagedInstanceCore"
}

# ---------------------------------------------------------------- flow logs

data "aws_iam_policy_document" "flow_logs_assume" {
  statement {
    effect  = "Allow"
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["vpc-flow-logs.amazonaws.com"]
    }
    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }
    condition {
      test     = "ArnLike"
      variable = "aws:SourceArn"
      values   = ["arn:${local.partition}:ec2:${local.region}:${local.account_id}:vpc-flow-log/*"]
    }
  }
}

resource "aws_iam_role" "flow_logs" {
  count = var.enable_flow_logs ? 1 : 0

  name               = "${var.name}-vpc-flow-logs"
  description        = "safekeep ${var.name}: delivers VPC flow logs to CloudWatch Logs"
  assume_role_policy = data.aws_iam_policy_document.flow_logs_assume.json

  tags = local.common_tags
}

data "aws_iam_policy_document" "flow_logs" {
  count = var.enable_flow_logs ? 1 : 0

  statement {
    sid    = "DeliverFlowLogs"
    effect = "Allow"
    actions = [
      "logs:CreateLogStream",
      "logs:DescribeLogStreams",
      "logs:PutLogEvents",
    ]
    resources = [
      aws_cloudwatch_log_group.flow_logs[0].arn,
      "${aws_cloudwatch_log_group.flow_logs[0].arn}:log-stream:*",
    ]
  }
}

resource "aws_iam_role_policy" "flow_logs" {
  count = var.enable_flow_logs ? 1 : 0

  name   = "deliver-flow-logs"
  role   = aws_iam_role.flow_logs[0].id
  policy = data.aws_iam_policy_document.flow_logs[0].json
}
