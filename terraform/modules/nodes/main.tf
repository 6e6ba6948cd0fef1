# The four nodes of the kubeadm cluster (control plane with monitoring, API, worker, storage),
# their IAM instance profiles, the storage node's data volume, and the bucket through which
# Ansible's SSM connection moves files. No key pair and no public address: operators and
# Ansible reach the nodes through SSM Session Manager.

locals {
  roles = ["control", "api", "worker", "storage"]
  # Node name => role. One control plane and one storage node; node_counts API and worker
  # nodes, the first of each named after its role (so growing keeps the existing ones).
  nodes = merge(
    { control = "control", storage = "storage" },
    { for i in range(var.node_counts.api) : (i == 0 ? "api" : "api-${i + 1}") => "api" },
    { for i in range(var.node_counts.worker) : (i == 0 ? "worker" : "worker-${i + 1}") => "worker" },
  )
  # API nodes alternate between the zones starting in the first, workers starting in the
  # second: with one of each, losing a zone leaves one of them up (docs/deploy.md, "Growing").
  # The control plane and the storage node are single, in the first zone.
  node_index = {
    for name, role in local.nodes : name => (
      length(split("-", name)) > 1 ? tonumber(split("-", name)[1]) - 1 : 0
    )
  }
  subnet_of = {
    for name, role in local.nodes : name => var.private_subnet_ids[
      role == "worker" ? (local.node_index[name] + 1) % 2 : (
        role == "api" ? local.node_index[name] % 2 : 0
      )
    ]
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
    resources = ["${module.ssm_transfer.arn}/*"]
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
  for_each                = local.nodes
  ami                     = data.aws_ami.ubuntu.id
  instance_type           = var.instance_types[each.value]
  subnet_id               = local.subnet_of[each.key]
  vpc_security_group_ids  = var.security_group_ids[each.value]
  iam_instance_profile    = aws_iam_instance_profile.node[each.value].name
  ebs_optimized           = true
  monitoring              = true
  disable_api_termination = each.value == "storage" || each.value == "control"

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
    Role                               = each.value
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
