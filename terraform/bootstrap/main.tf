# Made once per account, with local state, before the stack itself: the S3 bucket that holds
# the stack's Terraform state (backend.tf). Versioned (a bad apply can be rolled back to the
# previous state), encrypted, private, TLS only. See docs/deploy.md step 2.

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

resource "aws_s3_bucket" "state" {
  bucket = "wastecoach-tfstate-${data.aws_caller_identity.current.account_id}"
  lifecycle {
    prevent_destroy = true
  }
  # checkov:skip=CKV_AWS_18:read and written by Terraform alone; CloudTrail records who did
  # checkov:skip=CKV_AWS_144:a state file is rebuilt by import if a region is lost; its versions cover mistakes
  # checkov:skip=CKV2_AWS_62:nothing reacts to state writes
}

resource "aws_s3_bucket_versioning" "state" {
  bucket = aws_s3_bucket.state.id
  versioning_configuration {
    status = "Enabled"
  }
}

resource "aws_s3_bucket_server_side_encryption_configuration" "state" {
  bucket = aws_s3_bucket.state.id
  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm     = "aws:kms"
      kms_master_key_id = aws_kms_key.state.arn
    }
    bucket_key_enabled = true
  }
}

resource "aws_s3_bucket_public_access_block" "state" {
  bucket                  = aws_s3_bucket.state.id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_lifecycle_configuration" "state" {
  bucket = aws_s3_bucket.state.id
  rule {
    id     = "old-state-versions"
    status = "Enabled"
    filter {}
    noncurrent_version_expiration {
      noncurrent_days = 90
    }
    abort_incomplete_multipart_upload {
      days_after_initiation = 1
    }
  }
}

resource "aws_s3_bucket_policy" "state" {
  bucket = aws_s3_bucket.state.id
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Sid       = "TlsOnly"
      Effect    = "Deny"
      Principal = "*"
      Action    = "s3:*"
      Resource  = [aws_s3_bucket.state.arn, "${aws_s3_bucket.state.arn}/*"]
      Condition = { Bool = { "aws:SecureTransport" = "false" } }
    }]
  })
  depends_on = [aws_s3_bucket_public_access_block.state]
}

output "state_bucket" {
  description = "The state bucket: terraform init -backend-config=\"bucket=...\" in terraform/."
  value       = aws_s3_bucket.state.id
}
