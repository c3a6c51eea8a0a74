# One instance running the project's docker-compose.yml (MinIO, PostgreSQL, the Prefect
# server, the setup step, the relay, the workers), its Docker data on a Cinder volume,
# reached through a floating IP.
#
# The object store is MinIO on the instance, not Swift: Swift's S3 layer (s3api) has no
# bucket notifications, so nothing would tell the relay that a file arrived. MinIO's webhook,
# with its on-disk queue, is the event path everywhere else, and stays so here.

data "openstack_networking_network_v2" "external" {
  name     = var.external_network_name
  external = true
}

data "openstack_images_image_v2" "this" {
  name        = var.image_name
  most_recent = true
}

# --- Network --------------------------------------------------------------------------------

resource "openstack_networking_network_v2" "this" {
  name           = "${var.name}-net"
  admin_state_up = true
  tags           = var.tags
}

resource "openstack_networking_subnet_v2" "this" {
  name            = "${var.name}-subnet"
  network_id      = openstack_networking_network_v2.this.id
  cidr            = var.network_cidr
  ip_version      = 4
  dns_nameservers = var.dns_nameservers
  tags            = var.tags
}

resource "openstack_networking_router_v2" "this" {
  name                = "${var.name}-router"
  admin_state_up      = true
  external_network_id = data.openstack_networking_network_v2.external.id
  tags                = var.tags
}

resource "openstack_networking_router_interface_v2" "this" {
  router_id = openstack_networking_router_v2.this.id
  subnet_id = openstack_networking_subnet_v2.this.id
}

# --- Security groups --------------------------------------------------------------------------
# Only what someone outside needs: SSH, MinIO's S3 API and console for uploaders, the Prefect
# UI. The relay (8000) and PostgreSQL are reached inside the compose network only.

resource "openstack_networking_secgroup_v2" "this" {
  name        = "${var.name}-pipeline"
  description = "Mini Pipeline IVI: SSH, S3 API and console, Prefect UI from allowed networks."
  tags        = var.tags
}

locals {
  ingress_rules = merge(
    { for cidr in var.ssh_allowed_cidrs : "ssh ${cidr}" => { port = 22, cidr = cidr } },
    { for cidr in var.s3_allowed_cidrs : "s3 ${cidr}" => { port = 9000, cidr = cidr } },
    { for cidr in var.s3_allowed_cidrs : "console ${cidr}" => { port = 9001, cidr = cidr } },
    { for cidr in var.prefect_ui_allowed_cidrs : "prefect ${cidr}" => { port = 4200, cidr = cidr } },
  )
}

resource "openstack_networking_secgroup_rule_v2" "ingress" {
  for_each = local.ingress_rules

  security_group_id = openstack_networking_secgroup_v2.this.id
  description       = each.key
  direction         = "ingress"
  ethertype         = "IPv4"
  protocol          = "tcp"
  port_range_min    = each.value.port
  port_range_max    = each.value.port
  remote_ip_prefix  = each.value.cidr
}

resource "openstack_networking_port_v2" "this" {
  name               = "${var.name}-pipeline"
  network_id         = openstack_networking_network_v2.this.id
  security_group_ids = [openstack_networking_secgroup_v2.this.id]
  admin_state_up     = true
  tags               = var.tags

  fixed_ip {
    subnet_id = openstack_networking_subnet_v2.this.id
  }
}

resource "openstack_networking_floatingip_v2" "this" {
  pool        = var.external_network_name
  description = "${var.name} pipeline"
  tags        = var.tags
}

resource "openstack_networking_floatingip_associate_v2" "this" {
  floating_ip = openstack_networking_floatingip_v2.this.address
  port_id     = openstack_networking_port_v2.this.id

  depends_on = [openstack_networking_router_interface_v2.this]
}

# --- Volume and instance -------------------------------------------------------------------------

resource "openstack_blockstorage_volume_v3" "data" {
  name              = "${var.name}-data"
  description       = "Docker data of the ${var.name} pipeline: buckets, event queue, PostgreSQL, locks."
  size              = var.volume_size_gb
  volume_type       = var.volume_type == "" ? null : var.volume_type
  availability_zone = var.availability_zone == "" ? null : var.availability_zone
  metadata          = { pipeline = var.name }
}

resource "openstack_compute_keypair_v2" "this" {
  name       = "${var.name}-admin"
  public_key = var.ssh_public_key
}

