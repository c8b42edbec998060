# Inputs of the safekeep module. Every input has a type and a description;
# defaults keep the security promises (private subnets, internal load balancer
# only, KMS everywhere), so an operator has to opt out of them explicitly.

# ---------------------------------------------------------------- identity

variable "name" {
  description = "Cluster name: prefixes every resource name, is stamped into each node's data directory (cluster_name) and tags everything as safekeep:cluster. Lowercase letters, digits and hyphens, starting with a letter, at most 20 characters."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,19}$", var.name))
    error_message = "name must be 2-20 characters of [a-z0-9-], starting with a letter."
  }
}

variable "tags" {
  description = "Tags added to every resource the module creates."
  type        = map(string)
  default     = {}
}

# ---------------------------------------------------------------- network

variable "create_vpc" {
  description = "Create a VPC with one private subnet per availability zone. Set to false to use vpc_id and private_subnet_ids instead."
  type        = bool
  default     = true
}

variable "vpc_cidr" {
  description = "CIDR block of the VPC the module creates (create_vpc = true). Private subnets take the first /20s, NAT subnets (enable_nat_gateway) /24s from the top."
  type        = string
  default     = "10.42.0.0/16"

  validation {
    condition     = can(cidrhost(var.vpc_cidr, 0)) && tonumber(split("/", var.vpc_cidr)[1]) <= 20
    error_message = "vpc_cidr must be a valid IPv4 CIDR block of /20 or larger."
  }
}

variable "availability_zones" {
  description = "Availability zones for the VPC the module creates (create_vpc = true), one private subnet each; at least 3. Empty: the region's first 3 zones that need no opt-in."
  type        = list(string)
  default     = []

  validation {
    condition     = length(var.availability_zones) == 0 || length(var.availability_zones) >= 3
    error_message = "availability_zones must name at least 3 zones (or be empty)."
  }
}

variable "vpc_id" {
  description = "Existing VPC to deploy into (create_vpc = false)."
  type        = string
  default     = null
}

variable "private_subnet_ids" {
  description = "Existing private subnets (create_vpc = false): one per availability zone, at least 3, none mapping public IPs on launch. Node slot i runs in subnet i mod the number of subnets."
  type        = list(string)
  default     = []

  validation {
    condition     = length(var.private_subnet_ids) == 0 || length(var.private_subnet_ids) >= 3
    error_message = "private_subnet_ids must list at least 3 subnets, one per availability zone (or be empty with create_vpc = true)."
  }
}

variable "enable_nat_gateway" {
  description = "Create public subnets with one NAT gateway per zone so nodes reach the internet (an https release_url outside AWS). Nodes stay in private subnets without public IPs either way. Only with create_vpc = true."
  type        = bool
  default     = false
}

variable "create_vpc_endpoints" {
  description = "Create VPC endpoints for the AWS APIs the nodes call (S3 gateway, also serving the Amazon Linux package repositories; KMS, Secrets Manager, CloudWatch Logs and EC2 interface endpoints), so nodes need no NAT. Turn off when the VPC already has endpoints with private DNS for these services."
  type        = bool
  default     = true
}

variable "enable_flow_logs" {
  description = "Record VPC flow logs (all traffic) to a KMS-encrypted CloudWatch log group."
  type        = bool
  default     = true
}

# ---------------------------------------------------------------- nodes

variable "node_count" {
  description = "Number of node slots: one Auto Scaling group of size 1 each, spread round-robin over the zones. At least 3; odd numbers tolerate the most failures."
  type        = number
  default     = 3

  validation {
    condition     = var.node_count >= 3 && var.node_count <= 999 && floor(var.node_count) == var.node_count
    error_message = "node_count must be a whole number from 3 to 999."
  }
}

variable "initial_node_count" {
  description = "Slots (0 .. initial_node_count-1, at generation 0) that form the cluster with an init list on first boot. Every other slot, and every slot at a higher generation, joins the running cluster instead (an operator must `safekeep cluster add-learner` it first). Never raise this after the cluster formed: add slots with node_count."
  type        = number
  default     = 3

  validation {
    condition     = var.initial_node_count >= 3 && floor(var.initial_node_count) == var.initial_node_count
    error_message = "initial_node_count must be a whole number of at least 3."
  }
}

variable "node_generations" {
  description = "Identity generation per slot, keyed by slot index (\"0\", \"1\", ...); missing slots are at generation 0. Node id = slot + 1 + generation * 1000. Raise a slot's generation (never lower it) when its data volume is lost or must be discarded: the slot gets a fresh volume, a fresh node id and a fresh TLS secret, and joins as a new member."
  type        = map(number)
  default     = {}

  validation {
    condition     = alltrue([for slot, generation in var.node_generations : can(regex("^[0-9]+$", slot)) && generation >= 0 && floor(generation) == generation])
    error_message = "node_generations keys must be slot indexes (\"0\", \"1\", ...) and values whole numbers >= 0."
  }
}

