# --- Naming and image -------------------------------------------------------------------

variable "name" {
  description = "Prefix of every resource name (ECS cluster, services, roles, log groups, RDS instance)."
  type        = string
  default     = "ivi"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,19}$", var.name))
    error_message = "name must be 2-20 characters: lower-case letters, digits and '-', starting with a letter."
  }
}

variable "tags" {
  description = "Tags added to every resource that takes tags."
  type        = map(string)
  default     = {}
}

variable "image" {
  description = "The pipeline's container image (built from infra/docker/Dockerfile, app at /app), pinned by tag or digest, e.g. ghcr.io/acme/mini-pipeline-ivi:1.4.0. The relay, the Prefect server, the worker and the setup task all run it."
  type        = string

  validation {
    condition     = length(trimspace(var.image)) > 0 && !endswith(var.image, ":latest")
    error_message = "image must be set and pinned (a tag other than latest, or a digest): a service must not change under a running deployment."
  }
}

variable "cpu_architecture" {
  description = "CPU architecture of the image: X86_64 or ARM64 (Graviton Fargate is cheaper when the image is built for arm64)."
  type        = string
  default     = "X86_64"

  validation {
    condition     = contains(["X86_64", "ARM64"], var.cpu_architecture)
    error_message = "cpu_architecture must be X86_64 or ARM64."
  }
}

# --- Network ----------------------------------------------------------------------------

variable "vpc_id" {
  description = "The VPC everything runs in."
  type        = string
}

variable "public_subnet_ids" {
  description = "Public subnets (two or more availability zones) for the internet-facing load balancer."
  type        = list(string)

  validation {
    condition     = length(var.public_subnet_ids) >= 2
    error_message = "An application load balancer needs subnets in at least two availability zones."
  }
}

variable "private_subnet_ids" {
  description = "Private subnets (two or more availability zones, with a NAT gateway or VPC endpoints for ECR/S3/Secrets Manager/Logs) for the tasks and the database."
  type        = list(string)

  validation {
    condition     = length(var.private_subnet_ids) >= 2
    error_message = "RDS needs private subnets in at least two availability zones."
  }
}

variable "relay_domain_name" {
  description = "DNS name of the relay (e.g. ivi-relay.example.com). EventBridge API destinations only call HTTPS endpoints, so the relay needs a name its certificate covers."
  type        = string

  validation {
    condition     = can(regex("^([a-z0-9]([a-z0-9-]*[a-z0-9])?\\.)+[a-z]{2,}$", var.relay_domain_name))
    error_message = "relay_domain_name must be a lower-case DNS name such as ivi-relay.example.com."
  }
}

variable "certificate_arn" {
  description = "ARN of an ACM certificate (same region) covering relay_domain_name; it also serves the Prefect UI listener."
  type        = string

  validation {
    condition     = can(regex("^arn:aws[a-zA-Z-]*:acm:", var.certificate_arn))
    error_message = "certificate_arn must be an ACM certificate ARN."
  }
}

variable "route53_zone_id" {
  description = "Hosted zone in which to create the alias record for relay_domain_name. Empty: create the record yourself, pointing at the output load_balancer_dns_name."
  type        = string
  default     = ""
}

variable "relay_allowed_cidrs" {
  description = "Who may reach the relay's HTTPS listener. EventBridge calls it from AWS public addresses that are not published as a fixed list, so this stays open unless you front it otherwise; the bearer token is what authenticates a caller."
  type        = list(string)
  default     = ["0.0.0.0/0"]

  validation {
    condition     = alltrue([for cidr in var.relay_allowed_cidrs : can(cidrhost(cidr, 0))])
    error_message = "relay_allowed_cidrs must be CIDR blocks."
  }
}

variable "prefect_ui_allowed_cidrs" {
  description = "Networks allowed to open the Prefect UI/API on the load balancer (port prefect_ui_port). Empty: no public listener, the UI is reachable only inside the VPC. Anyone who reaches it controls the pipeline and can read its blocks: keep this to a VPN or office range."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for cidr in var.prefect_ui_allowed_cidrs : can(cidrhost(cidr, 0)) && cidr != "0.0.0.0/0"])
    error_message = "prefect_ui_allowed_cidrs must be CIDR blocks, and not 0.0.0.0/0 (the Prefect server has no login)."
  }
}

variable "prefect_ui_port" {
  description = "HTTPS port of the load balancer listener for the Prefect UI (same DNS name and certificate as the relay)."
  type        = number
  default     = 4200

  validation {
    condition     = var.prefect_ui_port > 0 && var.prefect_ui_port < 65536 && var.prefect_ui_port != 443
    error_message = "prefect_ui_port must be a TCP port other than 443 (the relay's)."
  }
}

# --- Object store -----------------------------------------------------------------------

