output "relay_url" {
  description = "The relay's HTTPS base URL (open only to the MinIO VM's address)."
  value       = "https://${azurerm_container_app.relay.ingress[0].fqdn}"
}

output "relay_webhook_endpoint" {
  description = "Where MinIO posts object-created events."
  value       = "https://${azurerm_container_app.relay.ingress[0].fqdn}/minio/events"
}

output "prefect_ui_url" {
  description = "The Prefect UI: public HTTPS name when prefect_ui_allowed_cidrs is set, the in-environment address otherwise, or the Prefect Cloud workspace."
  value = (
    !local.self_hosted ? "https://app.prefect.cloud/account/${local.prefect_cloud_ids[0]}/workspace/${local.prefect_cloud_ids[1]}" :
    local.prefect_ui_public ? "https://${azurerm_container_app.prefect_server[0].ingress[0].fqdn}" :
    "http://${local.prefect_app_name}"
  )
}

output "prefect_api_url" {
  description = "The Prefect API the apps use (PREFECT_API_URL)."
  value       = local.prefect_api_url
}

output "s3_endpoint" {
  description = "MinIO's S3 API for uploads (plain HTTP, open to s3_allowed_cidrs)."
  value       = "http://${azurerm_public_ip.minio.ip_address}:9000"
}

output "minio_console_url" {
  description = "MinIO's console (open to s3_allowed_cidrs); log in as ivi-admin with the Key Vault secret minio-root-password."
  value       = "http://${azurerm_public_ip.minio.ip_address}:9001"
}

output "minio_private_ip" {
  description = "MinIO's address inside the virtual network (IVI_S3_HOST of the apps)."
  value       = local.minio_ip
}

output "buckets" {
  description = "Bucket names by role."
  value       = var.buckets
}

output "pipeline_access_key" {
  description = "The pipeline's S3 access key (IVI_S3_ACCESS_KEY); its secret key is the Key Vault secret s3-secret-key."
  value       = local.pipeline_access_key
}

output "key_vault_name" {
  description = "Key Vault holding every secret setting."
  value       = azurerm_key_vault.this.name
}

output "webhook_token" {
  description = "The relay's bearer token (also Key Vault secret webhook-token)."
  value       = random_password.webhook_token.result
  sensitive   = true
}

output "resource_group_name" {
  description = "The pipeline's resource group."
  value       = azurerm_resource_group.this.name
}

output "setup_start_command" {
  description = "Run this after the first apply and after every image change: it applies prefect.yaml (work pool, blocks, deployments, trigger, schedule) and exits."
  value       = "az containerapp job start --name ${azurerm_container_app_job.setup.name} --resource-group ${azurerm_resource_group.this.name}"
}

output "minio_ssh_command" {
  description = "SSH into the MinIO VM (from ssh_allowed_cidrs); /var/log/cloud-init-output.log shows the bootstrap."
  value       = "ssh ${var.admin_username}@${azurerm_public_ip.minio.ip_address}"
}

output "log_analytics_workspace_id" {
  description = "Where every container's output goes (ContainerAppConsoleLogs_CL)."
  value       = azurerm_log_analytics_workspace.this.workspace_id
}
