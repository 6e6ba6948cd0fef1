# The bucket Ansible's aws_ssm connection copies module files through: private, encrypted,
# objects deleted after a day (they are only in flight).
module "ssm_transfer" {
  source        = "../private_bucket"
  name_prefix   = "${var.name}-ansible-"
  kms_key_arn   = var.kms_key_arn
  force_destroy = true
  expire        = { "" = 1 }
}
