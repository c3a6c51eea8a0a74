# --- Naming ----------------------------------------------------------------------------------

variable "name" {
  description = "Prefix of every resource name (network, router, security group, instance, volume)."
  type        = string
  default     = "ivi"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,19}$", var.name))
    error_message = "name must be 2-20 characters: lower-case letters, digits and '-', starting with a letter."
  }
}

variable "tags" {
  description = "Tags (plain strings) added to the resources that take tags."
  type        = set(string)
  default     = []
}

# --- Network ---------------------------------------------------------------------------------

variable "external_network_name" {
  description = "The provider network that routes to the internet and hands out floating IPs (often `public` or `ext-net`)."
  type        = string
}

variable "network_cidr" {
  description = "CIDR of the pipeline's private subnet."
  type        = string
  default     = "10.50.0.0/24"

  validation {
    condition     = can(cidrhost(var.network_cidr, 0))
    error_message = "network_cidr must be a CIDR block."
  }
}

variable "dns_nameservers" {
  description = "DNS servers handed out on the private subnet (empty: the cloud's default)."
  type        = list(string)
  default     = []
}

variable "ssh_allowed_cidrs" {
  description = "Networks allowed to SSH into the instance."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for cidr in var.ssh_allowed_cidrs : can(cidrhost(cidr, 0))])
    error_message = "ssh_allowed_cidrs must be CIDR blocks."
  }
}

variable "s3_allowed_cidrs" {
  description = "Networks allowed to reach MinIO's S3 API (9000) and console (9001): whoever uploads CSV files. Plain HTTP: keep it to trusted networks or put a TLS proxy in front."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for cidr in var.s3_allowed_cidrs : can(cidrhost(cidr, 0)) && cidr != "0.0.0.0/0"])
    error_message = "s3_allowed_cidrs must be CIDR blocks, and not 0.0.0.0/0 (the S3 API is plain HTTP)."
  }
}

variable "prefect_ui_allowed_cidrs" {
  description = "Networks allowed to open the Prefect UI/API (4200). Anyone who reaches it controls the pipeline and can read its blocks."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for cidr in var.prefect_ui_allowed_cidrs : can(cidrhost(cidr, 0)) && cidr != "0.0.0.0/0"])
    error_message = "prefect_ui_allowed_cidrs must be CIDR blocks, and not 0.0.0.0/0 (the Prefect server has no login)."
  }
}

# --- Instance --------------------------------------------------------------------------------

variable "image_name" {
  description = "Glance image of the instance: Ubuntu 24.04 or later (the bootstrap installs docker.io and docker-compose-v2 with apt)."
  type        = string
  default     = "Ubuntu 24.04"
}

variable "flavor_name" {
  description = "Nova flavor: 4 vCPU / 8 GB holds MinIO, PostgreSQL, the Prefect server, the relay and two workers."
  type        = string
}

variable "availability_zone" {
  description = "Availability zone of the instance and its volume (empty: the cloud's default)."
  type        = string
  default     = ""
}

variable "ssh_public_key" {
  description = "SSH public key installed for the image's default user (ubuntu)."
  type        = string

  validation {
    condition     = can(regex("^(ssh-(rsa|ed25519)|ecdsa-sha2-nistp(256|384|521)) ", var.ssh_public_key))
    error_message = "ssh_public_key must be an OpenSSH public key (ssh-ed25519 ..., ssh-rsa ..., ecdsa-sha2-...)."
  }
}

variable "volume_size_gb" {
  description = "Size of the Cinder volume holding Docker's data: the buckets (with the flows' locks and results), MinIO's event queue, PostgreSQL."
  type        = number
  default     = 100

  validation {
    condition     = var.volume_size_gb >= 20
    error_message = "volume_size_gb must be at least 20."
  }
}

variable "volume_type" {
  description = "Cinder volume type (empty: the cloud's default)."
  type        = string
  default     = ""
}

variable "volume_device" {
  description = "Device path of the volume inside the instance. Empty: /dev/disk/by-id/virtio-<volume id>, right for virtio-blk; set e.g. /dev/sdb on clouds that attach with virtio-scsi."
  type        = string
  default     = ""
}

# --- The application -------------------------------------------------------------------------

variable "repo_url" {
  description = "Git URL the instance clones the project from (it runs the project's docker-compose.yml). Must be readable without credentials from the instance, e.g. a public repository or an internal mirror."
  type        = string

  validation {
    condition     = can(regex("^(https://|git@|ssh://)", var.repo_url)) && !can(regex("://[^/@]+:[^/@]+@", var.repo_url))
    error_message = "repo_url must be an https:// or ssh git URL without credentials in it (they would land in the instance's user data)."
  }
}

