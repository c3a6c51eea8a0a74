# The module inputs this root passes on (descriptions and validation live in the module).

variable "external_network_name" {
  type = string
}

variable "flavor_name" {
  type = string
}

variable "ssh_public_key" {
  type = string
}

variable "repo_url" {
  type = string
}

variable "repo_ref" {
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
  default = 2
}

variable "powerbi_standin" {
  type    = bool
  default = false
}

variable "powerbi_push_urls" {
  type      = map(string)
  default   = {}
  sensitive = true
}
