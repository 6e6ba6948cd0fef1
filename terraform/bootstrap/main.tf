# Made once per account, with local state, before the stack itself: the S3 bucket that holds
# the stack's Terraform state (backend.tf), and the bucket of its access logs. Versioned,
# encrypted, private, TLS only. Destroying
# it is refused by AWS while it holds state (it is not force_destroy). See docs/deploy.md
# step 2.

terraform {
  required_version = ">= 1.10.0"
  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = "~> 5.80"
    }
  }
}

variable "region" {
  description = "Region of the state bucket (the stack's region)."
  type        = string
  default     = "ap-northeast-2"
  validation {
    condition     = can(regex("^[a-z]{2}(-gov)?-[a-z]+-[0-9]$", var.region))
    error_message = "region must be an AWS region name such as ap-northeast-2."
  }
}

provider "aws" {
  region = var.region
  default_tags {
    tags = { Project = "wastecoach", ManagedBy = "terraform" }
  }
}

data "aws_caller_identity" "current" {}

resource "aws_kms_key" "state" {
  description             = "wastecoach Terraform state"
  enable_key_rotation     = true
  deletion_window_in_days = 30
  # checkov:skip=CKV2_AWS_64:the default key policy (the account administers the key) is the policy wanted here
}

locals {
  state_bucket = "wastecoach-tfstate-${data.aws_caller_identity.current.account_id}"
}

module "state" {
  source      = "../modules/private_bucket"
  name        = local.state_bucket
  kms_key_arn = aws_kms_key.state.arn
  # A bad apply can be rolled back to the previous state for 90 days.
  versioned = true
  # Who read the state (it holds the stack's outputs) and when: server access logs.
  log_bucket = module.state_logs.id
}

# The state bucket's access logs, kept a year (a log destination takes SSE-S3 only).
module "state_logs" {
  source      = "../modules/private_bucket"
  name        = "${local.state_bucket}-logs"
  expire      = { "" = 365 }
  log_sources = [local.state_bucket]
}

output "state_bucket" {
  description = "The state bucket: terraform init -backend-config=\"bucket=...\" in terraform/."
  value       = module.state.id
}
