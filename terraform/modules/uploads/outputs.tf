output "bucket_name" {
  description = "The upload bucket's name."
  value       = aws_s3_bucket.uploads.id
}

output "bucket_arn" {
  description = "The upload bucket's ARN."
  value       = aws_s3_bucket.uploads.arn
}
