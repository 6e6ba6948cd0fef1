output "certificate_arn" {
  description = "The validated certificate."
  value       = aws_acm_certificate_validation.main.certificate_arn
}
