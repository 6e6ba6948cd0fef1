output "bucket_name" {
  description = "The upload bucket's name."
  value       = module.bucket.id
}

output "bucket_arn" {
  description = "The upload bucket's ARN."
  value       = module.bucket.arn
}
