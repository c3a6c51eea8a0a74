# ECS Fargate: the relay (behind the load balancer), the Prefect server (self-hosted only),
# the workers, and a one-shot setup task that applies prefect.yaml.

resource "aws_ecs_cluster" "this" {
  name = var.name

  setting {
    name  = "containerInsights"
    value = "enabled"
  }

  tags = local.tags
}

resource "aws_cloudwatch_log_group" "service" {
  for_each = toset(concat(["relay", "worker", "setup"], local.self_hosted ? ["prefect-server"] : []))

  name              = "/ecs/${var.name}/${each.key}"
  retention_in_days = var.log_retention_days
  tags              = local.tags
}

# --- Roles ---------------------------------------------------------------------------------

data "aws_iam_policy_document" "ecs_tasks_assume" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["ecs-tasks.amazonaws.com"]
    }
    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [data.aws_caller_identity.current.account_id]
    }
  }
}

# Used by ECS itself: pull the image, write logs, read the one secret.
resource "aws_iam_role" "execution" {
  name               = "${var.name}-ecs-execution"
  assume_role_policy = data.aws_iam_policy_document.ecs_tasks_assume.json
  tags               = local.tags
}

resource "aws_iam_role_policy_attachment" "execution" {
  role       = aws_iam_role.execution.name
  policy_arn = "arn:${data.aws_partition.current.partition}:iam::aws:policy/service-role/AmazonECSTaskExecutionRolePolicy"
}

resource "aws_iam_role_policy" "execution_secret" {
  name = "read-pipeline-secret"
  role = aws_iam_role.execution.id
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Effect   = "Allow"
      Action   = "secretsmanager:GetSecretValue"
      Resource = aws_secretsmanager_secret.app.arn
    }]
  })
}

# Used by the worker's processes. No permission: S3 goes through the pipeline user's keys kept
# in the Prefect block, and nothing is shared on disk. The per-object-version lock
# (`_ivi/locks/`) and Prefect's results with the Power BI batch cache (`_ivi/results/`, block
# ivi-results) live in the processed bucket, which every worker task reaches; a task keeps
# nothing another task needs.
resource "aws_iam_role" "worker" {
  name               = "${var.name}-worker"
  assume_role_policy = data.aws_iam_policy_document.ecs_tasks_assume.json
  tags               = local.tags
}

# --- Task definitions ------------------------------------------------------------------------

locals {
  log_options = {
    for service, group in aws_cloudwatch_log_group.service : service => {
      logDriver = "awslogs"
      options = {
        awslogs-group         = group.name
        awslogs-region        = local.region
        awslogs-stream-prefix = service
      }
    }
  }

  to_env = {
    relay          = [for k, v in local.relay_environment : { name = k, value = v }]
    worker         = [for k, v in local.worker_environment : { name = k, value = v }]
    setup          = [for k, v in local.common_environment : { name = k, value = v }]
    prefect_server = [for k, v in local.prefect_server_environment : { name = k, value = v }]
  }

  to_secrets = {
    relay          = [for k in local.relay_secrets : { name = k, valueFrom = local.secret_ref[k] }]
    worker         = [for k in local.worker_secrets : { name = k, valueFrom = local.secret_ref[k] }]
    setup          = [for k in local.setup_secrets : { name = k, valueFrom = local.secret_ref[k] }]
    prefect_server = [for k in local.prefect_server_secrets : { name = k, valueFrom = local.secret_ref[k] }]
  }

  runtime_platform = {
    operating_system_family = "LINUX"
    cpu_architecture        = var.cpu_architecture
  }
}

