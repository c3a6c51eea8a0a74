# The pipeline on an existing Kubernetes cluster, from the files of infra/k8s:
#
#   1. the namespace and the three Secrets the charts and the manifests expect (ivi-secrets,
#      ivi-minio-env, prefect-server-db), with generated passwords and tokens;
#   2. the official prefect-server and MinIO charts with infra/k8s/helm/*-values.yaml
#      (MinIO creates the buckets, the pipeline's user and the raw bucket's webhook to the relay);
#   3. the production overlay infra/k8s/overlays/prod (relay + PDB, Kubernetes-pool worker and
#      its RBAC, setup Job, ConfigMap ivi-config), re-targeted at this namespace, image and
#      these settings through a kustomize overlay (kbst/kustomization provider), so that the
#      manifests stay in one place and `kubectl kustomize` and terraform agree.
#
# No volume is shared between pods, so no storage class is needed: the flows' lock
# (`_ivi/locks/`) and Prefect's results with the Power BI batch cache (`_ivi/results/`) live
# in the processed bucket of MinIO, which every flow-run pod reaches.

locals {
  k8s_dir     = "${path.module}/../../../k8s"
  self_hosted = var.prefect_api_url == ""

  # The image name the prod overlay sets (its `images:` entry); this module re-points it.
  # tests/test_terraform.py checks the two stay equal.
  overlay_image_name = "ghcr.io/OWNER/mini-pipeline-ivi"
  image_parts        = regex("^(.+?)(?::([A-Za-z0-9_][A-Za-z0-9_.-]*))?(?:@(sha256:[0-9a-f]{64}))?$", var.image)

  pipeline_access_key = "ivi-pipeline" # users[0].accessKey of helm/minio-values.yaml

  # Settings merged into ConfigMap ivi-config (base/config.env has the rest: service
  # addresses, buckets, ports).
  config = merge(
    {
      IVI_WORK_POOL              = var.work_pool
      IVI_WORK_POOL_TYPE         = "kubernetes"
      IVI_POWERBI_API_URL        = var.powerbi.api_url
      IVI_POWERBI_AUTHORITY_HOST = var.powerbi.authority_host
      IVI_POWERBI_TENANT_ID      = var.powerbi.tenant_id
      IVI_POWERBI_CLIENT_ID      = var.powerbi.client_id
      IVI_POWERBI_WORKSPACE_ID   = var.powerbi.workspace_id
    },
    local.self_hosted ? {} : { PREFECT_API_URL = var.prefect_api_url, IVI_PREFECT_REMOTE_API_URL = var.prefect_api_url },
    { for contract, id in var.powerbi_dataset_ids : "IVI_POWERBI_${upper(contract)}_DATASET_ID" => id },
    var.extra_config,
  )

  secrets = merge(
    {
      IVI_S3_ACCESS_KEY = local.pipeline_access_key
      IVI_S3_SECRET_KEY = random_password.s3_secret_key.result
      IVI_WEBHOOK_TOKEN = random_password.webhook_token.result
    },
    var.powerbi_client_secret == "" ? {} : { IVI_POWERBI_CLIENT_SECRET = var.powerbi_client_secret },
    { for contract, url in var.powerbi_push_urls : "IVI_POWERBI_${upper(contract)}_PUSH_URL" => url },
    local.self_hosted ? {} : { PREFECT_API_KEY = var.prefect_api_key, IVI_PREFECT_API_KEY = var.prefect_api_key },
  )

  # Prefect Cloud: the containers that call the Prefect API and need its key.
  cloud_key_consumers = [
    { api_version = "apps/v1", kind = "Deployment", name = "ivi-worker", list = "containers", container = "worker" },
    { api_version = "apps/v1", kind = "Deployment", name = "ivi-relay", list = "containers", container = "relay" },
    { api_version = "batch/v1", kind = "Job", name = "ivi-setup", list = "containers", container = "apply" },
    { api_version = "batch/v1", kind = "Job", name = "ivi-setup", list = "initContainers", container = "work-pool" },
  ]

  # Every Secret manifest is passed on as sensitive, so plans never print a value.
  is_secret = { for id in keys(data.kustomization_overlay.secrets.manifests) : id => startswith(id, "_/Secret/") }
}

# Generated secrets (kept in the terraform state: use an encrypted backend).
resource "random_password" "s3_secret_key" {
  length  = 40
  special = false
}

resource "random_password" "webhook_token" {
  length  = 48
  special = false
}

resource "random_password" "database" {
  length  = 40
  special = false
}

# --- 1. Namespace and Secrets ----------------------------------------------------------------

