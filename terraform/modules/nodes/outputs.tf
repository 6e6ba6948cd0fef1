output "roles" {
  description = "Role of each node, by node name."
  value       = local.nodes
}

output "instance_ids" {
  description = "Instance id of each node, by node name."
  value       = { for role, node in aws_instance.node : role => node.id }
}

output "private_ips" {
  description = "Private address of each node, by node name."
  value       = { for role, node in aws_instance.node : role => node.private_ip }
}

output "storage_data_volume_id" {
  description = "The storage node's data volume (Ansible finds its device by this id)."
  value       = aws_ebs_volume.storage_data.id
}

output "ssm_transfer_bucket" {
  description = "Bucket of Ansible's SSM connection."
  value       = module.ssm_transfer.id
}

output "role_names" {
  description = "IAM role of each node role."
  value       = { for role, r in aws_iam_role.node : role => r.name }
}

output "availability_zones" {
  description = "Availability zone of each node, by node name (the kubelet's EC2 provider id names it)."
  value       = { for role, node in aws_instance.node : role => node.availability_zone }
}
