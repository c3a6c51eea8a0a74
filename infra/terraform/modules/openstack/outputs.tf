output "public_ip" {
  description = "Floating IP of the pipeline's instance."
  value       = openstack_networking_floatingip_v2.this.address
}

output "s3_endpoint" {
  description = "MinIO's S3 API for uploads (plain HTTP, open to s3_allowed_cidrs)."
  value       = "http://${openstack_networking_floatingip_v2.this.address}:9000"
}

output "minio_console_url" {
  description = "MinIO's console (open to s3_allowed_cidrs); log in with the S3 keys (outputs s3_access_key and s3_secret_key)."
  value       = "http://${openstack_networking_floatingip_v2.this.address}:9001"
}

output "prefect_ui_url" {
  description = "The Prefect UI (open to prefect_ui_allowed_cidrs)."
  value       = "http://${openstack_networking_floatingip_v2.this.address}:4200"
}

output "relay_url" {
  description = "The relay, inside the compose network only (MinIO calls it there; it is not published outside the instance)."
  value       = "http://relay:8000"
}

output "buckets" {
  description = "Bucket names by role."
  value       = var.buckets
}

output "s3_access_key" {
  description = "S3 access key (MinIO's root user and the pipeline's key, as docker-compose.yml sets it up)."
  value       = local.env_settings["IVI_S3_ACCESS_KEY"]
}

output "s3_secret_key" {
  description = "S3 secret key matching s3_access_key."
  value       = random_password.s3_secret_key.result
  sensitive   = true
}

output "webhook_token" {
  description = "The relay's bearer token."
  value       = random_password.webhook_token.result
  sensitive   = true
}

output "ssh_command" {
  description = "SSH into the instance (from ssh_allowed_cidrs); `sudo journalctl -u ivi-pipeline` and /var/log/cloud-init-output.log show the deployment."
  value       = "ssh ubuntu@${openstack_networking_floatingip_v2.this.address}"
}

output "data_volume_id" {
  description = "The Cinder volume with Docker's data (snapshot it for backups)."
  value       = openstack_blockstorage_volume_v3.data.id
}
