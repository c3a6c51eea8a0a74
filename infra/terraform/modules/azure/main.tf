# Resource group, network, logs, identities and the generated secrets.

data "azurerm_client_config" "current" {}

resource "random_string" "suffix" {
  length  = 6
  lower   = true
  upper   = false
  numeric = true
  special = false
}

locals {
  self_hosted = var.prefect_api_url == ""
  suffix      = random_string.suffix.result
  tags        = merge(var.tags, { "ivi-pipeline" = var.name })

  prefix_length  = tonumber(split("/", var.address_space)[1])
  apps_subnet    = cidrsubnet(var.address_space, 23 - local.prefix_length, 0) # a /23: what a Container Apps environment needs
  db_subnet      = cidrsubnet(var.address_space, 24 - local.prefix_length, 2)
  storage_subnet = cidrsubnet(var.address_space, 24 - local.prefix_length, 3)
  minio_ip       = cidrhost(local.storage_subnet, 10)

  relay_port   = 8000
  prefect_port = 4200
  # Per replica, on the container's own disk: the flows keep nothing there (no shared volume).
  data_dir = "/tmp/ivi-data"
  # prefect.yaml has no `pull:` step: the deployments record the directory the setup job ran
  # `python -m deployments.apply` in, and the worker runs the flows from the same one.
  app_dir = "/app"
}

resource "azurerm_resource_group" "this" {
  name     = var.resource_group_name
  location = var.location
  tags     = local.tags
}

resource "azurerm_log_analytics_workspace" "this" {
  name                = "${var.name}-logs"
  location            = azurerm_resource_group.this.location
  resource_group_name = azurerm_resource_group.this.name
  sku                 = "PerGB2018"
  retention_in_days   = var.log_retention_days
  tags                = local.tags
}

# --- Network --------------------------------------------------------------------------------

resource "azurerm_virtual_network" "this" {
  name                = "${var.name}-vnet"
  location            = azurerm_resource_group.this.location
  resource_group_name = azurerm_resource_group.this.name
  address_space       = [var.address_space]
  tags                = local.tags
}

resource "azurerm_subnet" "apps" {
  name                 = "container-apps"
  resource_group_name  = azurerm_resource_group.this.name
  virtual_network_name = azurerm_virtual_network.this.name
  address_prefixes     = [local.apps_subnet]

  delegation {
    name = "container-apps"
    service_delegation {
      name    = "Microsoft.App/environments"
      actions = ["Microsoft.Network/virtualNetworks/subnets/join/action"]
    }
  }
}

resource "azurerm_subnet" "database" {
  name                 = "postgres"
  resource_group_name  = azurerm_resource_group.this.name
  virtual_network_name = azurerm_virtual_network.this.name
  address_prefixes     = [local.db_subnet]

  delegation {
    name = "postgres"
    service_delegation {
      name    = "Microsoft.DBforPostgreSQL/flexibleServers"
      actions = ["Microsoft.Network/virtualNetworks/subnets/join/action"]
    }
  }
}

resource "azurerm_subnet" "storage" {
  name                 = "minio"
  resource_group_name  = azurerm_resource_group.this.name
  virtual_network_name = azurerm_virtual_network.this.name
  address_prefixes     = [local.storage_subnet]
}

# --- Identities -----------------------------------------------------------------------------

# The Container Apps read their secrets from Key Vault with this identity.
resource "azurerm_user_assigned_identity" "apps" {
  name                = "${var.name}-apps"
  location            = azurerm_resource_group.this.location
  resource_group_name = azurerm_resource_group.this.name
  tags                = local.tags
}

# The MinIO VM reads its root credentials and the webhook token from Key Vault at boot, so
# no secret is written into its custom data.
resource "azurerm_user_assigned_identity" "minio" {
  name                = "${var.name}-minio"
  location            = azurerm_resource_group.this.location
  resource_group_name = azurerm_resource_group.this.name
  tags                = local.tags
}

# --- Generated secrets (kept in the terraform state: use an encrypted backend) --------------

resource "random_password" "webhook_token" {
  length  = 48
  special = false
}

resource "random_password" "minio_root" {
  length  = 40
  special = false
}

resource "random_password" "pipeline_s3" {
  length  = 40
  special = false
}

resource "random_password" "database" {
  count = local.self_hosted ? 1 : 0

  length  = 40
  special = false
}
