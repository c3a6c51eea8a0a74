# --- Naming and placement -----------------------------------------------------------------

variable "name" {
  description = "Prefix of every resource name. Key Vault and the PostgreSQL server add a random suffix (their names are global)."
  type        = string
  default     = "ivi"

  validation {
    condition     = can(regex("^[a-z][a-z0-9]{1,11}$", var.name))
    error_message = "name must be 2-12 lower-case letters and digits, starting with a letter (it becomes part of the Key Vault and PostgreSQL server names)."
  }
}

variable "location" {
  description = "Azure region, e.g. westeurope or brazilsouth."
  type        = string
}

variable "resource_group_name" {
  description = "Resource group to create for the pipeline."
  type        = string
}

variable "tags" {
  description = "Tags added to every resource that takes tags."
  type        = map(string)
  default     = {}
}

variable "image" {
  description = "The pipeline's container image (built from infra/docker/Dockerfile, app at /app), pinned by tag or digest. Public, or in a registry given by registry_server."
  type        = string

  validation {
    condition     = length(trimspace(var.image)) > 0 && !endswith(var.image, ":latest")
    error_message = "image must be set and pinned (a tag other than latest, or a digest)."
  }
}

variable "registry_server" {
  description = "Private registry host of the image (e.g. acme.azurecr.io); the apps pull with the pipeline identity, which needs AcrPull on it. Empty: the image is public."
  type        = string
  default     = ""
}

# --- Network --------------------------------------------------------------------------------

variable "address_space" {
  description = "Address space of the virtual network (a /16 or larger): a /23 for the Container Apps environment, /24s for the database and the MinIO VM are carved from it."
  type        = string
  default     = "10.40.0.0/16"

  validation {
    condition     = can(cidrhost(var.address_space, 0)) && tonumber(split("/", var.address_space)[1]) <= 16
    error_message = "address_space must be a CIDR block of /16 or larger."
  }
}

variable "ssh_allowed_cidrs" {
  description = "Networks allowed to SSH into the MinIO VM. Empty: no SSH from outside the virtual network."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for cidr in var.ssh_allowed_cidrs : can(cidrhost(cidr, 0))])
    error_message = "ssh_allowed_cidrs must be CIDR blocks."
  }
}

variable "s3_allowed_cidrs" {
  description = "Networks allowed to reach MinIO's S3 API (port 9000, plain HTTP) and console (9001) on the VM's public address: whoever uploads CSV files. The Container Apps reach it privately whatever this says."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for cidr in var.s3_allowed_cidrs : can(cidrhost(cidr, 0)) && cidr != "0.0.0.0/0"])
    error_message = "s3_allowed_cidrs must be CIDR blocks, and not 0.0.0.0/0 (the S3 API is plain HTTP here)."
  }
}

variable "prefect_ui_allowed_cidrs" {
  description = "Networks allowed to open the Prefect UI/API. Empty: reachable only from inside the Container Apps environment. Anyone who reaches it controls the pipeline and can read its blocks."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for cidr in var.prefect_ui_allowed_cidrs : can(cidrhost(cidr, 0)) && cidr != "0.0.0.0/0"])
    error_message = "prefect_ui_allowed_cidrs must be CIDR blocks, and not 0.0.0.0/0 (the Prefect server has no login)."
  }
}

# --- Object store (MinIO on a VM) -------------------------------------------------------------

variable "minio_vm_size" {
  description = "Size of the MinIO VM."
  type        = string
  default     = "Standard_B2s"
}

variable "minio_disk_size_gb" {
  description = "Size of the managed data disk holding the buckets and MinIO's event queue."
  type        = number
  default     = 128

  validation {
    condition     = var.minio_disk_size_gb >= 16
    error_message = "minio_disk_size_gb must be at least 16."
  }
}

variable "minio_image" {
  description = "MinIO server image. MinIO no longer publishes community images on Docker Hub; quay.io keeps the archived releases."
  type        = string
  default     = "quay.io/minio/minio:RELEASE.2025-09-07T16-13-09Z"
}

variable "mc_image" {
  description = "MinIO client image used once at boot to create the buckets and the raw bucket's event subscription."
  type        = string
  default     = "quay.io/minio/mc:RELEASE.2025-08-13T08-35-41Z"
}

variable "admin_username" {
  description = "Login of the MinIO VM's administrator (SSH key only)."
  type        = string
  default     = "ivi"
}