data "kustomization_overlay" "secrets" {
  namespace = var.namespace
  resources = ["${local.k8s_dir}/overlays/prod/namespace.yaml"]

  generator_options {
    disable_name_suffix_hash = true
    labels                   = { "app.kubernetes.io/part-of" = "mini-pipeline-ivi" }
  }

  secret_generator {
    name     = "ivi-secrets"
    type     = "Opaque"
    literals = [for key, value in local.secrets : "${key}=${value}"]
  }

  # MinIO reads config.env through the chart's `extraSecret`: its webhook's bearer token.
  secret_generator {
    name     = "ivi-minio-env"
    type     = "Opaque"
    literals = ["config.env=MINIO_NOTIFY_WEBHOOK_AUTH_TOKEN_PRIMARY=${random_password.webhook_token.result}"]
  }

  # The prefect-server chart's PostgreSQL (postgresql.auth.existingSecret) and the server's
  # connection string (Service prefect-server-postgresql of this namespace, database server).
  dynamic "secret_generator" {
    for_each = local.self_hosted ? [1] : []
    content {
      name = "prefect-server-db"
      type = "Opaque"
      literals = [
        "password=${random_password.database.result}",
        "connection-string=postgresql+asyncpg://prefect:${random_password.database.result}@prefect-server-postgresql.${var.namespace}:5432/server",
      ]
    }
  }

  kustomize_options {
    load_restrictor = "none"
  }
}

resource "kustomization_resource" "namespace" {
  for_each = data.kustomization_overlay.secrets.ids_prio[0]

  manifest = data.kustomization_overlay.secrets.manifests[each.value]
}

resource "kustomization_resource" "secrets" {
  for_each = data.kustomization_overlay.secrets.ids_prio[1]

  manifest = local.is_secret[each.value] ? sensitive(data.kustomization_overlay.secrets.manifests[each.value]) : data.kustomization_overlay.secrets.manifests[each.value]

  depends_on = [kustomization_resource.namespace]
}

# --- 2. The charts ----------------------------------------------------------------------------

resource "helm_release" "prefect_server" {
  count = local.self_hosted ? 1 : 0

  name       = "prefect-server"
  namespace  = var.namespace
  repository = "https://prefecthq.github.io/prefect-helm"
  chart      = "prefect-server"
  version    = var.prefect_server_chart_version
  values     = [file("${local.k8s_dir}/helm/prefect-server-values.yaml")]
  set = [
    {
      name  = "server.uiConfig.prefectUiApiUrl"
      value = var.prefect_ui_api_url
    },
  ]
  wait            = true
  timeout         = 900
  atomic          = true
  cleanup_on_fail = true
  max_history     = 10

  depends_on = [kustomization_resource.secrets]
}

resource "helm_release" "minio" {
  name            = "minio"
  namespace       = var.namespace
  repository      = "https://charts.min.io/"
  chart           = "minio"
  version         = var.minio_chart_version
  values          = [file("${local.k8s_dir}/helm/minio-values.yaml")]
  wait            = true
  timeout         = 900
  atomic          = true
  cleanup_on_fail = true
  max_history     = 10

  depends_on = [kustomization_resource.secrets]
}

# --- 3. The pipeline's own manifests ------------------------------------------------------------

data "kustomization_overlay" "pipeline" {
  namespace = var.namespace
  resources = ["${local.k8s_dir}/overlays/prod"]

  images {
    name     = local.overlay_image_name
    new_name = local.image_parts[0]
    new_tag  = local.image_parts[1]
    digest   = local.image_parts[2]
  }

  replicas {
    name  = "ivi-relay"
    count = var.relay_replicas
  }

  replicas {
    name  = "ivi-worker"
    count = var.worker_replicas
  }

  config_map_generator {
    name     = "ivi-config"
    behavior = "merge"
    literals = [for key, value in local.config : "${key}=${value}"]
    options {
      disable_name_suffix_hash = true
    }
  }

  # The flow runs use the same image as the worker (the prod overlay copied its own tag).
  patches {
    patch = yamlencode({
      apiVersion = "batch/v1"
      kind       = "Job"
      metadata   = { name = "ivi-setup" }
      spec = { template = { spec = { initContainers = [{
        name = "work-pool"
        env  = [{ name = "FLOW_RUN_IMAGE", value = var.image }]
      }] } } }
    })
  }

  # Prefect Cloud: the worker, the setup Job and the relay authenticate with the API key of
  # Secret ivi-secrets (the Kubernetes worker hands its API settings on to each flow-run Job).
  dynamic "patches" {
    for_each = local.self_hosted ? [] : local.cloud_key_consumers
    content {
      patch = yamlencode({
        apiVersion = patches.value.api_version
        kind       = patches.value.kind
        metadata   = { name = patches.value.name }
        spec = { template = { spec = { (patches.value.list) = [{
          name = patches.value.container
          env = [{
            name      = "PREFECT_API_KEY"
            valueFrom = { secretKeyRef = { name = "ivi-secrets", key = "PREFECT_API_KEY" } }
          }]
        }] } } }
      })
    }
  }

  kustomize_options {
    load_restrictor = "none"
  }
}

locals {
  # The prod overlay's Namespace is the one created in step 1: not managed twice.
  pipeline_ids = setunion(data.kustomization_overlay.pipeline.ids_prio[1], data.kustomization_overlay.pipeline.ids_prio[2])
}

resource "kustomization_resource" "pipeline" {
  for_each = local.pipeline_ids

  manifest = data.kustomization_overlay.pipeline.manifests[each.value]
  # Deployments only count as created once their pods are ready.
  wait = true
  timeouts {
    create = "10m"
    update = "10m"
  }

  depends_on = [
    kustomization_resource.secrets,
    helm_release.prefect_server,
    helm_release.minio,
  ]
}
