variable "name" {
  description = "Prefix of every resource name."
  type        = string
}

variable "vpc_cidr" {
  description = "Address range of the VPC; each subnet is a /24 inside it."
  type        = string
}

variable "availability_zones" {
  description = "The two availability zones."
  type        = list(string)
  validation {
    condition     = length(var.availability_zones) == 2
    error_message = "Exactly two availability zones."
  }
}

variable "nat_gateway_per_az" {
  description = "One NAT gateway per zone instead of one for both."
  type        = bool
}

variable "kms_key_arn" {
  description = "KMS key that encrypts the flow logs."
  type        = string
}

variable "log_retention_days" {
  description = "Days the flow logs are kept."
  type        = number
}
