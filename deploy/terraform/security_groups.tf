# Security groups: the load balancer's, the nodes', and the VPC endpoints'.
# Clients reach the load balancer's client listener only from the allowed
# CIDR blocks and security groups; nodes accept the client port only from the
# load balancer (and, if allow_direct_client_access, the same allowed
# clients), the peer port only from each other, and the HTTP port only from
# the load balancer and monitoring. No rule admits 0.0.0.0/0.

resource "aws_security_group" "nlb" {
  name_prefix = "${var.name}-nlb-"
  description = "safekeep ${var.name}: internal load balancer, client port from allowed clients only"
  vpc_id      = local.vpc_id

  tags = merge(local.common_tags, { Name = "${var.name}-nlb" })

  lifecycle {
    create_before_destroy = true
  }
}

resource "aws_security_group" "node" {
  name_prefix = "${var.name}-node-"
  description = "safekeep ${var.name}: nodes; client and health ports from the load balancer, peer port within the cluster"
  vpc_id      = local.vpc_id

  tags = merge(local.common_tags, { Name = "${var.name}-node" })

  lifecycle {
    create_before_destroy = true
  }
}

resource "aws_security_group" "endpoints" {
  count = var.create_vpc_endpoints ? 1 : 0

  name_prefix = "${var.name}-endpoints-"
  description = "safekeep ${var.name}: VPC interface endpoints, HTTPS from the nodes only"
  vpc_id      = local.vpc_id

  tags = merge(local.common_tags, { Name = "${var.name}-endpoints" })

  lifecycle {
    create_before_destroy = true
  }
}

# ---------------------------------------------------------------- load balancer

resource "aws_vpc_security_group_ingress_rule" "nlb_client_cidr" {
  for_each = toset(var.allowed_client_cidr_blocks)

  security_group_id = aws_security_group.nlb.id
  description       = "Client API (TLS) from an allowed network"
  ip_protocol       = "tcp"
  from_port         = var.client_port
  to_port           = var.client_port
  cidr_ipv4         = each.key
}

resource "aws_vpc_security_group_ingress_rule" "nlb_client_sg" {
  for_each = toset(var.allowed_client_security_group_ids)

  security_group_id            = aws_security_group.nlb.id
  description                  = "Client API (TLS) from an allowed application security group"
  ip_protocol                  = "tcp"
  from_port                    = var.client_port
  to_port                      = var.client_port
  referenced_security_group_id = each.key
}

resource "aws_vpc_security_group_egress_rule" "nlb_to_node_client" {
  security_group_id            = aws_security_group.nlb.id
  description                  = "Forward client connections to the nodes"
  ip_protocol                  = "tcp"
  from_port                    = var.client_port
  to_port                      = var.client_port
  referenced_security_group_id = aws_security_group.node.id
}

resource "aws_vpc_security_group_egress_rule" "nlb_to_node_health" {
  security_group_id            = aws_security_group.nlb.id
  description                  = "Health checks on the nodes' /readyz"
  ip_protocol                  = "tcp"
  from_port                    = var.http_port
  to_port                      = var.http_port
  referenced_security_group_id = aws_security_group.node.id
}

# ---------------------------------------------------------------- nodes: ingress

resource "aws_vpc_security_group_ingress_rule" "node_client_from_nlb" {
  security_group_id            = aws_security_group.node.id
  description                  = "Client API from the load balancer"
  ip_protocol                  = "tcp"
  from_port                    = var.client_port
  to_port                      = var.client_port
  referenced_security_group_id = aws_security_group.nlb.id
}

resource "aws_vpc_security_group_ingress_rule" "node_health_from_nlb" {
  security_group_id            = aws_security_group.node.id
  description                  = "Health checks (/readyz) from the load balancer"
  ip_protocol                  = "tcp"
  from_port                    = var.http_port
  to_port                      = var.http_port
  referenced_security_group_id = aws_security_group.nlb.id
}

resource "aws_vpc_security_group_ingress_rule" "node_peer" {
  security_group_id            = aws_security_group.node.id
  description                  = "Peer channel (Raft, forwarding; mutual TLS) between the cluster's nodes"
  ip_protocol                  = "tcp"
  from_port                    = var.peer_port
  to_port                      = var.peer_port
  referenced_security_group_id = aws_security_group.node.id
}

resource "aws_vpc_security_group_ingress_rule" "node_http_monitoring_cidr" {
  for_each = toset(var.monitoring_cidr_blocks)

  security_group_id = aws_security_group.node.id
  description       = "Metrics and health (/metrics, /readyz) from monitoring"
  ip_protocol       = "tcp"
  from_port         = var.http_port
  to_port           = var.http_port
  cidr_ipv4         = each.key
}

resource "aws_vpc_security_group_ingress_rule" "node_http_monitoring_sg" {
  for_each = toset(var.monitoring_security_group_ids)

  security_group_id            = aws_security_group.node.id
  description                  = "Metrics and health (/metrics, /readyz) from a monitoring security group"
  ip_protocol                  = "tcp"
  from_port                    = var.http_port
  to_port                      = var.http_port
  referenced_security_group_id = each.key
}

resource "aws_vpc_security_group_ingress_rule" "node_client_direct_cidr" {
  for_each = var.allow_direct_client_access ? toset(var.allowed_client_cidr_blocks) : toset([])

  security_group_id = aws_security_group.node.id
  description       = "Client API directly from an allowed network (allow_direct_client_access)"
  ip_protocol       = "tcp"
  from_port         = var.client_port
  to_port           = var.client_port
  cidr_ipv4         = each.key
}

resource "aws_vpc_security_group_ingress_rule" "node_client_direct_sg" {
  for_each = var.allow_direct_client_access ? toset(var.allowed_client_security_group_ids) : toset([])

  security_group_id            = aws_security_group.node.id
  description                  = "Client API directly from an allowed application security group (allow_direct_client_access)"
  ip_protocol                  = "tcp"
  from_port                    = var.client_port
  to_port                      = var.client_port
  referenced_security_group_id = each.key
}

# ---------------------------------------------------------------- nodes: egress

resource "aws_vpc_security_group_egress_rule" "node_peer" {
  security_group_id            = aws_security_group.node.id
  description                  = "Peer channel to the other nodes"
  ip_protocol                  = "tcp"
  from_port                    = var.peer_port
  to_port                      = var.peer_port
  referenced_security_group_id = aws_security_group.node.id
}

resource "aws_vpc_security_group_egress_rule" "node_https" {
  security_group_id = aws_security_group.node.id
  description       = "HTTPS to AWS APIs (through VPC endpoints or NAT), the OS package repositories and the release download"
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
  cidr_ipv4         = "0.0.0.0/0"
}

# ---------------------------------------------------------------- endpoints

resource "aws_vpc_security_group_ingress_rule" "endpoints_from_nodes" {
  count = var.create_vpc_endpoints ? 1 : 0

  security_group_id            = aws_security_group.endpoints[0].id
  description                  = "HTTPS from the nodes to the AWS APIs"
  ip_protocol                  = "tcp"
  from_port                    = 443
  to_port                      = 443
  referenced_security_group_id = aws_security_group.node.id
}
