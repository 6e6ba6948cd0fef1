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

module "bucket" {
  source      = "../private_bucket"
  name        = var.bucket_name
  kms_key_arn = var.kms_key_arn
  # Raw files expire here whatever the application did; clean copies never by age.
  expire     = { "staging/" = var.raw_expiry_days }
  log_bucket = module.logs.id
}

# The page at / PUTs the file with exactly the headers the server returned with the URL:
# Content-Type, Content-Length (the browser's own) and If-None-Match: * (the write-once
# condition). Content-Type and If-None-Match are what the preflight asks for.
resource "aws_s3_bucket_cors_configuration" "uploads" {
  bucket = module.bucket.id
  cors_rule {
    allowed_methods = ["PUT"]
    allowed_origins = var.allowed_origins
    allowed_headers = ["content-type", "if-none-match"]
    expose_headers  = ["etag"]
    max_age_seconds = var.url_ttl_s
  }
}

# Server access logs, to a bucket of their own (a log destination takes SSE-S3 only), kept a
# year.
module "logs" {
  source = "../private_bucket"
  name   = "${var.bucket_name}-logs"
  expire      = { "" = 365 }
  log_sources = [var.bucket_name]
}
