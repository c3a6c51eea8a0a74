# A root configuration deploying the pipeline on an existing Kubernetes cluster: copy this
# directory, add your backend, fill terraform.tfvars from
# ../../modules/k8s/terraform.tfvars.example, then
#   terraform init && terraform apply
# The module reads infra/k8s (the values files and the prod overlay) from this repository:
# keep the copy beside it, or set the module source to a git URL of the repository.

terraform {
  required_version = ">= 1.9.0, < 2.0.0"

  required_providers {
    helm = {
      source  = "hashicorp/helm"
      version = "~> 3.1"
    }
    kustomization = {
      source  = "kbst/kustomization"
      version = "~> 0.9"
    }
    random = {
      source  = "hashicorp/random"
      version = "~> 3.7"
    }
  }

  # The state holds the generated secrets (and the Secret manifests): keep it in an
  # encrypted, access-controlled backend.
}

variable "kubeconfig_path" {
  description = "kubeconfig of the cluster."
  type        = string
  default     = "~/.kube/config"
}

variable "kube_context" {
  description = "Context of the kubeconfig to use (null: its current context)."
  type        = string
  default     = null
}

provider "helm" {
  kubernetes = {
    config_path    = pathexpand(var.kubeconfig_path)
    config_context = var.kube_context
  }
}

provider "kustomization" {
  kubeconfig_path = pathexpand(var.kubeconfig_path)
  context         = var.kube_context
}

module "pipeline" {
  source = "../../modules/k8s"

  image             = var.image
  namespace         = var.namespace
  relay_replicas    = var.relay_replicas
  worker_replicas   = var.worker_replicas
  powerbi_push_urls = var.powerbi_push_urls
}

output "namespace" {
  value = module.pipeline.namespace
}

output "prefect_ui_url" {
  value = module.pipeline.prefect_ui_url
}

output "s3_endpoint" {
  value = module.pipeline.s3_endpoint
}
