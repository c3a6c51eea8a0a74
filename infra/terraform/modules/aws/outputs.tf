output "relay_url" {
  description = "The relay's public base URL (GET /healthz answers 200 when it runs)."
  value       = "https://${var.relay_domain_name}"
}

output "relay_webhook_endpoint" {
  description = "Where EventBridge posts object-created events."
  value       = aws_cloudwatch_event_api_destination.relay.invocation_endpoint
}

output "load_balancer_dns_name" {
  description = "Point relay_domain_name here (CNAME or alias) when route53_zone_id is empty."
  value       = aws_lb.this.dns_name
}

output "prefect_ui_url" {
  description = "The Prefect UI: the load balancer listener, the in-VPC address when prefect_ui_allowed_cidrs is empty, or the Prefect Cloud workspace."
  value       = local.prefect_ui_url
}

output "prefect_api_url" {
  description = "The Prefect API the workers, the relay and the setup task use (PREFECT_API_URL)."
  value       = local.prefect_api_url
}

output "buckets" {
  description = "Bucket names by role (raw, processed, quarantine, lake)."
  value       = local.buckets
}

output "bucket_arns" {
  description = "Bucket ARNs by role."
  value       = { for role, bucket in aws_s3_bucket.this : role => bucket.arn }
}

output "raw_uploader_policy_arn" {
  description = "IAM policy to attach to whoever uploads CSV files: write to the raw bucket, nothing else."
  value       = aws_iam_policy.uploader.arn
}

output "pipeline_secret_arn" {
  description = "Secrets Manager secret with every secret setting (S3 keys, webhook token, database password, Power BI secrets) as JSON."
  value       = aws_secretsmanager_secret.app.arn
}

output "webhook_token" {
  description = "The relay's bearer token (to call /minio/events by hand, e.g. to replay an event from the dead-letter queue)."
  value       = random_password.webhook_token.result
  sensitive   = true
}

output "event_dead_letter_queue_url" {
  description = "Events EventBridge could not deliver to the relay after every retry."
  value       = aws_sqs_queue.events_dlq.url
}

output "ecs_cluster_name" {
  description = "The ECS cluster of the relay, Prefect server, workers and setup task."
  value       = aws_ecs_cluster.this.name
}

output "setup_run_task_command" {
  description = "Run this after the first apply and after every image change: it applies prefect.yaml (work pool, blocks, deployments, trigger, schedule) and exits."
  value = join(" ", [
    "aws ecs run-task",
    "--region ${local.region}",
    "--cluster ${aws_ecs_cluster.this.name}",
    "--task-definition ${aws_ecs_task_definition.setup.family}",
    "--launch-type FARGATE",
    "--network-configuration 'awsvpcConfiguration={subnets=[${join(",", var.private_subnet_ids)}],securityGroups=[${aws_security_group.tasks.id}],assignPublicIp=DISABLED}'",
  ])
}

output "log_groups" {
  description = "CloudWatch log group of each service."
  value       = { for service, group in aws_cloudwatch_log_group.service : service => group.name }
}

output "database_endpoint" {
  description = "The Prefect database (null with Prefect Cloud)."
  value       = local.self_hosted ? aws_db_instance.prefect[0].endpoint : null
}
