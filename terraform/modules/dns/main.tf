# The TLS certificate (ACM, validated through the hosted zone) and the public record. The ALB is
# made by the AWS Load Balancer Controller from the Ingress (deploy/k8s/ingress.yaml), not by
# Terraform, so the alias is made on a second apply once it exists (alb_ready = true), found
# by the tags the controller puts on it.

data "aws_route53_zone" "main" {
  name         = var.zone_name
  private_zone = false
}

resource "aws_acm_certificate" "main" {
  domain_name       = var.domain_name
  validation_method = "DNS"
  lifecycle {
    create_before_destroy = true
  }
}

resource "aws_route53_record" "validation" {
  for_each = {
    for o in aws_acm_certificate.main.domain_validation_options : o.domain_name => {
      name   = o.resource_record_name
      type   = o.resource_record_type
      record = o.resource_record_value
    }
  }
  zone_id         = data.aws_route53_zone.main.zone_id
  name            = each.value.name
  type            = each.value.type
  records         = [each.value.record]
  ttl             = 300
  allow_overwrite = true
}

resource "aws_acm_certificate_validation" "main" {
  certificate_arn         = aws_acm_certificate.main.arn
  validation_record_fqdns = [for r in aws_route53_record.validation : r.fqdn]
}

data "aws_lb" "ingress" {
  count = var.alb_ready ? 1 : 0
  tags = {
    "elbv2.k8s.aws/cluster" = var.cluster_tag
    "ingress.k8s.aws/stack" = "wastecoach/wastecoach"
  }
}

resource "aws_route53_record" "service" {
  count    = var.alb_ready ? 1 : 0
  zone_id  = data.aws_route53_zone.main.zone_id
  name     = var.domain_name
  type     = "A"
  alias {
    name                   = data.aws_lb.ingress[0].dns_name
    zone_id                = data.aws_lb.ingress[0].zone_id
    evaluate_target_health = true
  }
}