resource "aws_ecs_task_definition" "relay" {
  family                   = "${var.name}-relay"
  requires_compatibilities = ["FARGATE"]
  network_mode             = "awsvpc"
  cpu                      = var.task_sizes.relay.cpu
  memory                   = var.task_sizes.relay.memory
  execution_role_arn       = aws_iam_role.execution.arn

  runtime_platform {
    operating_system_family = local.runtime_platform.operating_system_family
    cpu_architecture        = local.runtime_platform.cpu_architecture
  }

  container_definitions = jsonencode([{
    name      = "relay"
    image     = var.image
    essential = true
    # As ivi/stack.py's relay_command, listening on every interface of the task.
    command = [
      "python", "-m", "uvicorn", "relay.app:app",
      "--host", "0.0.0.0", "--port", tostring(local.relay_port),
      "--log-level", "info",
    ]
    workingDirectory       = local.app_dir
    portMappings           = [{ containerPort = local.relay_port, protocol = "tcp" }]
    environment            = local.to_env.relay
    secrets                = local.to_secrets.relay
    readonlyRootFilesystem = true
    healthCheck = {
      command     = ["CMD", "ivi-healthcheck", "http://127.0.0.1:${local.relay_port}/healthz"]
      interval    = 15
      timeout     = 5
      retries     = 3
      startPeriod = 15
    }
    logConfiguration = local.log_options["relay"]
  }])

  tags = local.tags
}

resource "aws_ecs_task_definition" "prefect_server" {
  count = local.self_hosted ? 1 : 0

  family                   = "${var.name}-prefect-server"
  requires_compatibilities = ["FARGATE"]
  network_mode             = "awsvpc"
  cpu                      = var.task_sizes.prefect_server.cpu
  memory                   = var.task_sizes.prefect_server.memory
  execution_role_arn       = aws_iam_role.execution.arn

  runtime_platform {
    operating_system_family = local.runtime_platform.operating_system_family
    cpu_architecture        = local.runtime_platform.cpu_architecture
  }

  container_definitions = jsonencode([{
    name             = "prefect-server"
    image            = var.image
    essential        = true
    command          = ["prefect", "server", "start", "--host", "0.0.0.0", "--port", tostring(local.prefect_port)]
    workingDirectory = local.app_dir
    portMappings     = [{ containerPort = local.prefect_port, protocol = "tcp" }]
    environment      = local.to_env.prefect_server
    secrets          = local.to_secrets.prefect_server
    healthCheck = {
      command     = ["CMD", "ivi-healthcheck", "http://127.0.0.1:${local.prefect_port}/api/health"]
      interval    = 30
      timeout     = 5
      retries     = 3
      startPeriod = 120
    }
    logConfiguration = local.log_options["prefect-server"]
  }])

  tags = local.tags
}

resource "aws_ecs_task_definition" "worker" {
  family                   = "${var.name}-worker"
  requires_compatibilities = ["FARGATE"]
  network_mode             = "awsvpc"
  cpu                      = var.task_sizes.worker.cpu
  memory                   = var.task_sizes.worker.memory
  execution_role_arn       = aws_iam_role.execution.arn
  task_role_arn            = aws_iam_role.worker.arn

  runtime_platform {
    operating_system_family = local.runtime_platform.operating_system_family
    cpu_architecture        = local.runtime_platform.cpu_architecture
  }

  container_definitions = jsonencode([{
    name      = "worker"
    image     = var.image
    essential = true
    # As docker-compose.yml's worker: the pre-warmed engine (deployments/prewarmed_engine.py)
    # beside the process worker starts each flow run in milliseconds instead of seconds; the
    # pool's job command falls back to `python -m prefect.engine` if the engine is not there.
    command = [
      "sh", "-c",
      "python -m deployments.prewarmed_engine \"$IVI_PREWARMED_ENGINE_SOCKET\" & exec prefect worker start --pool \"$IVI_WORK_POOL\" --type process --with-healthcheck",
    ]
    workingDirectory = local.app_dir
    linuxParameters  = { initProcessEnabled = true }
    healthCheck = {
      command     = ["CMD", "ivi-healthcheck", "http://127.0.0.1:8080/health"]
      interval    = 30
      timeout     = 5
      retries     = 3
      startPeriod = 60
    }
    environment = local.to_env.worker
    secrets     = local.to_secrets.worker
    # Fargate's longest grace period: a run in flight gets two minutes to finish.
    stopTimeout      = 120
    logConfiguration = local.log_options["worker"]
  }])

  tags = local.tags
}

