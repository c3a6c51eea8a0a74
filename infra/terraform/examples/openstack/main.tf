# A root configuration deploying the pipeline on OpenStack: copy this directory, add your
# backend, fill terraform.tfvars from ../../modules/openstack/terraform.tfvars.example, then
#   export OS_CLOUD=<cloud of your clouds.yaml>   # or source your openrc
#   terraform init && terraform apply
# The instance clones the project at repo_ref and starts its docker-compose.yml by itself.

terraform {
  required_version = ">= 1.9.0, < 2.0.0"

  required_providers {
    openstack = {
      source  = "terraform-provider-openstack/openstack"
      version = "~> 3.4"
    }
    random = {
      source  = "hashicorp/random"
      version = "~> 3.7"
    }
  }

  # The state holds the generated secrets: keep it in an encrypted, access-controlled
  # backend (e.g. backend "s3" against your cloud's object store, or backend "http").
}

# Credentials and region from clouds.yaml (OS_CLOUD) or the OS_* variables of an openrc.
provider "openstack" {}

module "pipeline" {
  source = "../../modules/openstack"

  external_network_name = var.external_network_name
  flavor_name           = var.flavor_name
  ssh_public_key        = var.ssh_public_key
  repo_url              = var.repo_url
  repo_ref              = var.repo_ref

  ssh_allowed_cidrs        = var.ssh_allowed_cidrs
  s3_allowed_cidrs         = var.s3_allowed_cidrs
  prefect_ui_allowed_cidrs = var.prefect_ui_allowed_cidrs
  worker_count             = var.worker_count
  powerbi_standin          = var.powerbi_standin
  powerbi_push_urls        = var.powerbi_push_urls
}

output "public_ip" {
  value = module.pipeline.public_ip
}

output "s3_endpoint" {
  value = module.pipeline.s3_endpoint
}

output "prefect_ui_url" {
  value = module.pipeline.prefect_ui_url
}

output "ssh_command" {
  value = module.pipeline.ssh_command
}