variable "instance_type" {
  description = "EC2 instance type of the nodes (Nitro; its architecture must match instance_architecture and the release binary)."
  type        = string
  default     = "m7g.large"
}

variable "instance_architecture" {
  description = "CPU architecture of the nodes: arm64 or x86_64. Picks the Amazon Linux 2023 image when ami_id is null."
  type        = string
  default     = "arm64"

  validation {
    condition     = contains(["arm64", "x86_64"], var.instance_architecture)
    error_message = "instance_architecture must be arm64 or x86_64."
  }
}

variable "ami_id" {
  description = "AMI of the nodes. Null: the latest Amazon Linux 2023 image for instance_architecture, read from its public SSM parameter at plan time. The boot script expects Amazon Linux 2023 (dnf, AWS CLI v2, ec2-net-utils)."
  type        = string
  default     = null
}

variable "root_volume_size_gib" {
  description = "Size of each node's root volume (gp3, KMS-encrypted, replaced with the instance)."
  type        = number
  default     = 20
}

variable "data_volume_size_gib" {
  description = "Size of each slot's persistent data volume (gp3, KMS-encrypted, kept across instance replacement)."
  type        = number
  default     = 100

  validation {
    condition     = var.data_volume_size_gib >= 10
    error_message = "data_volume_size_gib must be at least 10."
  }
}

variable "data_volume_iops" {
  description = "Provisioned IOPS of each data volume (gp3: 3000 included)."
  type        = number
  default     = 3000
}

variable "data_volume_throughput_mibps" {
  description = "Provisioned throughput of each data volume in MiB/s (gp3: 125 included)."
  type        = number
  default     = 125
}

variable "release_url" {
  description = "Where nodes download the safekeep-node release binary at boot: s3://bucket/key (read through the node role, which may read only that object) or an https:// URL (needs a route out: enable_nat_gateway or your own egress)."
  type        = string

  validation {
    condition     = can(regex("^(s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]/[^'\"\\s]+|https://[^'\"\\s]+)$", var.release_url))
    error_message = "release_url must be s3://BUCKET/KEY or an https:// URL, without quotes or spaces."
  }
}

variable "release_sha256" {
  description = "SHA-256 of the release binary, hex. The boot script refuses a download that does not match."
  type        = string

  validation {
    condition     = can(regex("^[0-9a-f]{64}$", var.release_sha256))
    error_message = "release_sha256 must be 64 lowercase hex digits."
  }
}

variable "enable_session_manager" {
  description = "Attach AmazonSSMManagedInstanceCore to the node roles (and, with create_vpc_endpoints, add the SSM endpoints) so operators can open shells through Session Manager. Off by default: least privilege."
  type        = bool
  default     = false
}

# ---------------------------------------------------------------- ports and access

variable "client_port" {
  description = "Client API port (gRPC over TLS) on the nodes and the load balancer listener."
  type        = number
  default     = 7101
}

variable "peer_port" {
  description = "Peer channel port (Raft and forwarding over mutual TLS), open only between the cluster's nodes."
  type        = number
  default     = 7201
}

variable "http_port" {
  description = "Plain HTTP port for /healthz, /readyz and /metrics (no customer data), open only to the load balancer and monitoring."
  type        = number
  default     = 7301
}

variable "allowed_client_cidr_blocks" {
  description = "CIDR blocks allowed to reach the load balancer's client listener. 0.0.0.0/0 and ::/0 are refused."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for cidr in var.allowed_client_cidr_blocks : can(cidrhost(cidr, 0)) && !contains(["0.0.0.0/0", "::/0"], cidr)])
    error_message = "allowed_client_cidr_blocks must be valid CIDR blocks other than 0.0.0.0/0 and ::/0."
  }
}

variable "allowed_client_security_group_ids" {
  description = "Security groups (of the applications) allowed to reach the load balancer's client listener."
  type        = list(string)
  default     = []
}

variable "allow_direct_client_access" {
  description = "Also let allowed_client_cidr_blocks and allowed_client_security_group_ids reach each node's client port directly (for SDKs that follow leader hints). Off by default: the load balancer is the only way in."
  type        = bool
  default     = false
}

variable "monitoring_cidr_blocks" {
  description = "CIDR blocks allowed to scrape the nodes' HTTP port (/metrics, /readyz). 0.0.0.0/0 and ::/0 are refused."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for cidr in var.monitoring_cidr_blocks : can(cidrhost(cidr, 0)) && !contains(["0.0.0.0/0", "::/0"], cidr)])
    error_message = "monitoring_cidr_blocks must be valid CIDR blocks other than 0.0.0.0/0 and ::/0."
  }
}

variable "monitoring_security_group_ids" {
  description = "Security groups allowed to scrape the nodes' HTTP port (/metrics, /readyz)."
  type        = list(string)
  default     = []
}