variable "bucket_prefix" {
  description = "Prefix of the four bucket names (<prefix>-raw, <prefix>-processed, <prefix>-quarantine, <prefix>-lake); S3 names are global, so include something of your own (company, account, environment)."
  type        = string

  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9-]{1,45}[a-z0-9]$", var.bucket_prefix))
    error_message = "bucket_prefix must be 3-47 characters: lower-case letters, digits and '-', not starting or ending with '-'."
  }
}

variable "force_destroy_buckets" {
  description = "Let terraform destroy delete the buckets with their objects. Keep false anywhere the data matters."
  type        = bool
  default     = false
}

variable "noncurrent_version_retention_days" {
  description = "Days an overwritten or deleted object version is kept (versioning is on in every bucket) before S3 expires it."
  type        = number
  default     = 30

  validation {
    condition     = var.noncurrent_version_retention_days >= 1
    error_message = "noncurrent_version_retention_days must be at least 1."
  }
}

variable "kms_key_arn" {
  description = "Customer-managed KMS key for the buckets. Empty: SSE-S3 (AES-256, no key to manage)."
  type        = string
  default     = ""

  validation {
    condition     = var.kms_key_arn == "" || can(regex("^arn:aws[a-zA-Z-]*:kms:", var.kms_key_arn))
    error_message = "kms_key_arn must be empty or a KMS key ARN."
  }
}

# --- Event path (S3 -> EventBridge -> relay) ---------------------------------------------

variable "event_max_age_seconds" {
  description = "How long EventBridge keeps retrying an event the relay did not accept (it retries 5xx, 429 and time-outs) before it goes to the dead-letter queue."
  type        = number
  default     = 86400

  validation {
    condition     = var.event_max_age_seconds >= 60 && var.event_max_age_seconds <= 86400
    error_message = "event_max_age_seconds must be between 60 and 86400 (EventBridge's limits)."
  }
}

variable "event_retry_attempts" {
  description = "Most delivery attempts EventBridge makes per event (within event_max_age_seconds)."
  type        = number
  default     = 185

  validation {
    condition     = var.event_retry_attempts >= 0 && var.event_retry_attempts <= 185
    error_message = "event_retry_attempts must be between 0 and 185 (EventBridge's limits)."
  }
}

variable "event_rate_limit_per_second" {
  description = "Most calls per second EventBridge makes to the relay (a burst of uploads is spread out instead of hitting Prefect at once)."
  type        = number
  default     = 20

  validation {
    condition     = var.event_rate_limit_per_second >= 1 && var.event_rate_limit_per_second <= 300
    error_message = "event_rate_limit_per_second must be between 1 and 300."
  }
}

# --- Prefect ----------------------------------------------------------------------------

variable "prefect_api_url" {
  description = "A Prefect Cloud workspace API URL (https://api.prefect.cloud/api/accounts/<id>/workspaces/<id>). Empty: run a Prefect server on ECS with an RDS PostgreSQL database."
  type        = string
  default     = ""

  validation {
    condition     = var.prefect_api_url == "" || can(regex("^https://[^/]+/api/accounts/[0-9a-f-]+/workspaces/[0-9a-f-]+$", var.prefect_api_url))
    error_message = "prefect_api_url must be empty or a Prefect Cloud workspace URL: https://api.prefect.cloud/api/accounts/<account id>/workspaces/<workspace id>."
  }
}

variable "prefect_api_key" {
  description = "Prefect Cloud API key (a service account's), required with prefect_api_url. Stored in Secrets Manager."
  type        = string
  default     = ""
  sensitive   = true

  validation {
    condition     = var.prefect_api_url == "" || length(var.prefect_api_key) > 0
    error_message = "prefect_api_key is required when prefect_api_url is set."
  }
}

variable "work_pool" {
  description = "Name of the Prefect process work pool the worker serves and the deployments run on (IVI_WORK_POOL)."
  type        = string
  default     = "ivi-process"

  validation {
    condition     = can(regex("^[A-Za-z0-9][A-Za-z0-9_-]*$", var.work_pool))
    error_message = "work_pool must be letters, digits, '-' and '_'."
  }
}

variable "worker_count" {
  description = "Worker tasks. Each runs flow runs as processes; they share no volume (the locks and results live in the processed bucket)."
  type        = number
  default     = 1

  validation {
    condition     = var.worker_count >= 0 && var.worker_count <= 50
    error_message = "worker_count must be between 0 and 50."
  }
}

variable "worker_query_seconds" {
  description = "How often a worker polls for scheduled runs (PREFECT_WORKER_QUERY_SECONDS); lower starts runs sooner and costs more API calls."
  type        = number
  default     = 5

  validation {
    condition     = var.worker_query_seconds >= 1
    error_message = "worker_query_seconds must be at least 1."
  }
}

