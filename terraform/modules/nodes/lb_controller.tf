# The AWS Load Balancer Controller runs on the control node (ansible/roles/aws_lb_controller)
# and, without IRSA on a self-managed cluster, acts with that node's instance profile: it
# makes the ALB of deploy/k8s/ingress.yaml, its target groups, listeners, rules and security
# groups, and opens the API nodes' NodePorts to the ALB.
#
# The action names and condition keys are those of the controller's published policy; the
# scope is narrower: every ARN is this account's and region's, only application load
# balancers (the stack makes no NLB), no WAF or Shield actions (the Ansible role turns those
# features off), no Cognito (the Ingress authenticates no one) and no Outposts pools. Writes to
# what the controller made are conditioned on the tag it puts on everything it creates,
# elbv2.k8s.aws/cluster; the one security group it edits without having made it, the API
# nodes', is matched by the cluster tag Terraform puts on it (modules/network).
#
# Two statements keep resources = ["*"], each because no narrower one exists: "Read" (Describe
# and List calls that take no resource type; checkov's CKV_AWS_356 knows them as such) and
# "ServiceLinkedRole" (the role's ARN is AWS's; the iam:AWSServiceName condition limits it to
# the ELB service's role). Every other statement names ARNs, so checkov runs here unskipped.

data "aws_partition" "current" {}

data "aws_caller_identity" "current" {}

locals {
  partition = data.aws_partition.current.partition
  account   = data.aws_caller_identity.current.account_id
  ec2_arn   = "arn:${local.partition}:ec2:${var.region}:${local.account}"
  elbv2_arn = "arn:${local.partition}:elasticloadbalancing:${var.region}:${local.account}"
  # What the controller makes and then tags as its own.
  own_elbv2 = ["${local.elbv2_arn}:loadbalancer/app/*/*", "${local.elbv2_arn}:targetgroup/*/*"]
  # Listeners and rules carry no elbv2.k8s.aws/cluster tag a condition could read.
  listeners = ["${local.elbv2_arn}:listener/app/*/*/*", "${local.elbv2_arn}:listener-rule/app/*/*/*"]
  security_groups = "${local.ec2_arn}:security-group/*"
  cluster_tag     = "elbv2.k8s.aws/cluster"
}

