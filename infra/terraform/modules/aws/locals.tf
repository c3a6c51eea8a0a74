data "aws_region" "current" {}

data "aws_caller_identity" "current" {}

data "aws_partition" "current" {}

locals {
  region       = data.aws_region.current.name
  self_hosted  = var.prefect_api_url == ""
  relay_port   = 8000
  prefect_port = 4200
  # Per task, on the container's own disk: the flows keep nothing there (no shared volume).
  data_dir = "/tmp/ivi-data"
  # The directory the flows run from: prefect.yaml has no `pull:` step, so the deployments
  # record the directory `python -m deployments.apply` ran in, and the worker must match it.
  app_dir = "/app"

  buckets = {
    raw        = "${var.bucket_prefix}-raw"
    processed  = "${var.bucket_prefix}-processed"
    quarantine = "${var.bucket_prefix}-quarantine"
    lake       = "${var.bucket_prefix}-lake"
  }

  prefect_internal_host = "prefect-server.${var.name}.internal"
  prefect_api_url       = local.self_hosted ? "http://${local.prefect_internal_host}:${local.prefect_port}/api" : var.prefect_api_url
  prefect_ui_public     = local.self_hosted && length(var.prefect_ui_allowed_cidrs) > 0
  prefect_ui_url = (
    !local.self_hosted ? local.prefect_cloud_ui_url :
    local.prefect_ui_public ? "https://${var.relay_domain_name}:${var.prefect_ui_port}" :
    "http://${local.prefect_internal_host}:${local.prefect_port}"
  )
  # https://api.prefect.cloud/api/accounts/A/workspaces/W -> https://app.prefect.cloud/account/A/workspace/W
  prefect_cloud_ids    = local.self_hosted ? [] : regex("/accounts/([^/]+)/workspaces/([^/]+)$", var.prefect_api_url)
  prefect_cloud_ui_url = local.self_hosted ? "" : "https://app.prefect.cloud/account/${local.prefect_cloud_ids[0]}/workspace/${local.prefect_cloud_ids[1]}"

  # Contract names are not secret; the URLs (with their keys) are.
  push_url_contracts = nonsensitive(toset(keys(var.powerbi_push_urls)))

  # Non-secret settings every container gets (ivi/settings.py reads IVI_*; Prefect PREFECT_*).
  common_environment = merge(
    {
      IVI_S3_HOST                = "s3.${local.region}.amazonaws.com"
      IVI_S3_PORT                = "443"
      IVI_S3_SECURE              = "true"
      IVI_S3_REGION              = local.region
      IVI_RAW_BUCKET             = local.buckets.raw
      IVI_PROCESSED_BUCKET       = local.buckets.processed
      IVI_QUARANTINE_BUCKET      = local.buckets.quarantine
      IVI_LAKE_BUCKET            = local.buckets.lake
      IVI_WORK_POOL              = var.work_pool
      IVI_WORK_POOL_TYPE         = "process"
      IVI_DATA_DIR               = local.data_dir
      IVI_POWERBI_API_URL        = var.powerbi.api_url
      IVI_POWERBI_AUTHORITY_HOST = var.powerbi.authority_host
      IVI_POWERBI_TENANT_ID      = var.powerbi.tenant_id
      IVI_POWERBI_CLIENT_ID      = var.powerbi.client_id
      IVI_POWERBI_WORKSPACE_ID   = var.powerbi.workspace_id
      PREFECT_API_URL            = local.prefect_api_url
    },
    local.self_hosted ? {
      IVI_PREFECT_HOST = local.prefect_internal_host
      IVI_PREFECT_PORT = tostring(local.prefect_port)
    } : { IVI_PREFECT_REMOTE_API_URL = var.prefect_api_url },
    { for contract, id in var.powerbi_dataset_ids : "IVI_POWERBI_${upper(contract)}_DATASET_ID" => id },
    var.extra_environment,
  )

  relay_environment = merge(local.common_environment, {
    IVI_RELAY_HOST = "0.0.0.0"
    IVI_RELAY_PORT = tostring(local.relay_port)
  })

  worker_environment = merge(local.common_environment, {
    PREFECT_WORKER_QUERY_SECONDS  = tostring(var.worker_query_seconds)
    PREFECT_WORKER_WEBSERVER_PORT = "8080"
    # Per task: each task's runs go to its own engine.
    IVI_PREWARMED_ENGINE_SOCKET = "/tmp/ivi-engine/engine.sock"
  })

  prefect_server_environment = {
    PREFECT_SERVER_API_HOST                                  = "0.0.0.0"
    PREFECT_SERVER_API_PORT                                  = tostring(local.prefect_port)
    PREFECT_UI_API_URL                                       = "${local.prefect_ui_url}/api"
    PREFECT_SERVER_DATABASE_DRIVER                           = "postgresql+asyncpg"
    PREFECT_SERVER_DATABASE_HOST                             = local.self_hosted ? aws_db_instance.prefect[0].address : ""
    PREFECT_SERVER_DATABASE_PORT                             = local.self_hosted ? tostring(aws_db_instance.prefect[0].port) : ""
    PREFECT_SERVER_DATABASE_USER                             = local.self_hosted ? aws_db_instance.prefect[0].username : ""
    PREFECT_SERVER_DATABASE_NAME                             = local.self_hosted ? aws_db_instance.prefect[0].db_name : ""
    PREFECT_SERVER_ANALYTICS_ENABLED                         = "false"
    PREFECT_SERVER_SERVICES_EVENT_PERSISTER_FLUSH_INTERVAL   = "0.5"
    PREFECT_SERVER_SERVICES_EVENT_PERSISTER_BATCH_SIZE       = "500"
    PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_BATCH_SIZE     = "100"
    PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_FLUSH_INTERVAL = "1"
  }

  # Which secret (a key of the one Secrets Manager JSON secret) each container receives:
  # the relay only the webhook token, the workers none of the store's keys (the flows load
  # them from the block the setup task saves), the setup task what it writes into blocks.
  cloud_secrets  = local.self_hosted ? [] : ["PREFECT_API_KEY", "IVI_PREFECT_API_KEY"]
  relay_secrets  = concat(["IVI_WEBHOOK_TOKEN"], local.cloud_secrets)
  worker_secrets = local.cloud_secrets
  setup_secrets = concat(
    ["IVI_S3_ACCESS_KEY", "IVI_S3_SECRET_KEY"],
    nonsensitive(var.powerbi_client_secret == "") ? [] : ["IVI_POWERBI_CLIENT_SECRET"],
    [for contract in local.push_url_contracts : "IVI_POWERBI_${upper(contract)}_PUSH_URL"],
    local.cloud_secrets,
  )
  prefect_server_secrets = ["PREFECT_SERVER_DATABASE_PASSWORD"]

  tags = merge(var.tags, { "ivi:pipeline" = var.name })
}
