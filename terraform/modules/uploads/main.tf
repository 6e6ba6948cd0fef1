# The upload bucket: private, encrypted with the stack's KMS key, TLS only, written by the
# browser through pre-signed PUT URLs (server/uploads/storage.py), read by the API and the
# workers through their instance profiles.
#
# Keys (server/uploads/service.py): a raw file goes to staging/<user>/<id> with its URL; its
# first use verifies it and writes the clean copy to u/<user>/<id>.jpg, then the staging
# object is deleted (or replaced by a small tombstone until its URL has expired). The
# application sweeps abandoned staging objects within the hour; the lifecycle rule below
# deletes whatever is left there after raw_expiry_days, so a raw, unverified file never
# outlives that. Clean copies are the user's data: deleted with the account, never by age.

resource "aws_s3_bucket" "uploads" {
  bucket = var.bucket_name
  # checkov:skip=CKV_AWS_21:versioning would keep every deleted upload (users' photos) as a noncurrent version; deletion must be real
  # checkov:skip=CKV_AWS_144:raw uploads live for minutes and clean copies are re-creatable from nothing; a second region adds cost and another copy of personal data
  # checkov:skip=CKV2_AWS_62:nothing reacts to uploads by event; the application reads them when a scan names them
}

resource "aws_s3_bucket_public_access_block" "uploads" {
  bucket                  = aws_s3_bucket.uploads.id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_ownership_controls" "uploads" {
  bucket = aws_s3_bucket.uploads.id
  rule {
    object_ownership = "BucketOwnerEnforced"
  }
}

resource "aws_s3_bucket_server_side_encryption_configuration" "uploads" {
  bucket = aws_s3_bucket.uploads.id
  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm     = "aws:kms"
      kms_master_key_id = var.kms_key_arn
    }
    # One data key per bucket, not per object: fewer KMS calls for many small uploads.
    bucket_key_enabled = true
  }
}

resource "aws_s3_bucket_policy" "uploads" {
  bucket = aws_s3_bucket.uploads.id
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Sid       = "TlsOnly"
      Effect    = "Deny"
      Principal = "*"
      Action    = "s3:*"
      Resource  = [aws_s3_bucket.uploads.arn, "${aws_s3_bucket.uploads.arn}/*"]
      Condition = { Bool = { "aws:SecureTransport" = "false" } }
    }]
  })
  depends_on = [aws_s3_bucket_public_access_block.uploads]
}

# The page at / PUTs the file with exactly the headers the server returned with the URL:
# Content-Type, Content-Length (the browser's own) and If-None-Match: * (the write-once
# condition). Content-Type and If-None-Match are what the preflight asks for.
resource "aws_s3_bucket_cors_configuration" "uploads" {
  bucket = aws_s3_bucket.uploads.id
  cors_rule {
    allowed_methods = ["PUT"]
    allowed_origins = var.allowed_origins
    allowed_headers = ["content-type", "if-none-match"]
    expose_headers  = ["etag"]
    max_age_seconds = var.url_ttl_s
  }
}

resource "aws_s3_bucket_lifecycle_configuration" "uploads" {
  bucket = aws_s3_bucket.uploads.id
  rule {
    id     = "expire-raw-uploads"
    status = "Enabled"
    filter {
      prefix = "staging/"
    }
    expiration {
      days = var.raw_expiry_days
    }
  }
  rule {
    id     = "abort-incomplete-multipart"
    status = "Enabled"
    filter {}
    abort_incomplete_multipart_upload {
      days_after_initiation = 1
    }
  }
}

# Server access logs, to a bucket of their own (a log destination takes SSE-S3 only).
resource "aws_s3_bucket" "logs" {
  bucket = "${var.bucket_name}-logs"
  # checkov:skip=CKV_AWS_18:this is the access-log bucket; logging it into itself would loop
  # checkov:skip=CKV_AWS_145:S3 server access logs can only be delivered to SSE-S3 buckets
  # checkov:skip=CKV_AWS_21:logs are written once and expire; versions add nothing
  # checkov:skip=CKV_AWS_144:access logs stay in the region of the bucket they describe
  # checkov:skip=CKV2_AWS_62:nothing reacts to log objects
}

resource "aws_s3_bucket_public_access_block" "logs" {
  bucket                  = aws_s3_bucket.logs.id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_ownership_controls" "logs" {
  bucket = aws_s3_bucket.logs.id
  rule {
    object_ownership = "BucketOwnerEnforced"
  }
}

resource "aws_s3_bucket_server_side_encryption_configuration" "logs" {
  bucket = aws_s3_bucket.logs.id
  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm = "AES256"
    }
  }
}

resource "aws_s3_bucket_policy" "logs" {
  bucket = aws_s3_bucket.logs.id
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        Sid       = "S3ServerAccessLogs"
        Effect    = "Allow"
        Principal = { Service = "logging.s3.amazonaws.com" }
        Action    = "s3:PutObject"
        Resource  = "${aws_s3_bucket.logs.arn}/*"
        Condition = { ArnLike = { "aws:SourceArn" = aws_s3_bucket.uploads.arn } }
      },
      {
        Sid       = "TlsOnly"
        Effect    = "Deny"
        Principal = "*"
        Action    = "s3:*"
        Resource  = [aws_s3_bucket.logs.arn, "${aws_s3_bucket.logs.arn}/*"]
        Condition = { Bool = { "aws:SecureTransport" = "false" } }
      },
    ]
  })
  depends_on = [aws_s3_bucket_public_access_block.logs]
}

resource "aws_s3_bucket_lifecycle_configuration" "logs" {
  bucket = aws_s3_bucket.logs.id
  rule {
    id     = "expire-logs"
    status = "Enabled"
    filter {}
    expiration {
      days = 365
    }
    abort_incomplete_multipart_upload {
      days_after_initiation = 1
    }
  }
}

resource "aws_s3_bucket_logging" "uploads" {
  bucket        = aws_s3_bucket.uploads.id
  target_bucket = aws_s3_bucket.logs.id
  target_prefix = "uploads/"
}