variable "admin_ssh_public_key" {
  description = "SSH public key of the MinIO VM's administrator (OpenSSH format)."
  type        = string

  validation {
    condition     = can(regex("^(ssh-(rsa|ed25519)|ecdsa-sha2-nistp(256|384|521)) ", var.admin_ssh_public_key))
    error_message = "admin_ssh_public_key must be an OpenSSH public key (ssh-ed25519 ..., ssh-rsa ..., ecdsa-sha2-...)."
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

# --- Prefect ----------------------------------------------------------------------------------

variable "prefect_api_url" {
  description = "A Prefect Cloud workspace API URL (https://api.prefect.cloud/api/accounts/<id>/workspaces/<id>). Empty: run a Prefect server as a Container App on Azure Database for PostgreSQL."
  type        = string
  default     = ""

  validation {
    condition     = var.prefect_api_url == "" || can(regex("^https://[^/]+/api/accounts/[0-9a-f-]+/workspaces/[0-9a-f-]+$", var.prefect_api_url))
    error_message = "prefect_api_url must be empty or a Prefect Cloud workspace URL: https://api.prefect.cloud/api/accounts/<account id>/workspaces/<workspace id>."
  }
}

variable "prefect_api_key" {
  description = "Prefect Cloud API key (a service account's), required with prefect_api_url. Stored in Key Vault."
  type        = string
  default     = ""
  sensitive   = true

  validation {
    condition     = var.prefect_api_url == "" || length(var.prefect_api_key) > 0
    error_message = "prefect_api_key is required when prefect_api_url is set."
  }
}

variable "work_pool" {
  description = "Name of the Prefect process work pool the workers serve (IVI_WORK_POOL)."
  type        = string
  default     = "ivi-process"

  validation {
    condition     = can(regex("^[A-Za-z0-9][A-Za-z0-9_-]*$", var.work_pool))
    error_message = "work_pool must be letters, digits, '-' and '_'."
  }
}

variable "worker_count" {
  description = "Worker replicas; they share no volume (the locks and results live in the processed bucket)."
  type        = number
  default     = 1

  validation {
    condition     = var.worker_count >= 1 && var.worker_count <= 30
    error_message = "worker_count must be between 1 and 30."
  }
}

variable "worker_query_seconds" {
  description = "How often a worker polls for scheduled runs (PREFECT_WORKER_QUERY_SECONDS)."
  type        = number
  default     = 5

  validation {
    condition     = var.worker_query_seconds >= 1
    error_message = "worker_query_seconds must be at least 1."
  }
}

variable "relay_min_replicas" {
  description = "Relay replicas kept running (MinIO queues events while none answers, but 1 or more keeps the path live)."
  type        = number
  default     = 1

  validation {
    condition     = var.relay_min_replicas >= 1
    error_message = "relay_min_replicas must be at least 1."
  }
}

variable "container_sizes" {
  description = "vCPU and memory per container (Consumption profile pairs: 0.25/0.5Gi, 0.5/1Gi, 1/2Gi, 2/4Gi ...)."
  type = object({
    relay          = object({ cpu = number, memory = string })
    prefect_server = object({ cpu = number, memory = string })
    worker         = object({ cpu = number, memory = string })
    setup          = object({ cpu = number, memory = string })
  })
  default = {
    relay          = { cpu = 0.25, memory = "0.5Gi" }
    prefect_server = { cpu = 1, memory = "2Gi" }
    worker         = { cpu = 1.5, memory = "3Gi" }
    setup          = { cpu = 0.5, memory = "1Gi" }
  }
}

variable "database" {
  description = "Azure Database for PostgreSQL flexible server of the Prefect server (unused with Prefect Cloud)."
  type = object({
    sku_name              = optional(string, "B_Standard_B1ms")
    version               = optional(string, "16")
    storage_mb            = optional(number, 32768)
    backup_retention_days = optional(number, 7)
  })
  default = {}

  validation {
    condition     = var.database.backup_retention_days >= 7 && var.database.backup_retention_days <= 35
    error_message = "database.backup_retention_days must be between 7 and 35."
  }
}

variable "log_retention_days" {
  description = "Retention of the Log Analytics workspace that receives every container's output."
  type        = number
  default     = 30

  validation {
    condition     = var.log_retention_days >= 30 && var.log_retention_days <= 730
    error_message = "log_retention_days must be between 30 and 730."
  }
}

variable "key_vault_purge_protection" {
  description = "Purge protection on the Key Vault: deleted secrets cannot be purged before the retention ends (and the vault's name stays taken)."
  type        = bool
  default     = true
}

# --- Power BI ---------------------------------------------------------------------------------

variable "powerbi" {
  description = "Power BI REST API settings (IVI_POWERBI_*), used for contracts given a dataset id in powerbi_dataset_ids. The local stand-in does not run in the cloud."
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
  description = "Client secret of the Entra ID app registration used with powerbi (IVI_POWERBI_CLIENT_SECRET). Stored in Key Vault."
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
  description = "Push/streaming dataset URL per contract, key included: IVI_POWERBI_<CONTRACT>_PUSH_URL. Every contract with a [powerbi] table needs this or a dataset id. Stored in Key Vault."
  type        = map(string)
  default     = {}
  sensitive   = true

  validation {
    condition     = alltrue([for contract, url in var.powerbi_push_urls : can(regex("^[a-z0-9_]+$", contract)) && startswith(url, "https://")])
    error_message = "powerbi_push_urls keys must be contract names (lower-case letters, digits, '_') and values https URLs."
  }
}

variable "extra_environment" {
  description = "More non-secret settings for every container (IVI_* or PREFECT_* variables)."
  type        = map(string)
  default     = {}

  validation {
    condition     = alltrue([for key in keys(var.extra_environment) : can(regex("^(IVI|PREFECT)_[A-Z0-9_]+$", key))])
    error_message = "extra_environment keys must be IVI_* or PREFECT_* variable names."
  }
}
