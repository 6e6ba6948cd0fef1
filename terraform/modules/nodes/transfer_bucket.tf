# The bucket Ansible's aws_ssm connection copies module files through: private, encrypted,
# objects deleted after a day (they are only in flight).

resource "aws_s3_bucket" "ssm_transfer" {
  bucket_prefix = "${var.name}-ansible-"
  force_destroy = true
  # checkov:skip=CKV_AWS_18:files in flight for a minute; access logs would outlive them
  # checkov:skip=CKV_AWS_144:nothing here is worth a second region; objects live for minutes
  # checkov:skip=CKV2_AWS_62:nothing reacts to these objects
  # checkov:skip=CKV_AWS_21:transient copies; versions would only keep deleted files around
}

resource "aws_s3_bucket_public_access_block" "ssm_transfer" {
  bucket                  = aws_s3_bucket.ssm_transfer.id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_ownership_controls" "ssm_transfer" {
  bucket = aws_s3_bucket.ssm_transfer.id
  rule {
    object_ownership = "BucketOwnerEnforced"
  }
}

resource "aws_s3_bucket_server_side_encryption_configuration" "ssm_transfer" {
  bucket = aws_s3_bucket.ssm_transfer.id
  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm     = "aws:kms"
      kms_master_key_id = var.kms_key_arn
    }
    bucket_key_enabled = true
  }
}

resource "aws_s3_bucket_lifecycle_configuration" "ssm_transfer" {
  bucket = aws_s3_bucket.ssm_transfer.id
  rule {
    id     = "expire"
    status = "Enabled"
    filter {}
    expiration {
      days = 1
    }
    abort_incomplete_multipart_upload {
      days_after_initiation = 1
    }
  }
}
