variable "namespace" {
  description = "Namespace of the whole pipeline: the two Helm releases and the manifests of infra/k8s (created by this module)."
  type        = string
  default     = "ivi"

  validation {
    condition     = can(regex("^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$", var.namespace))
    error_message = "namespace must be a DNS label (lower-case letters, digits, '-')."
  }
}

variable "image" {
  description = "The pipeline's image (infra/docker/Dockerfile, with prefect-kubernetes), pinned: registry/name:tag or registry/name@sha256:digest. The relay, the worker, the setup Job and every flow run use it."
  type        = string

  validation {
    condition     = can(regex("^[^@\\s]+?(:[A-Za-z0-9_][A-Za-z0-9_.-]*)?(@sha256:[0-9a-f]{64})?$", var.image)) && (can(regex("@sha256:", var.image)) || can(regex(":[A-Za-z0-9_][A-Za-z0-9_.-]*$", var.image))) && !endswith(var.image, ":latest")
    error_message = "image must be pinned: name:tag (not latest) or name@sha256:<digest>."
  }
}

variable "relay_replicas" {
  description = "Relay pods (2 or more keeps the webhook answering through node drains; a PodDisruptionBudget keeps one)."
  type        = number
  default     = 2

  validation {
    condition     = var.relay_replicas >= 1
    error_message = "relay_replicas must be at least 1."
  }
}

variable "worker_replicas" {
  description = "Prefect worker pods of the Kubernetes work pool (each flow run is its own Job whatever this says)."
  type        = number
  default     = 2

  validation {
    condition     = var.worker_replicas >= 1 && var.worker_replicas <= 10
    error_message = "worker_replicas must be between 1 and 10."
  }
}

variable "work_pool" {
  description = "Name of the Kubernetes work pool (IVI_WORK_POOL); the setup Job creates it with the project's job template."
  type        = string
  default     = "kubernetes"

  validation {
    condition     = can(regex("^[A-Za-z0-9][A-Za-z0-9_-]*$", var.work_pool))
    error_message = "work_pool must be letters, digits, '-' and '_'."
  }
}

variable "prefect_server_chart_version" {
  description = "Version of the prefect-server chart (https://prefecthq.github.io/prefect-helm); infra/k8s/helm/prefect-server-values.yaml is written for it."
  type        = string
  default     = "2026.8.18172642"
}

variable "minio_chart_version" {
  description = "Version of MinIO's chart (https://charts.min.io/); infra/k8s/helm/minio-values.yaml is written for it."
  type        = string
  default     = "5.4.0"
}

variable "prefect_ui_api_url" {
  description = "Where a browser reaches the Prefect API (server.uiConfig.prefectUiApiUrl): the port-forward default, or your ingress URL + /api."
  type        = string
  default     = "http://localhost:4200/api"
}

variable "prefect_api_url" {
  description = "A Prefect Cloud workspace API URL (https://api.prefect.cloud/api/accounts/<id>/workspaces/<id>). Empty: install the prefect-server chart in the namespace."
  type        = string
  default     = ""

  validation {
    condition     = var.prefect_api_url == "" || can(regex("^https://[^/]+/api/accounts/[0-9a-f-]+/workspaces/[0-9a-f-]+$", var.prefect_api_url))
    error_message = "prefect_api_url must be empty or a Prefect Cloud workspace URL: https://api.prefect.cloud/api/accounts/<account id>/workspaces/<workspace id>."
  }
}

variable "prefect_api_key" {
  description = "Prefect Cloud API key (a service account's), required with prefect_api_url; kept in Secret ivi-secrets."
  type        = string
  default     = ""
  sensitive   = true

  validation {
    condition     = var.prefect_api_url == "" || length(var.prefect_api_key) > 0
    error_message = "prefect_api_key is required when prefect_api_url is set."
  }
}

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
  description = "Push/streaming dataset URL per contract, key included: IVI_POWERBI_<CONTRACT>_PUSH_URL. Every contract with a [powerbi] table needs this or a dataset id, or the setup Job fails."
  type        = map(string)
  default     = {}
  sensitive   = true

  validation {
    condition     = alltrue([for contract, url in var.powerbi_push_urls : can(regex("^[a-z0-9_]+$", contract)) && startswith(url, "https://")])
    error_message = "powerbi_push_urls keys must be contract names (lower-case letters, digits, '_') and values https URLs."
  }
}

variable "extra_config" {
  description = "More non-secret settings merged into ConfigMap ivi-config (IVI_* or PREFECT_* variables)."
  type        = map(string)
  default     = {}

  validation {
    condition     = alltrue([for key in keys(var.extra_config) : can(regex("^(IVI|PREFECT)_[A-Z0-9_]+$", key))])
    error_message = "extra_config keys must be IVI_* or PREFECT_* variable names."
  }
}
