variable "name" {
  description = "The bucket's name; null to have one made from name_prefix."
  type        = string
  default     = null
}

variable "name_prefix" {
  description = "Prefix of a generated name, when name is null."
  type        = string
  default     = null
}

variable "kms_key_arn" {
  description = "KMS key for server-side encryption; null for SSE-S3 (the only kind an S3 access-log destination accepts)."
  type        = string
  default     = null
}

variable "versioned" {
  description = "Keep object versions (state files: yes; personal data that must really go when deleted: no)."
  type        = bool
  default     = false
}

variable "force_destroy" {
  description = "Let terraform destroy the bucket with objects in it (transient buckets only)."
  type        = bool
  default     = false
}

variable "expire" {
  description = "Objects deleted by age: key prefix (\"\" for all) => days."
  type        = map(number)
  default     = {}
}

variable "noncurrent_expiry_days" {
  description = "Days a replaced or deleted version is kept (versioned buckets)."
  type        = number
  default     = 90
}

variable "log_bucket" {
  description = "Bucket that receives this bucket's server access logs, or null for none."
  type        = string
  default     = null
}

variable "log_sources" {
  description = "Names of the buckets that deliver their server access logs here (a log bucket; it must then go without kms_key_arn, log destinations take SSE-S3 only)."
  type        = list(string)
  default     = []
}
