# One security group every node has ("node": what the cluster needs between its nodes) and one
# per role for what that role alone serves. Nothing opens SSH: operators use SSM.

resource "aws_security_group" "node" {
  name        = "${var.name}-node"
  description = "Every cluster node: kubelet, Calico VXLAN and Typha, node-exporter between nodes"
  vpc_id      = aws_vpc.main.id
  tags        = { Name = "${var.name}-node" }
  # checkov:skip=CKV2_AWS_5:attached to the instances in modules/nodes (through this module's output), which checkov does not follow across modules
}

resource "aws_security_group" "control" {
  name        = "${var.name}-control"
  description = "Control plane and monitoring node: the Kubernetes API server"
  vpc_id      = aws_vpc.main.id
  tags        = { Name = "${var.name}-control" }
  # checkov:skip=CKV2_AWS_5:attached to the instances in modules/nodes (through this module's output), which checkov does not follow across modules
}

resource "aws_security_group" "api" {
  name        = "${var.name}-api"
  description = "API node: NodePorts for the ALB in the public subnets"
  vpc_id      = aws_vpc.main.id
  # The Load Balancer Controller adds its ALB's rule to the one group of a target that carries
  # the cluster tag: this one (the shared node group must not carry it).
  tags = {
    Name                                = "${var.name}-api"
    "kubernetes.io/cluster/${var.name}" = "owned"
  }
  # checkov:skip=CKV2_AWS_5:attached to the instances in modules/nodes (through this module's output), which checkov does not follow across modules
}

resource "aws_security_group" "worker" {
  name        = "${var.name}-worker"
  description = "Worker node: serves nothing beyond the node group"
  vpc_id      = aws_vpc.main.id
  tags        = { Name = "${var.name}-worker" }
  # checkov:skip=CKV2_AWS_5:attached to the instances in modules/nodes (through this module's output), which checkov does not follow across modules
}

resource "aws_security_group" "storage" {
  name        = "${var.name}-storage"
  description = "Storage node: PostgreSQL, Redis, RabbitMQ for the cluster nodes only"
  vpc_id      = aws_vpc.main.id
  tags        = { Name = "${var.name}-storage" }
  # checkov:skip=CKV2_AWS_5:attached to the instances in modules/nodes (through this module's output), which checkov does not follow across modules
}

locals {
  # Between nodes. Pod traffic crosses nodes inside VXLAN, so only these ports are needed.
  node_ports = {
    kubelet       = { port = 10250, to = 10250, protocol = "tcp", what = "kubelet API (control plane, Prometheus)" }
    vxlan         = { port = 4789, to = 4789, protocol = "udp", what = "Calico VXLAN between nodes" }
    typha         = { port = 5473, to = 5473, protocol = "tcp", what = "Calico Typha" }
    node_exporter = { port = 9100, to = 9100, protocol = "tcp", what = "node-exporter, scraped by Prometheus" }
  }
  storage_ports = {
    postgresql = { port = 5432, what = "PostgreSQL from the cluster's pods (SNAT to node addresses)" }
    redis      = { port = 6379, what = "Redis from the cluster's pods" }
    amqp       = { port = 5672, what = "RabbitMQ AMQP from the cluster's pods" }
    rabbit_prom = { port = 15692, what = "RabbitMQ Prometheus plugin, scraped by Prometheus" }
  }
}

resource "aws_vpc_security_group_ingress_rule" "node" {
  for_each                     = local.node_ports
  security_group_id            = aws_security_group.node.id
  referenced_security_group_id = aws_security_group.node.id
  ip_protocol                  = each.value.protocol
  from_port                    = each.value.port
  to_port                      = each.value.to
  description                  = each.value.what
}

resource "aws_vpc_security_group_ingress_rule" "apiserver" {
  security_group_id            = aws_security_group.control.id
  referenced_security_group_id = aws_security_group.node.id
  ip_protocol                  = "tcp"
  from_port                    = 6443
  to_port                      = 6443
  description                  = "Kubernetes API server from the nodes and their pods"
}

resource "aws_vpc_security_group_ingress_rule" "nodeports" {
  count             = length(local.public_cidrs)
  security_group_id = aws_security_group.api.id
  cidr_ipv4         = local.public_cidrs[count.index]
  ip_protocol       = "tcp"
  from_port         = 30000
  to_port           = 32767
  description       = "NodePorts from the ALB in public subnet ${count.index}"
}

resource "aws_vpc_security_group_ingress_rule" "storage" {
  for_each                     = local.storage_ports
  security_group_id            = aws_security_group.storage.id
  referenced_security_group_id = aws_security_group.node.id
  ip_protocol                  = "tcp"
  from_port                    = each.value.port
  to_port                      = each.value.port
  description                  = each.value.what
}

# Out: to the other nodes, and HTTPS/HTTP to the internet through NAT (packages, images from
# GHCR, S3, the LLM endpoint, the sign-in providers, SSM).
resource "aws_vpc_security_group_egress_rule" "node_to_nodes" {
  security_group_id            = aws_security_group.node.id
  referenced_security_group_id = aws_security_group.node.id
  ip_protocol                  = "-1"
  description                  = "Anything to the other cluster nodes (their own groups decide)"
}

resource "aws_vpc_security_group_egress_rule" "node_https" {
  security_group_id = aws_security_group.node.id
  cidr_ipv4         = "0.0.0.0/0"
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
  description       = "HTTPS out: images, S3, SSM, the LLM endpoint, sign-in providers"
}

resource "aws_vpc_security_group_egress_rule" "node_http" {
  security_group_id = aws_security_group.node.id
  cidr_ipv4         = "0.0.0.0/0"
  ip_protocol       = "tcp"
  from_port         = 80
  to_port           = 80
  description       = "HTTP out: Debian's package mirrors (signed packages)"
}