# ---------------------------------------------------------------- load balancer

variable "nlb_deregistration_delay_seconds" {
  description = "How long the load balancer lets connections to a deregistered or draining node finish."
  type        = number
  default     = 30

  validation {
    condition     = var.nlb_deregistration_delay_seconds >= 0 && var.nlb_deregistration_delay_seconds <= 3600
    error_message = "nlb_deregistration_delay_seconds must be between 0 and 3600."
  }
}

variable "nlb_deletion_protection" {
  description = "Protect the load balancer from deletion (turn off before destroying the module)."
  type        = bool
  default     = true
}

variable "health_check_interval_seconds" {
  description = "Interval of the load balancer's /readyz health check on the HTTP port."
  type        = number
  default     = 10
}

# ---------------------------------------------------------------- encryption

variable "kms_key_administrator_arns" {
  description = "IAM principals allowed to administer (not use) the cluster's KMS key. Empty: the account root, which delegates to IAM policies."
  type        = list(string)
  default     = []
}

variable "kms_key_deletion_window_days" {
  description = "Waiting period before a scheduled deletion of the KMS key takes effect."
  type        = number
  default     = 30

  validation {
    condition     = var.kms_key_deletion_window_days >= 7 && var.kms_key_deletion_window_days <= 30
    error_message = "kms_key_deletion_window_days must be between 7 and 30."
  }
}

variable "kms_encryption_context_keys" {
  description = "Encryption context keys the node's KMS key provider sends when wrapping and unwrapping tenant data keys; direct Encrypt and Decrypt calls are allowed only with exactly these keys."
  type        = list(string)
  default     = ["purpose", "tenant", "version"]
}

variable "autoscaling_service_role_arn" {
  description = "ARN of the EC2 Auto Scaling service-linked role, which must use the KMS key to launch nodes with encrypted root volumes. Null: the account's AWSServiceRoleForAutoScaling (it exists once any Auto Scaling group was created; otherwise create it first with `aws iam create-service-linked-role --aws-service-name autoscaling.amazonaws.com`)."
  type        = string
  default     = null
}

variable "tls_separate_client_ca" {
  description = "Client certificates (operators, support staff) come from a CA other than the nodes' one: the CA secret must then hold client_ca_pem, which becomes each node's tls.client_ca."
  type        = bool
  default     = false
}

variable "tls_secret_recovery_window_days" {
  description = "Days a deleted TLS secret can still be restored."
  type        = number
  default     = 7
}

# ---------------------------------------------------------------- backups and logs

variable "backup_retention_days" {
  description = "Days a backup object under backups/<cluster>/ is kept before the bucket's lifecycle expires it; nodes keep their backup sets this long too (node.toml [backup] retention_days)."
  type        = number
  default     = 35

  validation {
    condition     = var.backup_retention_days >= 1
    error_message = "backup_retention_days must be at least 1."
  }
}

variable "backup_noncurrent_version_days" {
  description = "Days an overwritten or deleted backup object version is kept (versioning protects against a node overwriting its own backups)."
  type        = number
  default     = 7
}

variable "access_log_retention_days" {
  description = "Days S3 server access logs of the backup bucket are kept."
  type        = number
  default     = 365
}

variable "log_retention_days" {
  description = "Retention of the CloudWatch log groups (node logs, metrics, flow logs, drill logs)."
  type        = number
  default     = 365

  validation {
    condition     = contains([1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653], var.log_retention_days)
    error_message = "log_retention_days must be a retention CloudWatch Logs supports (e.g. 30, 90, 365, 731)."
  }
}

# ---------------------------------------------------------------- monitoring and drills

variable "metrics_namespace" {
  description = "CloudWatch namespace of the metrics the agent scrapes from each node's /metrics."
  type        = string
  default     = "Safekeep"
}

variable "metrics_scrape_interval_seconds" {
  description = "How often the CloudWatch agent scrapes each node's /metrics."
  type        = number
  default     = 15
}

variable "alarm_actions" {
  description = "ARNs (e.g. SNS topics) notified when the quorum alarm fires or recovers."
  type        = list(string)
  default     = []
}

variable "enable_fis_experiment" {
  description = "Create the AWS FIS experiment template that interrupts one availability zone's nodes (the AZ power interruption scenario), stopped by the quorum alarm."
  type        = bool
  default     = true
}

variable "fis_availability_zone" {
  description = "Zone the FIS experiment interrupts. Null: the zone of slot 0."
  type        = string
  default     = null
}

variable "fis_duration_minutes" {
  description = "How long the FIS experiment keeps the zone's nodes stopped and its launches failing."
  type        = number
  default     = 10

  validation {
    condition     = var.fis_duration_minutes >= 1 && var.fis_duration_minutes <= 720
    error_message = "fis_duration_minutes must be between 1 and 720."
  }
}
