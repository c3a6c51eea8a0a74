# Container Apps: the relay (public HTTPS, open only to the MinIO VM), the Prefect server
# (self-hosted only), the workers, and the setup job that applies prefect.yaml.

resource "azurerm_container_app_environment" "this" {
  name                       = "${var.name}-apps"
  location                   = azurerm_resource_group.this.location
  resource_group_name        = azurerm_resource_group.this.name
  infrastructure_subnet_id   = azurerm_subnet.apps.id
  logs_destination           = "log-analytics"
  log_analytics_workspace_id = azurerm_log_analytics_workspace.this.id
  tags                       = local.tags

  workload_profile {
    name                  = "Consumption"
    workload_profile_type = "Consumption"
  }
}

locals {
  prefect_app_name  = "${var.name}-prefect"
  prefect_api_url   = local.self_hosted ? "http://${local.prefect_app_name}/api" : var.prefect_api_url
  prefect_ui_public = local.self_hosted && length(var.prefect_ui_allowed_cidrs) > 0
  # https://api.prefect.cloud/api/accounts/A/workspaces/W -> https://app.prefect.cloud/account/A/workspace/W
  prefect_cloud_ids = local.self_hosted ? [] : regex("/accounts/([^/]+)/workspaces/([^/]+)$", var.prefect_api_url)

  common_environment = merge(
    {
      # The apps reach MinIO on the VM's private address.
      IVI_S3_HOST                = local.minio_ip
      IVI_S3_PORT                = "9000"
      IVI_S3_SECURE              = "false"
      IVI_S3_REGION              = "us-east-1"
      IVI_RAW_BUCKET             = var.buckets.raw
      IVI_PROCESSED_BUCKET       = var.buckets.processed
      IVI_QUARANTINE_BUCKET      = var.buckets.quarantine
      IVI_LAKE_BUCKET            = var.buckets.lake
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
    # Inside the environment an app is reached by its name on port 80 (HTTP).
    local.self_hosted ? {
      IVI_PREFECT_HOST = local.prefect_app_name
      IVI_PREFECT_PORT = "80"
    } : { IVI_PREFECT_REMOTE_API_URL = var.prefect_api_url },
    { for contract, id in var.powerbi_dataset_ids : "IVI_POWERBI_${upper(contract)}_DATASET_ID" => id },
    var.extra_environment,
  )

  relay_environment = merge(local.common_environment, { IVI_RELAY_HOST = "0.0.0.0", IVI_RELAY_PORT = tostring(local.relay_port) })
  worker_environment = merge(local.common_environment, {
    PREFECT_WORKER_QUERY_SECONDS  = tostring(var.worker_query_seconds)
    PREFECT_WORKER_WEBSERVER_PORT = "8080"
    # Per replica: each replica's runs go to its own engine.
    IVI_PREWARMED_ENGINE_SOCKET = "/tmp/ivi-engine/engine.sock"
  })
  setup_environment = merge(local.common_environment, { IVI_S3_ACCESS_KEY = local.pipeline_access_key })
  prefect_server_environment = {
    PREFECT_SERVER_API_HOST                                  = "0.0.0.0"
    PREFECT_SERVER_API_PORT                                  = tostring(local.prefect_port)
    PREFECT_SERVER_DATABASE_DRIVER                           = "postgresql+asyncpg"
    PREFECT_SERVER_DATABASE_HOST                             = local.self_hosted ? azurerm_postgresql_flexible_server.prefect[0].fqdn : ""
    PREFECT_SERVER_DATABASE_PORT                             = "5432"
    PREFECT_SERVER_DATABASE_USER                             = "prefect"
    PREFECT_SERVER_DATABASE_NAME                             = "prefect"
    PREFECT_SERVER_ANALYTICS_ENABLED                         = "false"
    PREFECT_SERVER_SERVICES_EVENT_PERSISTER_FLUSH_INTERVAL   = "0.5"
    PREFECT_SERVER_SERVICES_EVENT_PERSISTER_BATCH_SIZE       = "500"
    PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_BATCH_SIZE     = "100"
    PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_FLUSH_INTERVAL = "1"
  }

  # Environment variable => Key Vault secret name, per app: each app gets only what it uses
  # (the workers none of the store's keys: the flows load them from the block setup saves).
  cloud_secret_env  = local.self_hosted ? {} : { PREFECT_API_KEY = "prefect-api-key", IVI_PREFECT_API_KEY = "prefect-api-key" }
  relay_secret_env  = merge({ IVI_WEBHOOK_TOKEN = "webhook-token" }, local.cloud_secret_env)
  worker_secret_env = local.cloud_secret_env
  setup_secret_env = merge(
    { IVI_S3_SECRET_KEY = "s3-secret-key" },
    nonsensitive(var.powerbi_client_secret == "") ? {} : { IVI_POWERBI_CLIENT_SECRET = "powerbi-client-secret" },
    { for contract in nonsensitive(keys(var.powerbi_push_urls)) : "IVI_POWERBI_${upper(contract)}_PUSH_URL" => "powerbi-${replace(contract, "_", "-")}-push-url" },
    local.cloud_secret_env,
  )
  prefect_server_secret_env = { PREFECT_SERVER_DATABASE_PASSWORD = "database-password" }
}

# --- Relay ------------------------------------------------------------------------------------

resource "azurerm_container_app" "relay" {
  name                         = "${var.name}-relay"
  container_app_environment_id = azurerm_container_app_environment.this.id
  resource_group_name          = azurerm_resource_group.this.name
  revision_mode                = "Single"
  tags                         = local.tags

  identity {
    type         = "UserAssigned"
    identity_ids = [azurerm_user_assigned_identity.apps.id]
  }

  dynamic "registry" {
    for_each = var.registry_server == "" ? [] : [var.registry_server]
    content {
      server   = registry.value
      identity = azurerm_user_assigned_identity.apps.id
    }
  }

  dynamic "secret" {
    for_each = toset(values(local.relay_secret_env))
    content {
      name                = secret.value
      key_vault_secret_id = azurerm_key_vault_secret.this[secret.value].versionless_id
      identity            = azurerm_user_assigned_identity.apps.id
    }
  }

  # MinIO posts to the public HTTPS name (a valid certificate); only its address may.
  ingress {
    external_enabled = true
    target_port      = local.relay_port
    transport        = "http"

    ip_security_restriction {
      name             = "minio-vm"
      action           = "Allow"
      ip_address_range = "${azurerm_public_ip.minio.ip_address}/32"
    }

    traffic_weight {
      latest_revision = true
      percentage      = 100
    }
  }

  template {
    min_replicas = var.relay_min_replicas
    max_replicas = max(var.relay_min_replicas, 3)

    container {
      name    = "relay"
      image   = var.image
      cpu     = var.container_sizes.relay.cpu
      memory  = var.container_sizes.relay.memory
      command = ["python", "-m", "uvicorn", "relay.app:app", "--host", "0.0.0.0", "--port", tostring(local.relay_port), "--log-level", "info"]

      dynamic "env" {
        for_each = local.relay_environment
        content {
          name  = env.key
          value = env.value
        }
      }

      dynamic "env" {
        for_each = local.relay_secret_env
        content {
          name        = env.key
          secret_name = env.value
        }
      }

      liveness_probe {
        transport = "HTTP"
        port      = local.relay_port
        path      = "/healthz"
      }

      readiness_probe {
        transport = "HTTP"
        port      = local.relay_port
        path      = "/healthz"
      }
    }

    http_scale_rule {
      name                = "webhooks"
      concurrent_requests = "50"
    }
  }

  depends_on = [azurerm_key_vault_access_policy.readers]
}

# --- Prefect server -----------------------------------------------------------------------------

resource "azurerm_container_app" "prefect_server" {
  count = local.self_hosted ? 1 : 0

  name                         = local.prefect_app_name
  container_app_environment_id = azurerm_container_app_environment.this.id
  resource_group_name          = azurerm_resource_group.this.name
  revision_mode                = "Single"
  tags                         = local.tags

  identity {
    type         = "UserAssigned"
    identity_ids = [azurerm_user_assigned_identity.apps.id]
  }

  dynamic "registry" {
    for_each = var.registry_server == "" ? [] : [var.registry_server]
    content {
      server   = registry.value
      identity = azurerm_user_assigned_identity.apps.id
    }
  }

  dynamic "secret" {
    for_each = toset(values(local.prefect_server_secret_env))
    content {
      name                = secret.value
      key_vault_secret_id = azurerm_key_vault_secret.this[secret.value].versionless_id
      identity            = azurerm_user_assigned_identity.apps.id
    }
  }

  # The relay, the workers and the setup job call http://<name>/api inside the environment
  # (the relay builds plain-HTTP URLs), hence insecure connections allowed; from outside only
  # prefect_ui_allowed_cidrs reach it, over HTTPS.
  ingress {
    external_enabled           = local.prefect_ui_public
    allow_insecure_connections = true
    target_port                = local.prefect_port
    transport                  = "http"

    dynamic "ip_security_restriction" {
      for_each = local.prefect_ui_public ? concat([local.apps_subnet], var.prefect_ui_allowed_cidrs) : []
      content {
        name             = "allow-${replace(replace(ip_security_restriction.value, ".", "-"), "/", "-")}"
        action           = "Allow"
        ip_address_range = ip_security_restriction.value
      }
    }

    traffic_weight {
      latest_revision = true
      percentage      = 100
    }
  }

  template {
    # One server: several need Redis for Prefect's event bus.
    min_replicas = 1
    max_replicas = 1

    container {
      name    = "prefect-server"
      image   = var.image
      cpu     = var.container_sizes.prefect_server.cpu
      memory  = var.container_sizes.prefect_server.memory
      command = ["prefect", "server", "start", "--host", "0.0.0.0", "--port", tostring(local.prefect_port)]

      dynamic "env" {
        for_each = merge(local.prefect_server_environment, {
          # Where the browser finds the API.
          PREFECT_UI_API_URL = local.prefect_ui_public ? "https://${local.prefect_app_name}.${azurerm_container_app_environment.this.default_domain}/api" : local.prefect_api_url
        })
        content {
          name  = env.key
          value = env.value
        }
      }

      dynamic "env" {
        for_each = local.prefect_server_secret_env
        content {
          name        = env.key
          secret_name = env.value
        }
      }

      startup_probe {
        transport               = "HTTP"
        port                    = local.prefect_port
        path                    = "/api/health"
        interval_seconds        = 10
        failure_count_threshold = 30
      }

      liveness_probe {
        transport = "HTTP"
        port      = local.prefect_port
        path      = "/api/health"
      }
    }
  }

  depends_on = [
    azurerm_key_vault_access_policy.readers,
    azurerm_postgresql_flexible_server_configuration.extensions,
    azurerm_postgresql_flexible_server_database.prefect,
  ]
}

# --- Workers ------------------------------------------------------------------------------------

resource "azurerm_container_app" "worker" {
  name                         = "${var.name}-worker"
  container_app_environment_id = azurerm_container_app_environment.this.id
  resource_group_name          = azurerm_resource_group.this.name
  revision_mode                = "Single"
  tags                         = local.tags

  identity {
    type         = "UserAssigned"
    identity_ids = [azurerm_user_assigned_identity.apps.id]
  }

  dynamic "registry" {
    for_each = var.registry_server == "" ? [] : [var.registry_server]
    content {
      server   = registry.value
      identity = azurerm_user_assigned_identity.apps.id
    }
  }

  dynamic "secret" {
    for_each = toset(values(local.worker_secret_env))
    content {
      name                = secret.value
      key_vault_secret_id = azurerm_key_vault_secret.this[secret.value].versionless_id
      identity            = azurerm_user_assigned_identity.apps.id
    }
  }

  template {
    min_replicas                     = var.worker_count
    max_replicas                     = var.worker_count
    termination_grace_period_seconds = 120

    container {
      name   = "worker"
      image  = var.image
      cpu    = var.container_sizes.worker.cpu
      memory = var.container_sizes.worker.memory
      # As docker-compose.yml's worker: the pre-warmed engine beside the process worker starts
      # each flow run in milliseconds (the pool's job command falls back to
      # `python -m prefect.engine` without it).
      command = [
        "sh", "-c",
        "python -m deployments.prewarmed_engine \"$IVI_PREWARMED_ENGINE_SOCKET\" & exec prefect worker start --pool \"$IVI_WORK_POOL\" --type process --with-healthcheck",
      ]

      dynamic "env" {
        for_each = local.worker_environment
        content {
          name  = env.key
          value = env.value
        }
      }

      dynamic "env" {
        for_each = local.worker_secret_env
        content {
          name        = env.key
          secret_name = env.value
        }
      }

      liveness_probe {
        transport        = "HTTP"
        port             = 8080
        path             = "/health"
        initial_delay    = 30
        interval_seconds = 30
      }
    }
  }

  depends_on = [azurerm_key_vault_access_policy.readers]
}

# --- Setup job ----------------------------------------------------------------------------------
# Started by hand after the first apply and after every image change (output
# setup_start_command): work pool, blocks, rate limits, `prefect deploy --all`.

resource "azurerm_container_app_job" "setup" {
  name                         = "${var.name}-setup"
  location                     = azurerm_resource_group.this.location
  resource_group_name          = azurerm_resource_group.this.name
  container_app_environment_id = azurerm_container_app_environment.this.id
  replica_timeout_in_seconds   = 900
  replica_retry_limit          = 2
  tags                         = local.tags

  manual_trigger_config {
    parallelism              = 1
    replica_completion_count = 1
  }

  identity {
    type         = "UserAssigned"
    identity_ids = [azurerm_user_assigned_identity.apps.id]
  }

  dynamic "registry" {
    for_each = var.registry_server == "" ? [] : [var.registry_server]
    content {
      server   = registry.value
      identity = azurerm_user_assigned_identity.apps.id
    }
  }

  dynamic "secret" {
    for_each = toset(values(local.setup_secret_env))
    content {
      name                = secret.value
      key_vault_secret_id = azurerm_key_vault_secret.this[secret.value].versionless_id
      identity            = azurerm_user_assigned_identity.apps.id
    }
  }

  template {
    container {
      name    = "setup"
      image   = var.image
      cpu     = var.container_sizes.setup.cpu
      memory  = var.container_sizes.setup.memory
      command = ["python", "-m", "deployments.apply"]

      dynamic "env" {
        for_each = local.setup_environment
        content {
          name  = env.key
          value = env.value
        }
      }

      dynamic "env" {
        for_each = local.setup_secret_env
        content {
          name        = env.key
          secret_name = env.value
        }
      }
    }
  }

  depends_on = [azurerm_key_vault_access_policy.readers]
}
