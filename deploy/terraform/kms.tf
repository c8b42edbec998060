# The cluster's KMS key, rotated yearly, with a key policy that grants each
# party only what it needs:
# - administrators manage the key but cannot encrypt or decrypt with it;
# - principals of this account may use it only through EC2 (volumes), S3
#   (backups) and Secrets Manager (TLS files), as their IAM policies allow;
# - each node role may call Encrypt and Decrypt directly only with the
#   encryption context of a tenant data key (the node's KMS key provider);
# - CloudWatch Logs may use it for this cluster's log groups only;
# - the Auto Scaling service-linked role may use it to launch nodes with
#   encrypted root volumes.

locals {
  key_administrators = length(var.kms_key_administrator_arns) > 0 ? var.kms_key_administrator_arns : ["arn:${local.partition}:iam::${local.account_id}:root"]

  autoscaling_service_role_arn = coalesce(
    var.autoscaling_service_role_arn,
    "arn:${local.partition}:iam::${local.account_id}:role/aws-service-role/autoscaling.amazonaws.com/AWSServiceRoleForAutoScaling",
  )

  # AWS services through which principals of the account may use the key.
  kms_via_services = [for service in ["ec2", "s3", "secretsmanager"] : "${service}.${local.region}.amazonaws.com"]

  # The cluster's log groups (monitoring.tf), the only ones CloudWatch Logs may encrypt with the key.
  log_group_arns = [for name in values(local.log_group_names) : "arn:${local.partition}:logs:${local.region}:${local.account_id}:log-group:${name}"]
}

data "aws_iam_policy_document" "kms" {
  statement {
    sid    = "KeyAdministration"
    effect = "Allow"
    principals {
      type        = "AWS"
      identifiers = local.key_administrators
    }
    actions = [
      "kms:CancelKeyDeletion",
      "kms:Create*",
      "kms:Delete*",
      "kms:Describe*",
      "kms:Disable*",
      "kms:Enable*",
      "kms:Get*",
      "kms:List*",
      "kms:Put*",
      "kms:Revoke*",
      "kms:RotateKeyOnDemand",
      "kms:ScheduleKeyDeletion",
      "kms:TagResource",
      "kms:UntagResource",
      "kms:Update*",
    ]
    resources = ["*"]
  }

  statement {
    sid    = "UseThroughAwsServicesOnly"
    effect = "Allow"
    principals {
      type        = "AWS"
      identifiers = ["arn:${local.partition}:iam::${local.account_id}:root"]
    }
    actions = [
      "kms:Decrypt",
      "kms:DescribeKey",
      "kms:Encrypt",
      "kms:GenerateDataKey*",
      "kms:ReEncrypt*",
    ]
    resources = ["*"]
    condition {
      test     = "StringEquals"
      variable = "kms:ViaService"
      values   = local.kms_via_services
    }
    condition {
      test     = "StringEquals"
      variable = "kms:CallerAccount"
      values   = [local.account_id]
    }
  }

  statement {
    sid    = "GrantsForAwsResourcesOnly"
    effect = "Allow"
    principals {
      type        = "AWS"
      identifiers = ["arn:${local.partition}:iam::${local.account_id}:root"]
    }
    actions   = ["kms:CreateGrant"]
    resources = ["*"]
    condition {
      test     = "Bool"
      variable = "kms:GrantIsForAWSResource"
      values   = ["true"]
    }
    condition {
      test     = "StringEquals"
      variable = "kms:ViaService"
      values   = local.kms_via_services
    }
  }

  statement {
    sid    = "NodesWrapTenantDataKeys"
    effect = "Allow"
    principals {
      type        = "AWS"
      identifiers = [for key, role in aws_iam_role.node : role.arn]
    }
    actions   = ["kms:Encrypt", "kms:Decrypt"]
    resources = ["*"]
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
    sid    = "NodesCheckTheKeyAtStart"
    effect = "Allow"
    principals {
      type        = "AWS"
      identifiers = [for key, role in aws_iam_role.node : role.arn]
    }
    actions   = ["kms:DescribeKey"]
    resources = ["*"]
  }

  statement {
    sid    = "CloudWatchLogsForThisCluster"
    effect = "Allow"
    principals {
      type        = "Service"
      identifiers = ["logs.${local.region}.amazonaws.com"]
    }
    actions = [
      "kms:Decrypt*",
      "kms:Describe*",
      "kms:Encrypt*",
      "kms:GenerateDataKey*",
      "kms:ReEncrypt*",
    ]
    resources = ["*"]
    condition {
      test     = "ArnLike"
      variable = "kms:EncryptionContext:aws:logs:arn"
      values   = local.log_group_arns
    }
  }

  statement {
    sid    = "AutoScalingLaunchesEncryptedNodes"
    effect = "Allow"
    principals {
      type        = "AWS"
      identifiers = [local.autoscaling_service_role_arn]
    }
    actions = [
      "kms:Decrypt",
      "kms:DescribeKey",
      "kms:Encrypt",
      "kms:GenerateDataKey*",
      "kms:ReEncrypt*",
    ]
    resources = ["*"]
  }

  statement {
    sid    = "AutoScalingGrantsForAwsResources"
    effect = "Allow"
    principals {
      type        = "AWS"
      identifiers = [local.autoscaling_service_role_arn]
    }
    actions   = ["kms:CreateGrant"]
    resources = ["*"]
    condition {
      test     = "Bool"
      variable = "kms:GrantIsForAWSResource"
      values   = ["true"]
    }
  }
}

resource "aws_kms_key" "this" {
  description             = "safekeep ${var.name}: tenant data key wrapping, data volumes, backups, TLS secrets and logs"
  key_usage               = "ENCRYPT_DECRYPT"
  enable_key_rotation     = true
  deletion_window_in_days = var.kms_key_deletion_window_days
  policy                  = data.aws_iam_policy_document.kms.json

  tags = merge(local.common_tags, { Name = var.name })
}

resource "aws_kms_alias" "this" {
  name          = "alias/safekeep-${var.name}"
  target_key_id = aws_kms_key.this.key_id
}
