# The values every other file derives from: the account and region, the zones
# and subnets the cluster spans, each node slot's identity (node id, zone,
# subnet, whether it forms the cluster or joins it), and the common tags.
# Resources live in files by concern: network.tf, security_groups.tf, kms.tf,
# storage.tf, secrets.tf, iam.tf, nodes.tf, load_balancer.tf, monitoring.tf and
# fis.tf.

data "aws_caller_identity" "current" {}

data "aws_partition" "current" {}

data "aws_region" "current" {}

data "aws_availability_zones" "available" {
  count = var.create_vpc && length(var.availability_zones) == 0 ? 1 : 0

  state = "available"

  filter {
    name   = "opt-in-status"
    values = ["opt-in-not-required"]
  }
}

data "aws_subnet" "existing" {
  for_each = var.create_vpc ? {} : { for index, id in var.private_subnet_ids : tostring(index) => id }

  id = each.value
}

locals {
  # Node id = slot + 1 + generation * this stride: ids never repeat across slots or generations.
  node_id_generation_stride = 1000
  # Fewest availability zones the cluster spans: one whole zone may fail.
  min_zones = 3

  account_id = data.aws_caller_identity.current.account_id
  partition  = data.aws_partition.current.partition
  dns_suffix = data.aws_partition.current.dns_suffix
  region     = data.aws_region.current.name

  zones = var.create_vpc ? (
    length(var.availability_zones) > 0 ? var.availability_zones : slice(sort(data.aws_availability_zones.available[0].names), 0, local.min_zones)
  ) : [for index in range(length(var.private_subnet_ids)) : data.aws_subnet.existing[tostring(index)].availability_zone]

  vpc_id             = var.create_vpc ? aws_vpc.this[0].id : var.vpc_id
  private_subnet_ids = var.create_vpc ? aws_subnet.private[*].id : var.private_subnet_ids

  # One entry per node slot, keyed by the slot index as a string.
  slots = {
    for slot in range(var.node_count) : tostring(slot) => {
      index      = slot
      generation = lookup(var.node_generations, tostring(slot), 0)
      node_id    = slot + 1 + lookup(var.node_generations, tostring(slot), 0) * local.node_id_generation_stride
      zone       = local.zones[slot % length(local.zones)]
      subnet_id  = local.private_subnet_ids[slot % length(local.zones)]
      # Forms the cluster (init) rather than joining it.
      bootstrap = slot < var.initial_node_count && lookup(var.node_generations, tostring(slot), 0) == 0
    }
  }

  # Voters needed for a quorum when every slot votes.
  quorum = floor(var.node_count / 2) + 1

  # Every node slot at its fixed address: the peer and client addresses the cluster knows it by.
  slot_addresses = { for key, slot in local.slots : key => aws_network_interface.node[key].private_ip }

  # The members that form the cluster on first boot.
  initial_members = [
    for key, slot in local.slots : {
      id             = slot.node_id
      zone           = slot.zone
      peer_address   = "${local.slot_addresses[key]}:${var.peer_port}"
      client_address = "${local.slot_addresses[key]}:${var.client_port}"
    } if slot.bootstrap
  ]

  # Release binary in S3: the one object the node roles may read.
  release_s3_match  = regexall("^s3://([^/]+)/(.+)$", var.release_url)
  release_s3_bucket = length(local.release_s3_match) > 0 ? local.release_s3_match[0][0] : null
  release_s3_key    = length(local.release_s3_match) > 0 ? local.release_s3_match[0][1] : null

  common_tags = merge(var.tags, {
    "safekeep:cluster" = var.name
  })
}
