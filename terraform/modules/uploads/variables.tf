variable "bucket_name" {
  description = "Name of the upload bucket."
  type        = string
}

variable "kms_key_arn" {
  description = "KMS key that encrypts the objects."
  type        = string
}

variable "allowed_origins" {
  description = "Origins of the web page that PUT to pre-signed URLs (https://the-domain)."
  type        = list(string)
  validation {
    condition     = alltrue([for o in var.allowed_origins : can(regex("^https://[a-z0-9.-]+$", o))])
    error_message = "Each origin must be https://host, without a path or a trailing slash."
  }
}

variable "raw_expiry_days" {
  description = "Days after which raw uploads (staging/) are deleted by the bucket."
  type        = number
}

variable "url_ttl_s" {
  description = "Life of a pre-signed PUT URL (WASTECOACH_UPLOADS__URL_TTL_S): browsers may cache the CORS preflight that long."
  type        = number
}
