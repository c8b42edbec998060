# The only way in: an internal Network Load Balancer in the private subnets,
# passing TCP through to each node's client port (TLS ends on the nodes, so
# the load balancer never sees plaintext or needs a certificate). Cross-zone
# load balancing is on, so clients in any zone keep reaching every ready node
# when a zone fails. Targets are the slots' fixed addresses; the health check
# asks each node's /readyz on the HTTP port, which answers 200 only on a
# member with a live leader that has caught up.
#
# Client IP preservation is off: connections reach the nodes from the load
# balancer's addresses, which is what lets the node security group admit the
# load balancer's group and nothing else. Node-side logs therefore show the
# load balancer as the peer address; the VPC flow logs keep the client's.

locals {
  # Consecutive /readyz results that mark a node healthy or unhealthy.
  health_check_healthy_threshold   = 2
  health_check_unhealthy_threshold = 2
  # Seconds one /readyz request may take.
  health_check_timeout_seconds = 5
}

resource "aws_lb" "this" {
  #checkov:skip=CKV_AWS_91:A Network Load Balancer writes access logs only for TLS listeners; this one passes TCP through so that TLS ends on the nodes, so there is nothing to log. Connection records come from the VPC flow logs (aws_flow_log.this).
  name                             = "${var.name}-nlb"
  internal                         = true
  load_balancer_type               = "network"
  subnets                          = local.private_subnet_ids
  security_groups                  = [aws_security_group.nlb.id]
  enable_cross_zone_load_balancing = true
  enable_deletion_protection       = var.nlb_deletion_protection
  ip_address_type                  = "ipv4"

  tags = merge(local.common_tags, { Name = "${var.name}-nlb" })
}

resource "aws_lb_target_group" "client" {
  name                   = "${var.name}-client"
  port                   = var.client_port
  protocol               = "TCP"
  target_type            = "ip"
  vpc_id                 = local.vpc_id
  preserve_client_ip     = "false"
  deregistration_delay   = var.nlb_deregistration_delay_seconds
  connection_termination = true

  health_check {
    enabled             = true
    protocol            = "HTTP"
    port                = tostring(var.http_port)
    path                = "/readyz"
    matcher             = "200"
    interval            = var.health_check_interval_seconds
    timeout             = local.health_check_timeout_seconds
    healthy_threshold   = local.health_check_healthy_threshold
    unhealthy_threshold = local.health_check_unhealthy_threshold
  }

  tags = merge(local.common_tags, { Name = "${var.name}-client" })
}

resource "aws_lb_target_group_attachment" "client" {
  for_each = local.slots

  target_group_arn = aws_lb_target_group.client.arn
  target_id        = local.slot_addresses[each.key]
  port             = var.client_port
}

resource "aws_lb_listener" "client" {
  load_balancer_arn = aws_lb.this.arn
  port              = var.client_port
  protocol          = "TCP"

  default_action {
    type             = "forward"
    target_group_arn = aws_lb_target_group.client.arn
  }

  tags = local.common_tags
}
