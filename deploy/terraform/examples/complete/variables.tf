# Inputs of the complete example.

variable "region" {
  description = "AWS region to deploy the example cluster in."
  type        = string
  default     = "eu-west-1"
}

variable "release_bucket" {
  description = "S3 bucket holding safekeep-node release binaries."
  type        = string
}

variable "release_sha256" {
  description = "SHA-256 of the release binary."
  type        = string
}

variable "app_security_group_ids" {
  description = "Security groups of the applications that read and write customer records (in a VPC peered with the cluster's, or created after it)."
  type        = list(string)
  default     = []
}

variable "monitoring_security_group_ids" {
  description = "Security groups of the monitoring system allowed to scrape /metrics."
  type        = list(string)
  default     = []
}

variable "alarm_topic_arns" {
  description = "SNS topics told when the quorum alarm fires or recovers."
  type        = list(string)
  default     = []
}
