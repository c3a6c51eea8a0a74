# The object store: MinIO on a VM with a managed data disk.
#
# Why not Blob Storage: the flows speak S3 (the `minio` client and the `minio-credentials`
# block) and Blob Storage has no S3 API, so a native store would mean a second storage
# backend in the flows, and Event Grid's webhook (a JSON array per request and a validation
# handshake) would need another relay route. MinIO keeps the pipeline as it runs everywhere
# else, including MinIO's webhook with its on-disk retry queue.

locals {
  minio_root_user     = "ivi-admin"
  pipeline_access_key = "ivi-pipeline"
  minio_data_disk_lun = 0
}

resource "azurerm_public_ip" "minio" {
  name                = "${var.name}-minio"
  location            = azurerm_resource_group.this.location
  resource_group_name = azurerm_resource_group.this.name
  allocation_method   = "Static"
  sku                 = "Standard"
  tags                = local.tags
}

resource "azurerm_network_security_group" "minio" {
  name                = "${var.name}-minio"
  location            = azurerm_resource_group.this.location
  resource_group_name = azurerm_resource_group.this.name
  tags                = local.tags

  security_rule {
    name                       = "s3-from-container-apps"
    priority                   = 100
    direction                  = "Inbound"
    access                     = "Allow"
    protocol                   = "Tcp"
    source_address_prefix      = local.apps_subnet
    source_port_range          = "*"
    destination_address_prefix = "*"
    destination_port_range     = "9000"
  }

  dynamic "security_rule" {
    for_each = length(var.s3_allowed_cidrs) > 0 ? [1] : []
    content {
      name                       = "s3-and-console-from-uploaders"
      priority                   = 110
      direction                  = "Inbound"
      access                     = "Allow"
      protocol                   = "Tcp"
      source_address_prefixes    = var.s3_allowed_cidrs
      source_port_range          = "*"
      destination_address_prefix = "*"
      destination_port_ranges    = ["9000", "9001"]
    }
  }

  dynamic "security_rule" {
    for_each = length(var.ssh_allowed_cidrs) > 0 ? [1] : []
    content {
      name                       = "ssh-from-admins"
      priority                   = 120
      direction                  = "Inbound"
      access                     = "Allow"
      protocol                   = "Tcp"
      source_address_prefixes    = var.ssh_allowed_cidrs
      source_port_range          = "*"
      destination_address_prefix = "*"
      destination_port_range     = "22"
    }
  }
}

resource "azurerm_network_interface" "minio" {
  name                = "${var.name}-minio"
  location            = azurerm_resource_group.this.location
  resource_group_name = azurerm_resource_group.this.name
  tags                = local.tags

  ip_configuration {
    name                          = "primary"
    subnet_id                     = azurerm_subnet.storage.id
    private_ip_address_allocation = "Static"
    private_ip_address            = local.minio_ip
    public_ip_address_id          = azurerm_public_ip.minio.id
  }
}

resource "azurerm_network_interface_security_group_association" "minio" {
  network_interface_id      = azurerm_network_interface.minio.id
  network_security_group_id = azurerm_network_security_group.minio.id
}

resource "azurerm_linux_virtual_machine" "minio" {
  name                            = "${var.name}-minio"
  location                        = azurerm_resource_group.this.location
  resource_group_name             = azurerm_resource_group.this.name
  size                            = var.minio_vm_size
  admin_username                  = var.admin_username
  disable_password_authentication = true
  network_interface_ids           = [azurerm_network_interface.minio.id]
  tags                            = local.tags

  admin_ssh_key {
    username   = var.admin_username
    public_key = var.admin_ssh_public_key
  }

  identity {
    type         = "UserAssigned"
    identity_ids = [azurerm_user_assigned_identity.minio.id]
  }

  os_disk {
    caching              = "ReadWrite"
    storage_account_type = "StandardSSD_LRS"
  }

  source_image_reference {
    publisher = "Canonical"
    offer     = "ubuntu-24_04-lts"
    sku       = "server"
    version   = "latest"
  }

  custom_data = base64encode(templatefile("${path.module}/templates/minio-cloud-init.yaml.tftpl", {
    disk_lun            = local.minio_data_disk_lun
    identity_client_id  = azurerm_user_assigned_identity.minio.client_id
    key_vault_name      = azurerm_key_vault.this.name
    minio_image         = var.minio_image
    mc_image            = var.mc_image
    root_user           = local.minio_root_user
    pipeline_access_key = local.pipeline_access_key
    relay_endpoint      = "https://${azurerm_container_app.relay.ingress[0].fqdn}/minio/events"
    raw_bucket          = var.buckets.raw
    processed_bucket    = var.buckets.processed
    quarantine_bucket   = var.buckets.quarantine
    lake_bucket         = var.buckets.lake
  }))

  depends_on = [
    azurerm_key_vault_secret.this,
    azurerm_key_vault_access_policy.readers,
  ]
}

# The buckets live on this disk: snapshot it before a `terraform destroy` you may regret.
resource "azurerm_managed_disk" "minio" {
  name                 = "${var.name}-minio-data"
  location             = azurerm_resource_group.this.location
  resource_group_name  = azurerm_resource_group.this.name
  storage_account_type = "Premium_LRS"
  create_option        = "Empty"
  disk_size_gb         = var.minio_disk_size_gb
  tags                 = local.tags
}

resource "azurerm_virtual_machine_data_disk_attachment" "minio" {
  managed_disk_id    = azurerm_managed_disk.minio.id
  virtual_machine_id = azurerm_linux_virtual_machine.minio.id
  lun                = local.minio_data_disk_lun
  caching            = "ReadOnly"
}
