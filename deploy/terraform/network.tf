# Network: the VPC (created, or an existing one), one private subnet per
# availability zone with no public IPs, optional NAT gateways (one per zone, so
# losing a zone never cuts the others off), VPC endpoints so nodes reach the
# AWS APIs without leaving the VPC, and flow logs of all traffic.

locals {
  # Interface endpoints the nodes call: KMS (data keys), Secrets Manager (TLS
  # files), CloudWatch Logs (the agent ships logs and metrics as log events),
  # EC2 (attach the slot's volume and network interface).
  interface_endpoint_services = concat(
    ["kms", "secretsmanager", "logs", "ec2"],
    var.enable_session_manager ? ["ssm", "ssmmessages", "ec2messages"] : [],
  )

  # NAT subnets: /24s counted down from the top of the VPC range.
  nat_subnet_newbits = 24 - tonumber(split("/", var.vpc_cidr)[1])
  nat_subnet_count   = var.create_vpc && var.enable_nat_gateway ? length(local.zones) : 0
}

resource "aws_vpc" "this" {
  count = var.create_vpc ? 1 : 0

  cidr_block           = var.vpc_cidr
  enable_dns_support   = true
  enable_dns_hostnames = true

  tags = merge(local.common_tags, { Name = var.name })
}

# The VPC's default security group: no rules at all, so nothing can use it by accident.
resource "aws_default_security_group" "this" {
  count = var.create_vpc ? 1 : 0

  vpc_id = aws_vpc.this[0].id

  tags = merge(local.common_tags, { Name = "${var.name}-default-unused" })
}

resource "aws_subnet" "private" {
  count = var.create_vpc ? length(local.zones) : 0

  vpc_id                  = aws_vpc.this[0].id
  availability_zone       = local.zones[count.index]
  cidr_block              = cidrsubnet(var.vpc_cidr, 20 - tonumber(split("/", var.vpc_cidr)[1]), count.index)
  map_public_ip_on_launch = false

  tags = merge(local.common_tags, {
    Name            = "${var.name}-private-${local.zones[count.index]}"
    "safekeep:tier" = "private"
  })
}

resource "aws_route_table" "private" {
  count = var.create_vpc ? length(local.zones) : 0

  vpc_id = aws_vpc.this[0].id

  tags = merge(local.common_tags, { Name = "${var.name}-private-${local.zones[count.index]}" })
}

resource "aws_route_table_association" "private" {
  count = var.create_vpc ? length(local.zones) : 0

  subnet_id      = aws_subnet.private[count.index].id
  route_table_id = aws_route_table.private[count.index].id
}

# ---------------------------------------------------------------- optional NAT

resource "aws_internet_gateway" "this" {
  count = local.nat_subnet_count > 0 ? 1 : 0

  vpc_id = aws_vpc.this[0].id

  tags = merge(local.common_tags, { Name = var.name })
}

resource "aws_subnet" "nat" {
  count = local.nat_subnet_count

  vpc_id                  = aws_vpc.this[0].id
  availability_zone       = local.zones[count.index]
  cidr_block              = cidrsubnet(var.vpc_cidr, local.nat_subnet_newbits, pow(2, local.nat_subnet_newbits) - 1 - count.index)
  map_public_ip_on_launch = false

  tags = merge(local.common_tags, {
    Name            = "${var.name}-nat-${local.zones[count.index]}"
    "safekeep:tier" = "nat"
  })
}

resource "aws_route_table" "nat" {
  count = local.nat_subnet_count > 0 ? 1 : 0

  vpc_id = aws_vpc.this[0].id

  tags = merge(local.common_tags, { Name = "${var.name}-nat" })
}

resource "aws_route" "nat_internet" {
  count = local.nat_subnet_count > 0 ? 1 : 0

  route_table_id         = aws_route_table.nat[0].id
  destination_cidr_block = "0.0.0.0/0"
  gateway_id             = aws_internet_gateway.this[0].id
}

resource "aws_route_table_association" "nat" {
  count = local.nat_subnet_count

  subnet_id      = aws_subnet.nat[count.index].id
  route_table_id = aws_route_table.nat[0].id
}

resource "aws_eip" "nat" {
  count = local.nat_subnet_count

  domain = "vpc"

  tags = merge(local.common_tags, { Name = "${var.name}-nat-${local.zones[count.index]}" })
}

resource "aws_nat_gateway" "this" {
  count = local.nat_subnet_count

  allocation_id = aws_eip.nat[count.index].id
  subnet_id     = aws_subnet.nat[count.index].id

  tags = merge(local.common_tags, { Name = "${var.name}-${local.zones[count.index]}" })

  depends_on = [aws_internet_gateway.this]
}

# Each zone's private subnet leaves through its own zone's NAT gateway.
resource "aws_route" "private_nat" {
  count = local.nat_subnet_count

  route_table_id         = aws_route_table.private[count.index].id
  destination_cidr_block = "0.0.0.0/0"
  nat_gateway_id         = aws_nat_gateway.this[count.index].id
}

# ---------------------------------------------------------------- VPC endpoints

resource "aws_vpc_endpoint" "s3" {
  count = var.create_vpc && var.create_vpc_endpoints ? 1 : 0

  vpc_id            = aws_vpc.this[0].id
  service_name      = "com.amazonaws.${local.region}.s3"
  vpc_endpoint_type = "Gateway"
  route_table_ids   = aws_route_table.private[*].id

  tags = merge(local.common_tags, { Name = "${var.name}-s3" })
}

resource "aws_vpc_endpoint" "interface" {
  for_each = var.create_vpc_endpoints ? toset(local.interface_endpoint_services) : toset([])

  vpc_id              = local.vpc_id
  service_name        = "com.amazonaws.${local.region}.${each.key}"
  vpc_endpoint_type   = "Interface"
  subnet_ids          = local.private_subnet_ids
  security_group_ids  = [aws_security_group.endpoints[0].id]
  private_dns_enabled = true

  tags = merge(local.common_tags, { Name = "${var.name}-${each.key}" })
}

# ---------------------------------------------------------------- flow logs

resource "aws_flow_log" "this" {
  count = var.enable_flow_logs ? 1 : 0

  vpc_id                   = var.create_vpc ? aws_vpc.this[0].id : var.vpc_id
  traffic_type             = "ALL"
  log_destination_type     = "cloud-watch-logs"
  log_destination          = aws_cloudwatch_log_group.flow_logs[0].arn
  iam_role_arn             = aws_iam_role.flow_logs[0].arn
  max_aggregation_interval = 60

  tags = merge(local.common_tags, { Name = var.name })
}
