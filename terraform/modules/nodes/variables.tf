variable "name" {
  description = "Prefix of every resource name (also the cluster's name)."
  type        = string
}

variable "region" {
  description = "AWS region."
  type        = string
}

variable "private_subnet_ids" {
  description = "The two private subnets; control, api and storage go in the first, worker in the second."
  type        = list(string)
}

variable "security_group_ids" {
  description = "Security groups of each node role."
  type = object({
    control = list(string)
    api     = list(string)
    worker  = list(string)
    storage = list(string)
  })
}

variable "instance_types" {
  description = "Instance type of each node role."
  type = object({
    control = string
    api     = string
    worker  = string
    storage = string
  })
}

variable "root_volume_gb" {
  description = "Root volume size of each node."
  type        = number
}

variable "storage_data_volume_gb" {
  description = "Size of the storage node's data volume."
  type        = number
}

variable "kms_key_arn" {
  description = "KMS key for the volumes, the upload bucket's objects and the SSM transfer bucket."
  type        = string
}

variable "upload_bucket_arn" {
  description = "The upload bucket the API and the workers read and write."
  type        = string
}

variable "node_counts" {
  description = "How many API and worker nodes."
  type = object({
    api    = number
    worker = number
  })
}
