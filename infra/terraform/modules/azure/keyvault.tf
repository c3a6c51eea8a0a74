# Every secret setting lives in Key Vault. The Container Apps reference the secrets (their
# values are not copied into the app definitions), the MinIO VM reads its own at boot.
# Access policies rather than RBAC: they take effect at once, so a first apply does not race
# a role assignment's propagation.

resource "azurerm_key_vault" "this" {
  name                       = "${var.name}-kv-${local.suffix}"
  location                   = azurerm_resource_group.this.location
  resource_group_name        = azurerm_resource_group.this.name
  tenant_id                  = data.azurerm_client_config.current.tenant_id
  sku_name                   = "standard"
  rbac_authorization_enabled = false
  purge_protection_enabled   = var.key_vault_purge_protection
  soft_delete_retention_days = 7
  tags                       = local.tags
}

resource "azurerm_key_vault_access_policy" "deployer" {
  key_vault_id       = azurerm_key_vault.this.id
  tenant_id          = data.azurerm_client_config.current.tenant_id
  object_id          = data.azurerm_client_config.current.object_id
  secret_permissions = ["Get", "List", "Set", "Delete", "Purge", "Recover"]
}

resource "azurerm_key_vault_access_policy" "readers" {
  for_each = {
    apps  = azurerm_user_assigned_identity.apps.principal_id
    minio = azurerm_user_assigned_identity.minio.principal_id
  }

  key_vault_id       = azurerm_key_vault.this.id
  tenant_id          = data.azurerm_client_config.current.tenant_id
  object_id          = each.value
  secret_permissions = ["Get"]
}

locals {
  # Key Vault secret name => value. Names: letters, digits and '-'.
  vault_secrets = merge(
    {
      "webhook-token"       = random_password.webhook_token.result
      "minio-root-password" = random_password.minio_root.result
      "s3-secret-key"       = random_password.pipeline_s3.result
    },
    local.self_hosted ? { "database-password" = random_password.database[0].result } : {},
    local.self_hosted ? {} : { "prefect-api-key" = var.prefect_api_key },
    var.powerbi_client_secret == "" ? {} : { "powerbi-client-secret" = var.powerbi_client_secret },
    { for contract, url in var.powerbi_push_urls : "powerbi-${replace(contract, "_", "-")}-push-url" => url },
  )
  # Which names exist is not secret (only the values are), so they can drive for_each.
  vault_secret_names = toset(concat(
    ["webhook-token", "minio-root-password", "s3-secret-key"],
    local.self_hosted ? ["database-password"] : ["prefect-api-key"],
    nonsensitive(var.powerbi_client_secret == "") ? [] : ["powerbi-client-secret"],
    [for contract in nonsensitive(keys(var.powerbi_push_urls)) : "powerbi-${replace(contract, "_", "-")}-push-url"],
  ))
}

resource "azurerm_key_vault_secret" "this" {
  for_each = local.vault_secret_names

  name         = each.key
  value        = local.vault_secrets[each.key]
  key_vault_id = azurerm_key_vault.this.id
  content_type = "text/plain"
  tags         = local.tags

  depends_on = [azurerm_key_vault_access_policy.deployer]
}
