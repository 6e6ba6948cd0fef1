# Remote state: an S3 bucket made once by terraform/bootstrap (versioned, encrypted, private),
# locked with a lock object beside the state. The bucket's name is account-specific, so it is
# given at init time:
#
#   terraform init -backend-config="bucket=$(terraform -chdir=bootstrap output -raw state_bucket)"
terraform {
  backend "s3" {
    key          = "wastecoach/terraform.tfstate"
    region       = "ap-northeast-2"
    encrypt      = true
    use_lockfile = true
  }
}
