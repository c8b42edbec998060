# Complete example: a five-node safekeep cluster over three availability zones
# in a VPC the module creates, reachable only through the internal load
# balancer from the applications' security groups and one office network,
# scraped by a monitoring security group, with the zone drill enabled.

provider "aws" {
  region = var.region

  default_tags {
    tags = {
      Project = "safekeep"
    }
  }
}

module "safekeep" {
  source = "../.."

  name       = "records-prod"
  node_count = 5

  # Network: a new VPC, one private subnet per zone, no NAT (VPC endpoints).
  create_vpc         = true
  vpc_cidr           = "10.42.0.0/16"
  availability_zones = ["${var.region}a", "${var.region}b", "${var.region}c"]

  # The release binary, checked against its SHA-256 at boot.
  release_url    = "s3://${var.release_bucket}/safekeep-node/1.0.0/safekeep-node-aarch64-linux"
  release_sha256 = var.release_sha256

  instance_type         = "m7g.large"
  instance_architecture = "arm64"
  data_volume_size_gib  = 200

  # Who may connect: the load balancer is the only way in.
  allowed_client_security_group_ids = var.app_security_group_ids
  allowed_client_cidr_blocks        = ["10.60.0.0/16"]
  monitoring_security_group_ids     = var.monitoring_security_group_ids

  # All five slots form the cluster on first boot. When a slot's disk is
  # lost, raise its generation, e.g. { "2" = 1 }: slot 2 then comes back as
  # node 1003 and joins.
  initial_node_count = 5
  node_generations   = {}

  backup_retention_days = 35
  log_retention_days    = 365
  alarm_actions         = var.alarm_topic_arns

  enable_fis_experiment = true
  fis_duration_minutes  = 10

  tags = {
    Environment = "production"
  }
}
