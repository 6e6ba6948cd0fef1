# A private bucket as every bucket of this stack is made: public access blocked, owner-enforced
# objects, encrypted at rest (the stack's KMS key, or SSE-S3), TLS only, incomplete uploads
# cleaned up, and the expiry, versioning and access logging each caller asks for (as a log
# bucket: log_sources; as a logged one: log_bucket).

resource "aws_s3_bucket" "this" {
  bucket        = var.name
  bucket_prefix = var.name == null ? var.name_prefix : null
  force_destroy = var.force_destroy
  # These skips cover every caller of this module, so each reason names every bucket: the
  # upload bucket and its access-log bucket (modules/uploads), the Ansible transfer bucket
  # (modules/nodes), the Terraform state bucket and its access-log bucket (bootstrap).
  # checkov:skip=CKV_AWS_144:a second region is worth it for none: raw uploads live minutes and clean copies are the user's to delete, logs and transfer files expire, the state is versioned and can be rebuilt by terraform import
  # checkov:skip=CKV2_AWS_62:no code reacts to objects in any of them by event: the server and workers act on the API's own records
  # checkov:skip=CKV_AWS_18:the upload and state buckets log (log_bucket); a log bucket does not log itself (each entry would write another); the transfer bucket holds module files for a day, and each SSM session that moves them is in CloudTrail (StartSession)
  # checkov:skip=CKV_AWS_21:only the state bucket is versioned (versioned = true): the upload bucket must not keep deleted photos, the two log buckets and the transfer bucket hold expiring files
  # checkov:skip=CKV_AWS_145:the upload, transfer and state buckets use the stack's KMS key (kms_key_arn); the two access-log buckets cannot, a log destination takes SSE-S3 only
}

resource "aws_s3_bucket_public_access_block" "this" {
  bucket                  = aws_s3_bucket.this.id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_ownership_controls" "this" {
  bucket = aws_s3_bucket.this.id
  rule {
    object_ownership = "BucketOwnerEnforced"
  }
}

resource "aws_s3_bucket_server_side_encryption_configuration" "this" {
  bucket = aws_s3_bucket.this.id
  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm     = var.kms_key_arn == null ? "AES256" : "aws:kms"
      kms_master_key_id = var.kms_key_arn
    }
    # One data key per bucket, not per object: fewer KMS calls for many small objects.
    bucket_key_enabled = var.kms_key_arn != null
  }
}

resource "aws_s3_bucket_versioning" "this" {
  count  = var.versioned ? 1 : 0
  bucket = aws_s3_bucket.this.id
  versioning_configuration {
    status = "Enabled"
  }
}

resource "aws_s3_bucket_lifecycle_configuration" "this" {
  bucket = aws_s3_bucket.this.id
  rule {
    id     = "abort-incomplete-multipart"
    status = "Enabled"
    filter {}
    abort_incomplete_multipart_upload {
      days_after_initiation = 1
    }
    dynamic "noncurrent_version_expiration" {
      for_each = var.versioned ? [1] : []
      content {
        noncurrent_days = var.noncurrent_expiry_days
      }
    }
  }
  dynamic "rule" {
    for_each = var.expire
    content {
      id     = "expire-${rule.key == "" ? "all" : trimsuffix(rule.key, "/")}"
      status = "Enabled"
      filter {
        prefix = rule.key
      }
      expiration {
        days = rule.value
      }
    }
  }
  depends_on = [aws_s3_bucket_versioning.this]
}

resource "aws_s3_bucket_logging" "this" {
  count         = var.log_bucket == null ? 0 : 1
  bucket        = aws_s3_bucket.this.id
  target_bucket = var.log_bucket
  target_prefix = "${aws_s3_bucket.this.id}/"
}

resource "aws_s3_bucket_policy" "this" {
  bucket = aws_s3_bucket.this.id
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = concat(length(var.log_sources) == 0 ? [] : [{
      Sid       = "S3ServerAccessLogs"
      Effect    = "Allow"
      Principal = { Service = "logging.s3.amazonaws.com" }
      Action    = "s3:PutObject"
      Resource  = "${aws_s3_bucket.this.arn}/*"
      Condition = { ArnLike = { "aws:SourceArn" = [for b in var.log_sources : "arn:aws:s3:::${b}"] } }
    }], [{
      Sid       = "TlsOnly"
      Effect    = "Deny"
      Principal = "*"
      Action    = "s3:*"
      Resource  = [aws_s3_bucket.this.arn, "${aws_s3_bucket.this.arn}/*"]
      Condition = { Bool = { "aws:SecureTransport" = "false" } }
    }])
  })
  depends_on = [aws_s3_bucket_public_access_block.this]
  lifecycle {
    precondition {
      condition     = length(var.log_sources) == 0 || var.kms_key_arn == null
      error_message = "A log bucket (log_sources) must use SSE-S3: S3 server access logging cannot write to a KMS-encrypted bucket."
    }
  }
}
