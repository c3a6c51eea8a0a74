# A root configuration deploying the pipeline on Azure: copy this directory, add your backend,
# fill terraform.tfvars from ../../modules/azure/terraform.tfvars.example, then
#   export ARM_SUBSCRIPTION_ID=<subscription id>   # and `az login`, or a service principal
#   terraform init && terraform apply
# and run the command of the output setup_start_command once.

terraform {
  required_version = ">= 1.9.0, < 2.0.0"

  required_providers {
    azurerm = {
      source  = "hashicorp/azurerm"
      version = "~> 5.0"
    }
    random = {
      source  = "hashicorp/random"
      version = "~> 3.7"
    }
  }

  # The state holds generated secrets: keep it in an encrypted, access-controlled backend, e.g.
  # backend "azurerm" {
  #   resource_group_name  = "tfstate"
  #   storage_account_name = "acmetfstate"
  #   container_name       = "tfstate"
  #   key                  = "ivi/prod.tfstate"
  #   use_azuread_auth     = true
  # }
}

provider "azurerm" {
  # azurerm 5 registers no resource provider by default: these are the ones the module uses.
  resource_providers_to_register = [
    "Microsoft.App",
    "Microsoft.Compute",
    "Microsoft.DBforPostgreSQL",
    "Microsoft.KeyVault",
    "Microsoft.ManagedIdentity",
    "Microsoft.Network",
    "Microsoft.OperationalInsights",
    "Microsoft.Storage",
  ]

  features {
    key_vault {
      # Keep soft-deleted secrets recoverable instead of purging them on destroy.
      purge_soft_deleted_secrets_on_destroy = false
    }
  }
}

module "pipeline" {
  source = "../../modules/azure"

  location             = var.location
  resource_group_name  = var.resource_group_name
  image                = var.image
  admin_ssh_public_key = var.admin_ssh_public_key

  ssh_allowed_cidrs        = var.ssh_allowed_cidrs
  s3_allowed_cidrs         = var.s3_allowed_cidrs
  prefect_ui_allowed_cidrs = var.prefect_ui_allowed_cidrs
  worker_count             = var.worker_count

  powerbi               = var.powerbi
  powerbi_client_secret = var.powerbi_client_secret
  powerbi_dataset_ids   = var.powerbi_dataset_ids
  powerbi_push_urls     = var.powerbi_push_urls
}

output "relay_url" {
  value = module.pipeline.relay_url
}

output "prefect_ui_url" {
  value = module.pipeline.prefect_ui_url
}

output "s3_endpoint" {
  value = module.pipeline.s3_endpoint
}

output "key_vault_name" {
  value = module.pipeline.key_vault_name
}

output "setup_start_command" {
  value = module.pipeline.setup_start_command
}
