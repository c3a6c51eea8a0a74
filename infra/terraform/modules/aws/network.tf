# Security groups, the load balancer in front of the relay (and optionally the Prefect UI),
# the private DNS name the services reach the Prefect server by.

resource "aws_security_group" "alb" {
  name        = "${var.name}-alb"
  description = "Load balancer: HTTPS to the relay, and the Prefect UI listener when enabled."
  vpc_id      = var.vpc_id
  tags        = local.tags
}

resource "aws_vpc_security_group_ingress_rule" "alb_relay" {
  for_each = toset(var.relay_allowed_cidrs)

  security_group_id = aws_security_group.alb.id
  description       = "Relay webhook (EventBridge API destination)"
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
  cidr_ipv4         = each.value
}

resource "aws_vpc_security_group_ingress_rule" "alb_prefect_ui" {
  for_each = local.prefect_ui_public ? toset(var.prefect_ui_allowed_cidrs) : toset([])

  security_group_id = aws_security_group.alb.id
  description       = "Prefect UI and API"
  ip_protocol       = "tcp"
  from_port         = var.prefect_ui_port
  to_port           = var.prefect_ui_port
  cidr_ipv4         = each.value
}

resource "aws_vpc_security_group_egress_rule" "alb_to_relay" {
  security_group_id            = aws_security_group.alb.id
  ip_protocol                  = "tcp"
  from_port                    = local.relay_port
  to_port                      = local.relay_port
  referenced_security_group_id = aws_security_group.relay.id
}

resource "aws_vpc_security_group_egress_rule" "alb_to_prefect" {
  count = local.self_hosted ? 1 : 0

  security_group_id            = aws_security_group.alb.id
  ip_protocol                  = "tcp"
  from_port                    = local.prefect_port
  to_port                      = local.prefect_port
  referenced_security_group_id = aws_security_group.prefect_server[0].id
}

# The relay, the workers and the setup task only call out (Prefect, S3, Power BI, the image
# registry); the relay also takes the load balancer's traffic.
resource "aws_security_group" "relay" {
  name        = "${var.name}-relay"
  description = "Relay tasks."
  vpc_id      = var.vpc_id
  tags        = local.tags
}

resource "aws_vpc_security_group_ingress_rule" "relay_from_alb" {
  security_group_id            = aws_security_group.relay.id
  ip_protocol                  = "tcp"
  from_port                    = local.relay_port
  to_port                      = local.relay_port
  referenced_security_group_id = aws_security_group.alb.id
}

resource "aws_security_group" "tasks" {
  name        = "${var.name}-tasks"
  description = "Worker and setup tasks."
  vpc_id      = var.vpc_id
  tags        = local.tags
}

resource "aws_vpc_security_group_egress_rule" "out" {
  for_each = {
    relay = aws_security_group.relay.id
    tasks = aws_security_group.tasks.id
  }

  security_group_id = each.value
  description       = "Outbound (Prefect API, S3, Power BI, image pulls)"
  ip_protocol       = "-1"
  cidr_ipv4         = "0.0.0.0/0"
}

resource "aws_security_group" "prefect_server" {
  count = local.self_hosted ? 1 : 0

  name        = "${var.name}-prefect-server"
  description = "Prefect server tasks."
  vpc_id      = var.vpc_id
  tags        = local.tags
}

resource "aws_vpc_security_group_ingress_rule" "prefect_from" {
  for_each = local.self_hosted ? {
    alb   = aws_security_group.alb.id
    relay = aws_security_group.relay.id
    tasks = aws_security_group.tasks.id
  } : {}

  security_group_id            = aws_security_group.prefect_server[0].id
  description                  = "Prefect API from ${each.key}"
  ip_protocol                  = "tcp"
  from_port                    = local.prefect_port
  to_port                      = local.prefect_port
  referenced_security_group_id = each.value
}

resource "aws_vpc_security_group_egress_rule" "prefect_out" {
  count = local.self_hosted ? 1 : 0

  security_group_id = aws_security_group.prefect_server[0].id
  description       = "Outbound (database, image pulls)"
  ip_protocol       = "-1"
  cidr_ipv4         = "0.0.0.0/0"
}

