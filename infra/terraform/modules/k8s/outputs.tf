output "namespace" {
  description = "Namespace of the pipeline."
  value       = var.namespace
}

output "relay_url" {
  description = "The relay inside the cluster (MinIO's webhook target; not exposed outside the cluster)."
  value       = "http://ivi-relay.${var.namespace}.svc:8000"
}

output "s3_endpoint" {
  description = "MinIO's S3 API inside the cluster; from a workstation: kubectl -n <namespace> port-forward svc/minio 9000."
  value       = "http://minio.${var.namespace}.svc:9000"
}

output "prefect_api_url" {
  description = "The Prefect API the pods use (PREFECT_API_URL)."
  value       = local.self_hosted ? "http://prefect-server.${var.namespace}.svc:4200/api" : var.prefect_api_url
}

output "prefect_ui_url" {
  description = "The Prefect UI: after `kubectl -n <namespace> port-forward svc/prefect-server 4200` (or your ingress), or the Prefect Cloud workspace."
  value       = local.self_hosted ? trimsuffix(var.prefect_ui_api_url, "/api") : replace(replace(replace(var.prefect_api_url, "https://api.", "https://app."), "/api/accounts/", "/account/"), "/workspaces/", "/workspace/")
}

output "buckets" {
  description = "Bucket names (fixed by infra/k8s/helm/minio-values.yaml and base/config.env)."
  value       = { raw = "raw", processed = "processed", quarantine = "quarantine", lake = "lake" }
}

output "s3_access_key" {
  description = "The pipeline's MinIO user (IVI_S3_ACCESS_KEY); its password is IVI_S3_SECRET_KEY of Secret ivi-secrets."
  value       = local.pipeline_access_key
}

output "webhook_token" {
  description = "The relay's bearer token (IVI_WEBHOOK_TOKEN of Secret ivi-secrets)."
  value       = random_password.webhook_token.result
  sensitive   = true
}

output "setup_rerun_command" {
  description = "Run the setup Job again (work pool, blocks, deployments) without an image change."
  value       = "kubectl -n ${var.namespace} delete job ivi-setup && terraform apply"
}