variable "relay_count" {
  description = "Relay tasks behind the load balancer (2 keeps it up through a deployment or a zone failure)."
  type        = number
  default     = 2

  validation {
    condition     = var.relay_count >= 1
    error_message = "relay_count must be at least 1: without a relay no upload starts a run."
  }
}

variable "task_sizes" {
  description = "Fargate CPU units and memory (MiB) per service; the worker's must hold a file's chunk pipeline (~550 MB at 1M rows) plus Prefect."
  type = object({
    relay          = object({ cpu = number, memory = number })
    prefect_server = object({ cpu = number, memory = number })
    worker         = object({ cpu = number, memory = number })
    setup          = object({ cpu = number, memory = number })
  })
  default = {
    relay          = { cpu = 256, memory = 512 }
    prefect_server = { cpu = 1024, memory = 2048 }
    worker         = { cpu = 1024, memory = 3072 }
    setup          = { cpu = 512, memory = 1024 }
  }
}

variable "log_retention_days" {
  description = "CloudWatch Logs retention of every service's log group."
  type        = number
  default     = 30

  validation {
    condition     = contains([1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653], var.log_retention_days)
    error_message = "log_retention_days must be one of the values CloudWatch Logs accepts (1, 3, 5, 7, 14, 30, 60, 90, ...)."
  }
}

# --- Prefect database (self-hosted server only) -----------------------------------------

variable "database" {
  description = "RDS PostgreSQL for the Prefect server (unused with Prefect Cloud)."
  type = object({
    instance_class        = optional(string, "db.t4g.small")
    engine_version        = optional(string, "16")
    allocated_storage_gb  = optional(number, 20)
    max_storage_gb        = optional(number, 100)
    multi_az              = optional(bool, false)
    backup_retention_days = optional(number, 7)
    deletion_protection   = optional(bool, true)
    skip_final_snapshot   = optional(bool, false)
  })
  default = {}

  validation {
    condition     = var.database.max_storage_gb >= var.database.allocated_storage_gb
    error_message = "database.max_storage_gb must be at least database.allocated_storage_gb."
  }
}

# --- Power BI ---------------------------------------------------------------------------

variable "powerbi" {
  description = "Power BI REST API settings (IVI_POWERBI_*): used for contracts given a dataset id in powerbi_dataset_ids. The local stand-in does not run in the cloud."
  type = object({
    api_url        = optional(string, "https://api.powerbi.com")
    authority_host = optional(string, "https://login.microsoftonline.com")
    tenant_id      = optional(string, "")
    client_id      = optional(string, "")
    workspace_id   = optional(string, "")
  })
  default = {}
}

variable "powerbi_client_secret" {
  description = "Client secret of the Entra ID app registration used with powerbi (IVI_POWERBI_CLIENT_SECRET). Stored in Secrets Manager."
  type        = string
  default     = ""
  sensitive   = true

  validation {
    condition     = length(var.powerbi_dataset_ids) == 0 || length(var.powerbi_client_secret) > 0
    error_message = "powerbi_client_secret is required when powerbi_dataset_ids is set (the REST API needs a token)."
  }
}

variable "powerbi_dataset_ids" {
  description = "Push dataset id per contract (key = contract name, e.g. vendas), written through the REST API: IVI_POWERBI_<CONTRACT>_DATASET_ID."
  type        = map(string)
  default     = {}

  validation {
    condition     = alltrue([for contract in keys(var.powerbi_dataset_ids) : can(regex("^[a-z0-9_]+$", contract))])
    error_message = "powerbi_dataset_ids keys must be contract names (lower-case letters, digits, '_')."
  }
}

variable "powerbi_push_urls" {
  description = "Push/streaming dataset URL per contract, key included (key = contract name): IVI_POWERBI_<CONTRACT>_PUSH_URL. Every contract with a [powerbi] table needs this or a dataset id. Stored in Secrets Manager."
  type        = map(string)
  default     = {}
  sensitive   = true

  validation {
    condition     = alltrue([for contract, url in var.powerbi_push_urls : can(regex("^[a-z0-9_]+$", contract)) && startswith(url, "https://")])
    error_message = "powerbi_push_urls keys must be contract names (lower-case letters, digits, '_') and values https URLs."
  }
}

variable "extra_environment" {
  description = "More non-secret settings for every container (IVI_* or PREFECT_* variables, e.g. IVI_RELAY_MAX_BODY_BYTES)."
  type        = map(string)
  default     = {}

  validation {
    condition     = alltrue([for key in keys(var.extra_environment) : can(regex("^(IVI|PREFECT)_[A-Z0-9_]+$", key))])
    error_message = "extra_environment keys must be IVI_* or PREFECT_* variable names."
  }
}
