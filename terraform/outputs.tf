# What ansible/ and deploy/k8s need from this stack. `terraform output -raw ansible_inventory`
# is ansible/inventory/hosts.yml (docs/deploy.md step 4).

output "ansible_inventory" {
  description = "The Ansible inventory of the four nodes, reached through SSM (no SSH), as YAML."
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
        acme_email_domain                   = var.route53_zone_name
      }
      children = {
        control = { hosts = { (module.nodes.instance_ids.control) = { node_role = "control", private_ip = module.nodes.private_ips.control, availability_zone = module.nodes.availability_zones.control } } }
        api     = { hosts = { (module.nodes.instance_ids.api) = { node_role = "api", private_ip = module.nodes.private_ips.api, availability_zone = module.nodes.availability_zones.api } } }
        worker  = { hosts = { (module.nodes.instance_ids.worker) = { node_role = "worker", private_ip = module.nodes.private_ips.worker, availability_zone = module.nodes.availability_zones.worker } } }
        storage = { hosts = { (module.nodes.instance_ids.storage) = { node_role = "storage", private_ip = module.nodes.private_ips.storage, availability_zone = module.nodes.availability_zones.storage } } }
      }
    }
  })
}

output "instance_ids" {
  description = "EC2 instance id of each node role (for `aws ssm start-session --target`)."
  value       = module.nodes.instance_ids
}

output "private_ips" {
  description = "Private address of each node role."
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
