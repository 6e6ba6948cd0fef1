# The inputs of the Waste Coach stack. Defaults are the sizing docs/deploy.md prices.

variable "region" {
  description = "AWS region of every resource (Seoul by default: the users are in Korea)."
  type        = string
  default     = "ap-northeast-2"
  validation {
    condition     = can(regex("^[a-z]{2}(-gov)?-[a-z]+-[0-9]$", var.region))
    error_message = "region must be an AWS region name such as ap-northeast-2."
  }
}

variable "environment" {
  description = "Name of this deployment (production, staging, ...); part of every resource name."
  type        = string
  default     = "production"
  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,15}$", var.environment))
    error_message = "environment must be 2-16 lowercase letters, digits or dashes, starting with a letter."
  }
}

variable "vpc_cidr" {
  description = "Address range of the VPC. deploy/k8s trusts it as the load balancer's (WASTECOACH_TRUSTED_PROXIES) and allows it in the NetworkPolicies: change those with it."
  type        = string
  default     = "10.20.0.0/16"
  validation {
    condition     = can(cidrnetmask(var.vpc_cidr)) && tonumber(split("/", var.vpc_cidr)[1]) <= 20
    error_message = "vpc_cidr must be an IPv4 network of /20 or larger."
  }
}

variable "availability_zones" {
  description = "Exactly two availability zones of the region: a public and a private subnet in each (the ALB needs two)."
  type        = list(string)
  default     = ["ap-northeast-2a", "ap-northeast-2c"]
  validation {
    condition     = length(var.availability_zones) == 2 && length(distinct(var.availability_zones)) == 2
    error_message = "availability_zones must name two different zones."
  }
}

variable "nat_gateway_per_az" {
  description = "One NAT gateway per availability zone (survives the loss of a zone, twice the cost) instead of one."
  type        = bool
  default     = false
}

variable "instance_types" {
  description = "EC2 instance type of each node role: control (control plane and monitoring), api, worker, storage."
  type = object({
    control = string
    api     = string
    worker  = string
    storage = string
  })
  default = {
    control = "t3.large"
    api     = "m6i.large"
    worker  = "m6i.large"
    storage = "t3.large"
  }
  validation {
    condition = alltrue([
      for t in values(var.instance_types) : can(regex("^[a-z][a-z0-9-]*\\.[a-z0-9]+$", t))
    ])
    error_message = "Each instance type must look like m6i.large."
  }
}

variable "node_counts" {
  description = "How many API nodes and worker nodes (docs/deploy.md, \"Growing\"); one control plane and one storage node always."
  type = object({
    api    = number
    worker = number
  })
  default = { api = 1, worker = 1 }
  validation {
    condition     = var.node_counts.api >= 1 && var.node_counts.api <= 10 && var.node_counts.worker >= 1 && var.node_counts.worker <= 10
    error_message = "node_counts.api and node_counts.worker must each be between 1 and 10."
  }
}

variable "root_volume_gb" {
  description = "Size of each node's root volume (images, logs, Prometheus's data on the control node)."
  type        = number
  default     = 40
  validation {
    condition     = var.root_volume_gb >= 30 && var.root_volume_gb <= 1000
    error_message = "root_volume_gb must be between 30 and 1000."
  }
}

variable "storage_data_volume_gb" {
  description = "Size of the storage node's data volume (PostgreSQL, Redis's append-only file, RabbitMQ), a separate encrypted EBS volume that outlives the instance."
  type        = number
  default     = 100
  validation {
    condition     = var.storage_data_volume_gb >= 20 && var.storage_data_volume_gb <= 16384
    error_message = "storage_data_volume_gb must be between 20 and 16384."
  }
}

variable "domain_name" {
  description = "Public name of the service (coach.example.com); its TLS certificate is issued by ACM and its record made in route53_zone_name."
  type        = string
  validation {
    condition     = can(regex("^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\\.)+[a-z]{2,}$", var.domain_name))
    error_message = "domain_name must be a lowercase DNS name."
  }
}

variable "route53_zone_name" {
  description = "Existing public Route53 hosted zone that domain_name is in (example.com)."
  type        = string
  validation {
    condition     = can(regex("^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\\.)+[a-z]{2,}$", var.route53_zone_name))
    error_message = "route53_zone_name must be a lowercase DNS name without the trailing dot."
  }
}

variable "alb_ready" {
  description = "Set to true once the AWS Load Balancer Controller has made the ALB for the Ingress (docs/deploy.md step 7): then the Route53 alias to it is made."
  type        = bool
  default     = false
}

variable "upload_bucket_name" {
  description = "Name of the upload bucket (globally unique); WASTECOACH_S3__BUCKET."
  type        = string
  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$", var.upload_bucket_name))
    error_message = "upload_bucket_name must be a valid S3 bucket name."
  }
}

variable "raw_upload_expiry_days" {
  description = "Days after which a raw upload (staging/ prefix) is deleted by the bucket, whatever the application did. The application's own sweep deletes them within an hour; this is the backstop."
  type        = number
  default     = 1
  validation {
    condition     = var.raw_upload_expiry_days >= 1 && var.raw_upload_expiry_days <= 30
    error_message = "raw_upload_expiry_days must be between 1 and 30."
  }
}

variable "log_retention_days" {
  description = "Days that VPC flow logs are kept in CloudWatch Logs."
  type        = number
  default     = 365
  validation {
    condition     = contains([1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653], var.log_retention_days)
    error_message = "log_retention_days must be a retention CloudWatch Logs accepts (1, 3, 5, 7, 14, 30, ..., 365, ...)."
  }
}
