# The module inputs this root passes on (descriptions and validation live in the module).

variable "location" {
  type = string
}

variable "resource_group_name" {
  type = string
}

variable "image" {
  type = string
}

variable "admin_ssh_public_key" {
  type = string
}

variable "ssh_allowed_cidrs" {
  type    = list(string)
  default = []
}

variable "s3_allowed_cidrs" {
  type    = list(string)
  default = []
}

variable "prefect_ui_allowed_cidrs" {
  type    = list(string)
  default = []
}

variable "worker_count" {
  type    = number
  default = 1
}

variable "powerbi" {
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
  type      = string
  default   = ""
  sensitive = true
}

variable "powerbi_dataset_ids" {
  type    = map(string)
  default = {}
}

variable "powerbi_push_urls" {
  type      = map(string)
  default   = {}
  sensitive = true
}
