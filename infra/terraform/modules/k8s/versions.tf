terraform {
  # 1.9: variable validations may refer to other variables.
  required_version = ">= 1.9.0, < 2.0.0"

  # The calling configuration configures both providers (kubeconfig, context): see
  # examples/k8s/main.tf.
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
}
