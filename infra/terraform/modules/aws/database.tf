# PostgreSQL for the self-hosted Prefect server (Prefect keeps runs, deployments, blocks,
# events and automations there). Not created with Prefect Cloud.

resource "aws_db_subnet_group" "prefect" {
  count = local.self_hosted ? 1 : 0

  name       = "${var.name}-prefect"
  subnet_ids = var.private_subnet_ids
  tags       = local.tags
}

resource "aws_security_group" "database" {
  count = local.self_hosted ? 1 : 0

  name        = "${var.name}-prefect-db"
  description = "Prefect database: PostgreSQL from the Prefect server only."
  vpc_id      = var.vpc_id
  tags        = local.tags
}

resource "aws_vpc_security_group_ingress_rule" "database_from_prefect" {
  count = local.self_hosted ? 1 : 0

  security_group_id            = aws_security_group.database[0].id
  ip_protocol                  = "tcp"
  from_port                    = 5432
  to_port                      = 5432
  referenced_security_group_id = aws_security_group.prefect_server[0].id
}

resource "aws_db_instance" "prefect" {
  count = local.self_hosted ? 1 : 0

  identifier     = "${var.name}-prefect"
  engine         = "postgres"
  engine_version = var.database.engine_version
  instance_class = var.database.instance_class

  allocated_storage     = var.database.allocated_storage_gb
  max_allocated_storage = var.database.max_storage_gb
  storage_type          = "gp3"
  storage_encrypted     = true

  db_name  = "prefect"
  username = "prefect"
  password = random_password.database[0].result
  port     = 5432

  db_subnet_group_name   = aws_db_subnet_group.prefect[0].name
  vpc_security_group_ids = [aws_security_group.database[0].id]
  publicly_accessible    = false
  multi_az               = var.database.multi_az

  backup_retention_period    = var.database.backup_retention_days
  copy_tags_to_snapshot      = true
  deletion_protection        = var.database.deletion_protection
  skip_final_snapshot        = var.database.skip_final_snapshot
  final_snapshot_identifier  = var.database.skip_final_snapshot ? null : "${var.name}-prefect-final"
  auto_minor_version_upgrade = true
  apply_immediately          = false

  tags = local.tags
}
