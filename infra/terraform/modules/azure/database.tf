# Azure Database for PostgreSQL flexible server for the self-hosted Prefect server, reachable
# only inside the virtual network (delegated subnet + private DNS zone).

resource "azurerm_private_dns_zone" "postgres" {
  count = local.self_hosted ? 1 : 0

  name                = "${var.name}-${local.suffix}.private.postgres.database.azure.com"
  resource_group_name = azurerm_resource_group.this.name
  tags                = local.tags
}

resource "azurerm_private_dns_zone_virtual_network_link" "postgres" {
  count = local.self_hosted ? 1 : 0

  name                  = "${var.name}-postgres"
  private_dns_zone_name = azurerm_private_dns_zone.postgres[0].name
  resource_group_name   = azurerm_resource_group.this.name
  virtual_network_id    = azurerm_virtual_network.this.id
  tags                  = local.tags
}

resource "azurerm_postgresql_flexible_server" "prefect" {
  count = local.self_hosted ? 1 : 0

  name                          = "${var.name}-pg-${local.suffix}"
  resource_group_name           = azurerm_resource_group.this.name
  location                      = azurerm_resource_group.this.location
  version                       = var.database.version
  sku_name                      = var.database.sku_name
  storage_mb                    = var.database.storage_mb
  auto_grow_enabled             = true
  backup_retention_days         = var.database.backup_retention_days
  delegated_subnet_id           = azurerm_subnet.database.id
  private_dns_zone_id           = azurerm_private_dns_zone.postgres[0].id
  public_network_access_enabled = false
  administrator_login           = "prefect"
  administrator_password        = random_password.database[0].result
  tags                          = local.tags

  lifecycle {
    # Azure picks an availability zone when none is given; do not fight it on later plans.
    ignore_changes = [zone]
  }

  depends_on = [azurerm_private_dns_zone_virtual_network_link.postgres]
}

# Prefect's migrations create the pg_trgm extension; the flexible server only allows
# extensions listed here.
resource "azurerm_postgresql_flexible_server_configuration" "extensions" {
  count = local.self_hosted ? 1 : 0

  name      = "azure.extensions"
  server_id = azurerm_postgresql_flexible_server.prefect[0].id
  value     = "PG_TRGM"
}

resource "azurerm_postgresql_flexible_server_database" "prefect" {
  count = local.self_hosted ? 1 : 0

  name      = "prefect"
  server_id = azurerm_postgresql_flexible_server.prefect[0].id
  charset   = "UTF8"
  collation = "en_US.utf8"
}
