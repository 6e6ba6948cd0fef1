variable "domain_name" {
  description = "The service's public name."
  type        = string
}

variable "zone_name" {
  description = "The existing public hosted zone the name is in."
  type        = string
}

variable "cluster_tag" {
  description = "Cluster name the Load Balancer Controller tags its ALB with (elbv2.k8s.aws/cluster)."
  type        = string
}

variable "alb_ready" {
  description = "Whether the controller's ALB exists yet, so that the alias record can point at it."
  type        = bool
}
