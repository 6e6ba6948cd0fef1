# Terraform and provider versions for the Waste Coach stack (the root module in this folder).
terraform {
  # 1.10: the S3 backend locks with a lock file in the bucket itself (use_lockfile), no
  # DynamoDB table.
  required_version = ">= 1.10.0"
  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = "~> 5.80"
    }
  }
}

provider "aws" {
  region = var.region
  default_tags {
    tags = {
      Project     = "wastecoach"
      Environment = var.environment
      ManagedBy   = "terraform"
    }
  }
}
