# What ansible/ and deploy/k8s need from this stack. `terraform output -raw ansible_inventory`
# is ansible/inventory/hosts.yml (docs/deploy.md step 4).

output "ansible_inventory" {
  description = "The Ansible inventory of the nodes, grouped by role, reached through SSM (no SSH), as YAML."
  value = yamlencode({
    all = {
      vars = {
        ansible_connection                  = "amazon.aws.aws_ssm"
        ansible_aws_ssm_region              = var.region
        ansible_aws_ssm_bucket_name         = module.nodes.ssm_transfer_bucket
        ansible_python_interpreter          = "/usr/bin/python3"
        cluster_name                        = local.name
        aws_region                          = var.region
        vpc_id                              = module.network.vpc_id
        vpc_cidr                            = var.vpc_cidr
        control_plane_endpoint              = module.nodes.private_ips.control
        storage_private_ip                  = module.nodes.private_ips.storage
        storage_data_volume_id              = module.nodes.storage_data_volume_id
        upload_bucket                       = module.uploads.bucket_name
        domain_name                         = var.domain_name
      }
      # One group per role, the hosts being instance ids (what the SSM connection targets).
      children = {
        for role in ["control", "api", "worker", "storage"] : role => {
          hosts = {
            for name, node_role in module.nodes.roles : module.nodes.instance_ids[name] => {
              node_role         = node_role
              private_ip        = module.nodes.private_ips[name]
              availability_zone = module.nodes.availability_zones[name]
            } if node_role == role
          }
        }
      }
    }
  })
}

output "instance_ids" {
  description = "EC2 instance id of each node, by name (for `aws ssm start-session --target`)."
  value       = module.nodes.instance_ids
}

output "private_ips" {
  description = "Private address of each node, by name."
  value       = module.nodes.private_ips
}

output "upload_bucket" {
  description = "The upload bucket: WASTECOACH_S3__BUCKET in deploy/k8s/configmap.yaml."
  value       = module.uploads.bucket_name
}

output "vpc_cidr" {
  description = "The VPC's range: WASTECOACH_TRUSTED_PROXIES and the NetworkPolicies' ipBlocks in deploy/k8s."
  value       = var.vpc_cidr
}

output "certificate_arn" {
  description = "The ACM certificate of domain_name (the Load Balancer Controller finds it by host)."
  value       = module.dns.certificate_arn
}
