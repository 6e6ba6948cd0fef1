output "vpc_id" {
  description = "The VPC."
  value       = aws_vpc.main.id
}

output "public_subnet_ids" {
  description = "Public subnets, one per zone (the ALB)."
  value       = aws_subnet.public[*].id
}

output "private_subnet_ids" {
  description = "Private subnets, one per zone (the nodes)."
  value       = aws_subnet.private[*].id
}

output "node_security_group_ids" {
  description = "Security groups of each node role (the shared node group first)."
  value = {
    control = [aws_security_group.node.id, aws_security_group.control.id]
    api     = [aws_security_group.node.id, aws_security_group.api.id]
    worker  = [aws_security_group.node.id, aws_security_group.worker.id]
    storage = [aws_security_group.node.id, aws_security_group.storage.id]
  }
}
