# The module inputs this root passes on (descriptions and validation live in the module).

variable "image" {
  type = string
}

variable "namespace" {
  type    = string
  default = "ivi"
}

variable "relay_replicas" {
  type    = number
  default = 2
}

variable "worker_replicas" {
  type    = number
  default = 2
}

variable "powerbi_push_urls" {
  type      = map(string)
  default   = {}
  sensitive = true
}
