# Generated secrets (kept in the terraform state: use an encrypted backend) and one Secrets
# Manager secret holding every secret setting as JSON, keyed by the environment variable each
# container receives it as. ECS injects single keys (`<arn>:<KEY>::`), so a container only
# ever sees the keys listed for it in locals.tf.

resource "random_password" "webhook_token" {
  length  = 48
  special = false
}

resource "random_password" "database" {
  count = local.self_hosted ? 1 : 0

  length  = 40
  special = false
}

resource "aws_secretsmanager_secret" "app" {
  name_prefix             = "${var.name}/pipeline-"
  description             = "Secret settings of the ${var.name} pipeline (IVI_* and PREFECT_* variables)."
  recovery_window_in_days = 7
  tags                    = local.tags
}

resource "aws_secretsmanager_secret_version" "app" {
  secret_id = aws_secretsmanager_secret.app.id
  secret_string = jsonencode(merge(
    {
      IVI_S3_ACCESS_KEY = aws_iam_access_key.pipeline.id
      IVI_S3_SECRET_KEY = aws_iam_access_key.pipeline.secret
      IVI_WEBHOOK_TOKEN = random_password.webhook_token.result
    },
    local.self_hosted ? { PREFECT_SERVER_DATABASE_PASSWORD = random_password.database[0].result } : {},
    local.self_hosted ? {} : { PREFECT_API_KEY = var.prefect_api_key, IVI_PREFECT_API_KEY = var.prefect_api_key },
    var.powerbi_client_secret == "" ? {} : { IVI_POWERBI_CLIENT_SECRET = var.powerbi_client_secret },
    { for contract, url in var.powerbi_push_urls : "IVI_POWERBI_${upper(contract)}_PUSH_URL" => url },
  ))
}

locals {
  secret_ref = { for key in distinct(concat(
    local.relay_secrets, local.worker_secrets, local.setup_secrets, local.prefect_server_secrets,
  )) : key => "${aws_secretsmanager_secret.app.arn}:${key}::" }
}