# Run once after the first apply and after every image change (see the output
# setup_run_task_command): work pool, blocks, rate limits, `prefect deploy --all`.
resource "aws_ecs_task_definition" "setup" {
  family                   = "${var.name}-setup"
  requires_compatibilities = ["FARGATE"]
  network_mode             = "awsvpc"
  cpu                      = var.task_sizes.setup.cpu
  memory                   = var.task_sizes.setup.memory
  execution_role_arn       = aws_iam_role.execution.arn

  runtime_platform {
    operating_system_family = local.runtime_platform.operating_system_family
    cpu_architecture        = local.runtime_platform.cpu_architecture
  }

  container_definitions = jsonencode([{
    name             = "setup"
    image            = var.image
    essential        = true
    command          = ["python", "-m", "deployments.apply"]
    workingDirectory = local.app_dir
    environment      = local.to_env.setup
    secrets          = local.to_secrets.setup
    logConfiguration = local.log_options["setup"]
  }])

  tags = local.tags
}

# --- Services ----------------------------------------------------------------------------------

resource "aws_ecs_service" "prefect_server" {
  count = local.self_hosted ? 1 : 0

  name            = "prefect-server"
  cluster         = aws_ecs_cluster.this.id
  task_definition = aws_ecs_task_definition.prefect_server[0].arn
  launch_type     = "FARGATE"
  # One server: several need Redis for Prefect's event bus. 0% minimum during a deployment,
  # so that two versions never run database migrations at the same time.
  desired_count                      = 1
  deployment_minimum_healthy_percent = 0
  deployment_maximum_percent         = 100
  health_check_grace_period_seconds  = local.prefect_ui_public ? 180 : null

  network_configuration {
    subnets          = var.private_subnet_ids
    security_groups  = [aws_security_group.prefect_server[0].id]
    assign_public_ip = false
  }

  service_registries {
    registry_arn = aws_service_discovery_service.prefect_server[0].arn
  }

  dynamic "load_balancer" {
    for_each = local.prefect_ui_public ? [1] : []
    content {
      target_group_arn = aws_lb_target_group.prefect[0].arn
      container_name   = "prefect-server"
      container_port   = local.prefect_port
    }
  }

  deployment_circuit_breaker {
    enable   = true
    rollback = true
  }

  tags = local.tags
}

resource "aws_ecs_service" "relay" {
  name                              = "relay"
  cluster                           = aws_ecs_cluster.this.id
  task_definition                   = aws_ecs_task_definition.relay.arn
  launch_type                       = "FARGATE"
  desired_count                     = var.relay_count
  health_check_grace_period_seconds = 30

  network_configuration {
    subnets          = var.private_subnet_ids
    security_groups  = [aws_security_group.relay.id]
    assign_public_ip = false
  }

  load_balancer {
    target_group_arn = aws_lb_target_group.relay.arn
    container_name   = "relay"
    container_port   = local.relay_port
  }

  deployment_circuit_breaker {
    enable   = true
    rollback = true
  }

  depends_on = [aws_lb_listener_rule.relay]
  tags       = local.tags
}

resource "aws_ecs_service" "worker" {
  name            = "worker"
  cluster         = aws_ecs_cluster.this.id
  task_definition = aws_ecs_task_definition.worker.arn
  launch_type     = "FARGATE"
  desired_count   = var.worker_count

  network_configuration {
    subnets          = var.private_subnet_ids
    security_groups  = [aws_security_group.tasks.id]
    assign_public_ip = false
  }

  deployment_circuit_breaker {
    enable   = true
    rollback = true
  }

  tags = local.tags
}