# --- Load balancer ------------------------------------------------------------------------

resource "aws_lb" "this" {
  name                       = "${var.name}-relay"
  load_balancer_type         = "application"
  internal                   = false
  subnets                    = var.public_subnet_ids
  security_groups            = [aws_security_group.alb.id]
  drop_invalid_header_fields = true
  idle_timeout               = 60
  tags                       = local.tags
}

resource "aws_lb_target_group" "relay" {
  name                 = "${var.name}-relay"
  port                 = local.relay_port
  protocol             = "HTTP"
  target_type          = "ip"
  vpc_id               = var.vpc_id
  deregistration_delay = 30

  health_check {
    path                = "/healthz"
    matcher             = "200"
    interval            = 15
    healthy_threshold   = 2
    unhealthy_threshold = 3
  }

  tags = local.tags
}

resource "aws_lb_listener" "https" {
  load_balancer_arn = aws_lb.this.arn
  port              = 443
  protocol          = "HTTPS"
  ssl_policy        = "ELBSecurityPolicy-TLS13-1-2-2021-06"
  certificate_arn   = var.certificate_arn

  # Only the webhook and the health check are published; everything else answers 404.
  default_action {
    type = "fixed-response"
    fixed_response {
      content_type = "text/plain"
      message_body = "not found"
      status_code  = "404"
    }
  }

  tags = local.tags
}

resource "aws_lb_listener_rule" "relay" {
  listener_arn = aws_lb_listener.https.arn
  priority     = 10

  condition {
    path_pattern {
      values = ["/minio/events", "/healthz"]
    }
  }

  action {
    type             = "forward"
    target_group_arn = aws_lb_target_group.relay.arn
  }

  tags = local.tags
}

resource "aws_lb_target_group" "prefect" {
  count = local.self_hosted ? 1 : 0

  name                 = "${var.name}-prefect"
  port                 = local.prefect_port
  protocol             = "HTTP"
  target_type          = "ip"
  vpc_id               = var.vpc_id
  deregistration_delay = 30

  health_check {
    path                = "/api/health"
    matcher             = "200"
    interval            = 30
    healthy_threshold   = 2
    unhealthy_threshold = 5
  }

  tags = local.tags
}

resource "aws_lb_listener" "prefect_ui" {
  count = local.prefect_ui_public ? 1 : 0

  load_balancer_arn = aws_lb.this.arn
  port              = var.prefect_ui_port
  protocol          = "HTTPS"
  ssl_policy        = "ELBSecurityPolicy-TLS13-1-2-2021-06"
  certificate_arn   = var.certificate_arn

  default_action {
    type             = "forward"
    target_group_arn = aws_lb_target_group.prefect[0].arn
  }

  tags = local.tags
}

resource "aws_route53_record" "relay" {
  count = var.route53_zone_id == "" ? 0 : 1

  zone_id = var.route53_zone_id
  name    = var.relay_domain_name
  type    = "A"

  alias {
    name                   = aws_lb.this.dns_name
    zone_id                = aws_lb.this.zone_id
    evaluate_target_health = true
  }
}

# --- Private name of the Prefect server ---------------------------------------------------

resource "aws_service_discovery_private_dns_namespace" "this" {
  count = local.self_hosted ? 1 : 0

  name        = "${var.name}.internal"
  description = "Private names of the ${var.name} pipeline's services."
  vpc         = var.vpc_id
  tags        = local.tags
}

resource "aws_service_discovery_service" "prefect_server" {
  count = local.self_hosted ? 1 : 0

  name = "prefect-server"

  dns_config {
    namespace_id   = aws_service_discovery_private_dns_namespace.this[0].id
    routing_policy = "MULTIVALUE"
    dns_records {
      type = "A"
      ttl  = 10
    }
  }

  health_check_custom_config {
    failure_threshold = 1
  }

  tags = local.tags
}