# Generated secrets. They travel in the instance's user data (readable by whoever can read
# this project's instances in Nova, and from the instance's metadata service) and sit in the
# terraform state: keep both in trusted hands, and the state in an encrypted backend.
resource "random_password" "s3_secret_key" {
  length  = 40
  special = false
}

resource "random_password" "webhook_token" {
  length  = 48
  special = false
}

resource "random_password" "standin_admin_token" {
  length  = 48
  special = false
}

resource "random_password" "postgres" {
  length  = 40
  special = false
}

locals {
  volume_device = var.volume_device != "" ? var.volume_device : "/dev/disk/by-id/virtio-${substr(openstack_blockstorage_volume_v3.data.id, 0, 20)}"
  public_ip     = openstack_networking_floatingip_v2.this.address

  # Written over the matching lines of the clone's .env (a copy of .env.example): the
  # settings of docker-compose.yml for this machine.
  env_settings = merge(
    {
      BIND_ADDRESS          = "0.0.0.0"
      COMPOSE_PROFILES      = var.powerbi_standin ? "standin" : ""
      IVI_S3_ACCESS_KEY     = "ivi-pipeline"
      IVI_RAW_BUCKET        = var.buckets.raw
      IVI_PROCESSED_BUCKET  = var.buckets.processed
      IVI_QUARANTINE_BUCKET = var.buckets.quarantine
      IVI_LAKE_BUCKET       = var.buckets.lake
      IVI_WORK_POOL         = var.work_pool
      # The Prefect UI in a browser calls the API at the floating IP.
      IVI_PREFECT_HOST           = local.public_ip
      IVI_POWERBI_API_URL        = var.powerbi_standin ? "" : var.powerbi.api_url
      IVI_POWERBI_AUTHORITY_HOST = var.powerbi_standin ? "" : var.powerbi.authority_host
      IVI_POWERBI_TENANT_ID      = var.powerbi.tenant_id
      IVI_POWERBI_CLIENT_ID      = var.powerbi.client_id
      IVI_POWERBI_WORKSPACE_ID   = var.powerbi.workspace_id
    },
    var.image == "" ? {} : { APP_IMAGE = var.image },
    { for contract, id in var.powerbi_dataset_ids : "IVI_POWERBI_${upper(contract)}_DATASET_ID" => id },
    var.extra_environment,
  )
  env_secrets = merge(
    {
      IVI_S3_SECRET_KEY = random_password.s3_secret_key.result
      IVI_WEBHOOK_TOKEN = random_password.webhook_token.result
      POSTGRES_PASSWORD = random_password.postgres.result
      # the stand-in (profile `standin`) listens on 0.0.0.0: its admin API needs a token
      IVI_POWERBI_STANDIN_ADMIN_TOKEN = random_password.standin_admin_token.result
    },
    var.powerbi_client_secret == "" ? {} : { IVI_POWERBI_CLIENT_SECRET = var.powerbi_client_secret },
    { for contract, url in var.powerbi_push_urls : "IVI_POWERBI_${upper(contract)}_PUSH_URL" => url },
  )
  env_file = join("\n", [for key, value in merge(local.env_settings, local.env_secrets) : "${key}='${value}'"])
}

resource "openstack_compute_instance_v2" "this" {
  name              = "${var.name}-pipeline"
  flavor_name       = var.flavor_name
  key_pair          = openstack_compute_keypair_v2.this.name
  availability_zone = var.availability_zone == "" ? null : var.availability_zone
  tags              = var.tags

  # Boot disk from the image; the data volume attached from the first boot, so that the
  # bootstrap finds it before Docker starts.
  block_device {
    uuid                  = data.openstack_images_image_v2.this.id
    source_type           = "image"
    destination_type      = "local"
    boot_index            = 0
    delete_on_termination = true
  }

  block_device {
    uuid                  = openstack_blockstorage_volume_v3.data.id
    source_type           = "volume"
    destination_type      = "volume"
    boot_index            = -1
    delete_on_termination = false
  }

  network {
    port = openstack_networking_port_v2.this.id
  }

  user_data = templatefile("${path.module}/templates/cloud-init.yaml.tftpl", {
    volume_device = local.volume_device
    repo_url      = var.repo_url
    repo_ref      = var.repo_ref
    image         = var.image
    worker_count  = var.worker_count
    env_file      = local.env_file
  })

  # A change of repo_ref, image or any setting replaces the instance: the new one mounts the
  # same volume (Docker's data: buckets, database, queue) and starts the new version on it.
}