data "aws_iam_policy_document" "lb_controller" {
  statement {
    sid = "Read"
    actions = [
      "ec2:DescribeAccountAttributes", "ec2:DescribeAddresses", "ec2:DescribeAvailabilityZones",
      "ec2:DescribeInternetGateways", "ec2:DescribeVpcs", "ec2:DescribeVpcPeeringConnections",
      "ec2:DescribeSubnets", "ec2:DescribeSecurityGroups", "ec2:DescribeInstances",
      "ec2:DescribeNetworkInterfaces", "ec2:DescribeTags", "ec2:DescribeIpamPools",
      "ec2:DescribeRouteTables",
      "elasticloadbalancing:DescribeLoadBalancers", "elasticloadbalancing:DescribeLoadBalancerAttributes",
      "elasticloadbalancing:DescribeListeners", "elasticloadbalancing:DescribeListenerCertificates",
      "elasticloadbalancing:DescribeSSLPolicies", "elasticloadbalancing:DescribeRules",
      "elasticloadbalancing:DescribeTargetGroups", "elasticloadbalancing:DescribeTargetGroupAttributes",
      "elasticloadbalancing:DescribeTargetHealth", "elasticloadbalancing:DescribeTags",
      "elasticloadbalancing:DescribeTrustStores", "elasticloadbalancing:DescribeListenerAttributes",
      "elasticloadbalancing:DescribeCapacityReservation",
      # Certificate discovery for the HTTPS listener (by the Ingress's host names).
      "acm:ListCertificates", "iam:ListServerCertificates",
    ]
    resources = ["*"]
  }
  statement {
    # The reads that do take a resource: certificates and the VPC's security groups.
    sid = "ReadScoped"
    actions = [
      "acm:DescribeCertificate", "iam:GetServerCertificate", "ec2:GetSecurityGroupsForVpc",
    ]
    resources = [
      "arn:${local.partition}:acm:${var.region}:${local.account}:certificate/*",
      "arn:${local.partition}:iam::${local.account}:server-certificate/*",
      "${local.ec2_arn}:vpc/*",
    ]
  }
  statement {
    sid       = "ServiceLinkedRole"
    actions   = ["iam:CreateServiceLinkedRole"]
    resources = ["*"]
    condition {
      test     = "StringEquals"
      variable = "iam:AWSServiceName"
      values   = ["elasticloadbalancing.amazonaws.com"]
    }
  }
  statement {
    # A new group has no tags to condition on yet; it is made in this region's VPCs only.
    sid       = "CreateSecurityGroup"
    actions   = ["ec2:CreateSecurityGroup"]
    resources = [local.security_groups, "${local.ec2_arn}:vpc/*"]
  }
  statement {
    # Tagging while creating: only CreateSecurityGroup, and only with the controller's tag.
    sid       = "TagNewSecurityGroup"
    actions   = ["ec2:CreateTags"]
    resources = [local.security_groups]
    condition {
      test     = "StringEquals"
      variable = "ec2:CreateAction"
      values   = ["CreateSecurityGroup"]
    }
    condition {
      test     = "Null"
      variable = "aws:RequestTag/${local.cluster_tag}"
      values   = ["false"]
    }
  }
  statement {
    # Retagging its own groups, without taking the ownership tag off or putting it on.
    sid       = "RetagOwnSecurityGroups"
    actions   = ["ec2:CreateTags", "ec2:DeleteTags"]
    resources = [local.security_groups]
    condition {
      test     = "Null"
      variable = "aws:RequestTag/${local.cluster_tag}"
      values   = ["true"]
    }
    condition {
      test     = "Null"
      variable = "aws:ResourceTag/${local.cluster_tag}"
      values   = ["false"]
    }
  }
  statement {
    sid = "OwnSecurityGroups"
    actions = [
      "ec2:AuthorizeSecurityGroupIngress", "ec2:RevokeSecurityGroupIngress", "ec2:DeleteSecurityGroup",
    ]
    resources = [local.security_groups]
    condition {
      test     = "Null"
      variable = "aws:ResourceTag/${local.cluster_tag}"
      values   = ["false"]
    }
  }
  statement {
    # The API nodes' group (tagged kubernetes.io/cluster/<name> in modules/network): the
    # controller lets the ALB's group reach their NodePorts. The published policy allows
    # these two on every group; here only the cluster's.
    sid     = "ClusterNodeSecurityGroup"
    actions = ["ec2:AuthorizeSecurityGroupIngress", "ec2:RevokeSecurityGroupIngress"]
    resources = [local.security_groups]
    condition {
      test     = "Null"
      variable = "aws:ResourceTag/kubernetes.io/cluster/${var.name}"
      values   = ["false"]
    }
  }
  statement {
    sid = "CreateLoadBalancers"
    actions = [
      "elasticloadbalancing:CreateLoadBalancer", "elasticloadbalancing:CreateTargetGroup",
    ]
    resources = local.own_elbv2
    condition {
      test     = "Null"
      variable = "aws:RequestTag/${local.cluster_tag}"
      values   = ["false"]
    }
  }
  statement {
    sid       = "TagNewLoadBalancers"
    actions   = ["elasticloadbalancing:AddTags"]
    resources = local.own_elbv2
    condition {
      test     = "StringEquals"
      variable = "elasticloadbalancing:CreateAction"
      values   = ["CreateTargetGroup", "CreateLoadBalancer"]
    }
    condition {
      test     = "Null"
      variable = "aws:RequestTag/${local.cluster_tag}"
      values   = ["false"]
    }
  }
  statement {
    sid       = "RetagOwnLoadBalancers"
    actions   = ["elasticloadbalancing:AddTags", "elasticloadbalancing:RemoveTags"]
    resources = local.own_elbv2
    condition {
      test     = "Null"
      variable = "aws:RequestTag/${local.cluster_tag}"
      values   = ["true"]
    }
    condition {
      test     = "Null"
      variable = "aws:ResourceTag/${local.cluster_tag}"
      values   = ["false"]
    }
  }
  statement {
    sid = "OwnLoadBalancers"
    actions = [
      "elasticloadbalancing:ModifyLoadBalancerAttributes", "elasticloadbalancing:SetIpAddressType",
      "elasticloadbalancing:SetSecurityGroups", "elasticloadbalancing:SetSubnets",
      "elasticloadbalancing:DeleteLoadBalancer", "elasticloadbalancing:ModifyTargetGroup",
      "elasticloadbalancing:ModifyTargetGroupAttributes", "elasticloadbalancing:DeleteTargetGroup",
      "elasticloadbalancing:ModifyCapacityReservation",
    ]
    resources = local.own_elbv2
    condition {
      test     = "Null"
      variable = "aws:ResourceTag/${local.cluster_tag}"
      values   = ["false"]
    }
  }
  statement {
    # As in the published policy, without a tag condition, but only on target groups.
    sid       = "Targets"
    actions   = ["elasticloadbalancing:RegisterTargets", "elasticloadbalancing:DeregisterTargets"]
    resources = ["${local.elbv2_arn}:targetgroup/*/*"]
  }
  statement {
    # CreateListener acts on the load balancer, CreateRule on the listener; neither carries
    # the controller's tag, so the scope is the ARNs of application load balancers.
    sid = "Listeners"
    actions = [
      "elasticloadbalancing:CreateListener", "elasticloadbalancing:DeleteListener",
      "elasticloadbalancing:CreateRule", "elasticloadbalancing:DeleteRule",
      "elasticloadbalancing:ModifyListener", "elasticloadbalancing:ModifyRule",
      "elasticloadbalancing:ModifyListenerAttributes",
      "elasticloadbalancing:AddListenerCertificates", "elasticloadbalancing:RemoveListenerCertificates",
    ]
    resources = concat(["${local.elbv2_arn}:loadbalancer/app/*/*"], local.listeners)
  }
  statement {
    # Tags on listeners and rules only: the load balancers' own tags stay under the
    # conditions above.
    sid       = "TagListeners"
    actions   = ["elasticloadbalancing:AddTags", "elasticloadbalancing:RemoveTags"]
    resources = local.listeners
  }
}

resource "aws_iam_role_policy" "lb_controller" {
  name   = "aws-load-balancer-controller"
  role   = aws_iam_role.node["control"].id
  policy = data.aws_iam_policy_document.lb_controller.json
}
