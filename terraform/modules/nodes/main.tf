# The four nodes of the kubeadm cluster (control plane with monitoring, API, worker, storage),
# their IAM instance profiles, the storage node's data volume, and the bucket through which
# Ansible's SSM connection moves files. No key pair and no public address: operators and
# Ansible reach the nodes through SSM Session Manager.

locals {
  roles = ["control", "api", "worker", "storage"]
  # The worker sits in the second zone, the rest in the first: the storage node and the
  # control plane are single anyway, and spreading API and worker keeps one of them up if a
  # zone goes (docs/deploy.md, "Growing").
  subnet_of = {
    control = var.private_subnet_ids[0]
    api     = var.private_subnet_ids[0]
    worker  = var.private_subnet_ids[1]
    storage = var.private_subnet_ids[0]
  }
}

# Ubuntu 24.04 LTS, Canonical's own images: the SSM agent is preinstalled, so a fresh node is
# reachable without SSH.
data "aws_ami" "ubuntu" {
  most_recent = true
  owners      = ["099720109477"]
  filter {
    name   = "name"
    values = ["ubuntu/images/hvm-ssd-gp3/ubuntu-noble-24.04-amd64-server-*"]
  }
  filter {
    name   = "architecture"
    values = ["x86_64"]
  }
}

data "aws_iam_policy_document" "assume_ec2" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["ec2.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "node" {
  for_each           = toset(local.roles)
  name               = "${var.name}-${each.key}"
  assume_role_policy = data.aws_iam_policy_document.assume_ec2.json
}

resource "aws_iam_role_policy_attachment" "ssm" {
  for_each   = aws_iam_role.node
  role       = each.value.name
  policy_arn = "arn:aws:iam::aws:policy/AmazonSSMManagedInstanceCore"
}

resource "aws_iam_instance_profile" "node" {
  for_each = aws_iam_role.node
  name     = each.value.name
  role     = each.value.name
}

# Uploads: the API presigns PUTs and reads an upload at its first use; the workers read, write
# the clean copy and sweep. Objects only, in this bucket only.
data "aws_iam_policy_document" "uploads" {
  statement {
    sid       = "UploadObjects"
    actions   = ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"]
    resources = ["${var.upload_bucket_arn}/*"]
  }
  statement {
    sid       = "ListUploads"
    actions   = ["s3:ListBucket"]
    resources = [var.upload_bucket_arn]
  }
  statement {
    sid       = "UploadKey"
    actions   = ["kms:Decrypt", "kms:GenerateDataKey"]
    resources = [var.kms_key_arn]
  }
}

resource "aws_iam_role_policy" "uploads" {
  for_each = toset(["api", "worker"])
  name     = "uploads"
  role     = aws_iam_role.node[each.key].id
  policy   = data.aws_iam_policy_document.uploads.json
}

# Ansible's SSM connection copies module files through this bucket.
data "aws_iam_policy_document" "ssm_transfer" {
  statement {
    actions   = ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"]
    resources = ["${aws_s3_bucket.ssm_transfer.arn}/*"]
  }
  statement {
    actions   = ["kms:Decrypt", "kms:GenerateDataKey"]
    resources = [var.kms_key_arn]
  }
}

resource "aws_iam_role_policy" "ssm_transfer" {
  for_each = aws_iam_role.node
  name     = "ansible-ssm-transfer"
  role     = each.value.id
  policy   = data.aws_iam_policy_document.ssm_transfer.json
}

resource "aws_instance" "node" {
  for_each                = toset(local.roles)
  ami                     = data.aws_ami.ubuntu.id
  instance_type           = var.instance_types[each.key]
  subnet_id               = local.subnet_of[each.key]
  vpc_security_group_ids  = var.security_group_ids[each.key]
  iam_instance_profile    = aws_iam_instance_profile.node[each.key].name
  ebs_optimized           = true
  monitoring              = true
  disable_api_termination = each.key == "storage" || each.key == "control"

  metadata_options {
    http_endpoint = "enabled"
    http_tokens   = "required"
    # 2: pods (one hop more than the host) reach the instance profile's credentials. The
    # NetworkPolicies let only the API and the workers do so.
    http_put_response_hop_limit = 2
  }

  root_block_device {
    volume_type           = "gp3"
    volume_size           = var.root_volume_gb
    encrypted             = true
    kms_key_id            = var.kms_key_arn
    delete_on_termination = true
  }

  tags = {
    Name                               = "${var.name}-${each.key}"
    Role                               = each.key
    "kubernetes.io/cluster/${var.name}" = "owned"
  }

  lifecycle {
    # A newer Ubuntu image must not replace a running node; roll nodes on purpose.
    ignore_changes = [ami]
  }
}

# PostgreSQL, Redis and RabbitMQ keep their data here, not on the root volume: the volume
# outlives the instance, and snapshots (AWS Backup, docs/deploy.md) cover it alone.
resource "aws_ebs_volume" "storage_data" {
  availability_zone = aws_instance.node["storage"].availability_zone
  size              = var.storage_data_volume_gb
  type              = "gp3"
  encrypted         = true
  kms_key_id        = var.kms_key_arn
  tags              = { Name = "${var.name}-storage-data" }
}

resource "aws_volume_attachment" "storage_data" {
  device_name = "/dev/sdf"
  volume_id   = aws_ebs_volume.storage_data.id
  instance_id = aws_instance.node["storage"].id
}
