# The Waste Coach stack on AWS: the network, the four kubeadm nodes, the upload bucket, the
# certificate and the DNS record. ansible/ then turns the nodes into the cluster
# (docs/deploy.md walks the whole path).

locals {
  name = "wastecoach-${var.environment}"
}

data "aws_caller_identity" "current" {}

# One customer-managed key for what this stack encrypts at rest (the upload bucket, the data
# volume, the flow logs, the SSM transfer bucket), rotated yearly.
resource "aws_kms_key" "main" {
  description             = "${local.name}: uploads, volumes, logs"
  enable_key_rotation     = true
  deletion_window_in_days = 30
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        Sid       = "AccountAdministers"
        Effect    = "Allow"
        Principal = { AWS = "arn:aws:iam::${data.aws_caller_identity.current.account_id}:root" }
        Action    = "kms:*"
        Resource  = "*"
      },
      {
        Sid       = "CloudWatchLogsEncrypt"
        Effect    = "Allow"
        Principal = { Service = "logs.${var.region}.amazonaws.com" }
        Action    = ["kms:Encrypt*", "kms:Decrypt*", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:Describe*"]
        Resource  = "*"
        Condition = {
          ArnLike = {
            "kms:EncryptionContext:aws:logs:arn" = "arn:aws:logs:${var.region}:${data.aws_caller_identity.current.account_id}:log-group:*"
          }
        }
      },
    ]
  })
}

resource "aws_kms_alias" "main" {
  name          = "alias/${local.name}"
  target_key_id = aws_kms_key.main.key_id
}

module "network" {
  source             = "./modules/network"
  name               = local.name
  vpc_cidr           = var.vpc_cidr
  availability_zones = var.availability_zones
  nat_gateway_per_az = var.nat_gateway_per_az
  kms_key_arn        = aws_kms_key.main.arn
  log_retention_days = var.log_retention_days
}

module "uploads" {
  source             = "./modules/uploads"
  bucket_name        = var.upload_bucket_name
  kms_key_arn        = aws_kms_key.main.arn
  allowed_origins    = ["https://${var.domain_name}"]
  raw_expiry_days    = var.raw_upload_expiry_days
  url_ttl_s          = 600
}

module "nodes" {
  source                 = "./modules/nodes"
  name                   = local.name
  region                 = var.region
  private_subnet_ids     = module.network.private_subnet_ids
  security_group_ids     = module.network.node_security_group_ids
  instance_types         = var.instance_types
  node_counts            = var.node_counts
  root_volume_gb         = var.root_volume_gb
  storage_data_volume_gb = var.storage_data_volume_gb
  kms_key_arn            = aws_kms_key.main.arn
  upload_bucket_arn      = module.uploads.bucket_arn
}

module "dns" {
  source      = "./modules/dns"
  domain_name = var.domain_name
  zone_name   = var.route53_zone_name
  cluster_tag = local.name
  alb_ready   = var.alb_ready
}
