# Terraform and provider versions this module is written and checked against.
# The lower bounds name the first releases with every argument the module uses
# (security groups on Network Load Balancers, Auto Scaling instance maintenance
# policies, per-rule security group resources); the upper bounds keep a major
# release with breaking changes from arriving unreviewed.

terraform {
  required_version = ">= 1.5.0, < 2.0.0"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = ">= 5.70.0, < 6.0.0"
    }
    cloudinit = {
      source  = "hashicorp/cloudinit"
      version = ">= 2.3.0, < 3.0.0"
    }
  }
}