variable "repo_ref" {
  description = "Tag or commit of the project to deploy (a branch would change under a running deployment)."
  type        = string

  validation {
    condition     = length(trimspace(var.repo_ref)) > 0 && !contains(["main", "master", "HEAD"], var.repo_ref)
    error_message = "repo_ref must be a tag or commit, not a branch name."
  }
}

variable "image" {
  description = "Pipeline image to pull (APP_IMAGE of docker-compose.yml). Empty: build it on the instance from infra/docker/Dockerfile."
  type        = string
  default     = ""

  validation {
    condition     = var.image == "" || !endswith(var.image, ":latest")
    error_message = "image must be pinned (a tag other than latest, or a digest)."
  }
}

variable "worker_count" {
  description = "Worker containers (`docker compose up --scale worker=N`)."
  type        = number
  default     = 2

  validation {
    condition     = var.worker_count >= 1 && var.worker_count <= 16
    error_message = "worker_count must be between 1 and 16."
  }
}

variable "work_pool" {
  description = "Prefect process work pool (IVI_WORK_POOL)."
  type        = string
  default     = "local-process"

  validation {
    condition     = can(regex("^[A-Za-z0-9][A-Za-z0-9_-]*$", var.work_pool))
    error_message = "work_pool must be letters, digits, '-' and '_'."
  }
}

variable "buckets" {
  description = "Bucket names by role (IVI_RAW_BUCKET, IVI_PROCESSED_BUCKET, IVI_QUARANTINE_BUCKET)."
  type = object({
    raw        = optional(string, "raw")
    processed  = optional(string, "processed")
    quarantine = optional(string, "quarantine")
    lake       = optional(string, "lake")
  })
  default = {}

  validation {
    condition     = alltrue([for bucket in values(var.buckets) : can(regex("^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$", bucket))])
    error_message = "Bucket names must be 3-63 lower-case letters, digits, '.' and '-'."
  }
}

variable "powerbi_standin" {
  description = "Run the local Power BI stand-in (compose profile `standin`) instead of sending rows to Power BI: for a trial, never for production data."
  type        = bool
  default     = false

  validation {
    condition     = var.powerbi_standin || length(var.powerbi_dataset_ids) > 0 || length(nonsensitive(keys(var.powerbi_push_urls))) > 0
    error_message = "Without the stand-in, set powerbi_push_urls or powerbi_dataset_ids (every contract with a [powerbi] table needs one)."
  }
}

# --- Power BI ---------------------------------------------------------------------------------

variable "powerbi" {
  description = "Power BI REST API settings (IVI_POWERBI_*), used for contracts given a dataset id in powerbi_dataset_ids."
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
  description = "Client secret of the Entra ID app registration used with powerbi (IVI_POWERBI_CLIENT_SECRET)."
  type        = string
  default     = ""
  sensitive   = true

  validation {
    condition     = length(var.powerbi_dataset_ids) == 0 || length(var.powerbi_client_secret) > 0
    error_message = "powerbi_client_secret is required when powerbi_dataset_ids is set."
  }
}

variable "powerbi_dataset_ids" {
  description = "Push dataset id per contract (key = contract name, e.g. vendas): IVI_POWERBI_<CONTRACT>_DATASET_ID."
  type        = map(string)
  default     = {}

  validation {
    condition     = alltrue([for contract in keys(var.powerbi_dataset_ids) : can(regex("^[a-z0-9_]+$", contract))])
    error_message = "powerbi_dataset_ids keys must be contract names (lower-case letters, digits, '_')."
  }
}

variable "powerbi_push_urls" {
  description = "Push/streaming dataset URL per contract, key included: IVI_POWERBI_<CONTRACT>_PUSH_URL."
  type        = map(string)
  default     = {}
  sensitive   = true

  validation {
    condition     = alltrue([for contract, url in var.powerbi_push_urls : can(regex("^[a-z0-9_]+$", contract)) && startswith(url, "https://")])
    error_message = "powerbi_push_urls keys must be contract names (lower-case letters, digits, '_') and values https URLs."
  }
}

variable "extra_environment" {
  description = "More settings written to the instance's .env (IVI_* variables documented in .env.example)."
  type        = map(string)
  default     = {}

  validation {
    condition     = alltrue([for key, value in var.extra_environment : can(regex("^IVI_[A-Z0-9_]+$", key)) && !can(regex("[\n\"']", value))])
    error_message = "extra_environment keys must be IVI_* variable names, and values single-line without quotes."
  }
}
