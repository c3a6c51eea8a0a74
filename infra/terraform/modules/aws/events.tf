# S3 -> EventBridge -> API destination -> relay.
#
# S3 cannot call an HTTP endpoint itself (its notifications go to SNS, SQS, Lambda or
# EventBridge). EventBridge's API destination can: it posts to an HTTPS endpoint with the
# connection's Authorization header, retries 5xx, 429 and time-outs (the relay answers 503
# while Prefect is unreachable) for up to event_max_age_seconds, and parks what it could not
# deliver in a dead-letter queue. The input transformer below reshapes EventBridge's
# "Object Created" event into the MinIO/S3 notification body the relay's /minio/events route
# already reads (Records[].s3.bucket.name, .object.key/eTag/size/sequencer, eventName), so
# the relay needs no AWS-specific code. The reconcile schedule of prefect.yaml catches up
# anything that never arrives.

resource "aws_cloudwatch_event_connection" "relay" {
  name               = "${var.name}-relay"
  description        = "Bearer token the relay checks (IVI_WEBHOOK_TOKEN)."
  authorization_type = "API_KEY"

  auth_parameters {
    api_key {
      key   = "Authorization"
      value = "Bearer ${random_password.webhook_token.result}"
    }
  }
}

resource "aws_cloudwatch_event_api_destination" "relay" {
  name                             = "${var.name}-relay"
  description                      = "The relay's object-store webhook."
  invocation_endpoint              = "https://${var.relay_domain_name}/minio/events"
  http_method                      = "POST"
  invocation_rate_limit_per_second = var.event_rate_limit_per_second
  connection_arn                   = aws_cloudwatch_event_connection.relay.arn
}

resource "aws_cloudwatch_event_rule" "raw_csv_created" {
  name        = "${var.name}-raw-csv-created"
  description = "A .csv object was created in ${local.buckets.raw}."
  event_pattern = jsonencode({
    source        = ["aws.s3"]
    "detail-type" = ["Object Created"]
    detail = {
      bucket = { name = [local.buckets.raw] }
      object = { key = [{ suffix = { "equals-ignore-case" = ".csv" } }] }
    }
  })
  tags = local.tags
}

data "aws_iam_policy_document" "events_assume" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["events.amazonaws.com"]
    }
    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [data.aws_caller_identity.current.account_id]
    }
  }
}

resource "aws_iam_role" "events" {
  name               = "${var.name}-events-to-relay"
  assume_role_policy = data.aws_iam_policy_document.events_assume.json
  tags               = local.tags
}

resource "aws_iam_role_policy" "events" {
  name = "invoke-relay"
  role = aws_iam_role.events.id
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Effect   = "Allow"
      Action   = "events:InvokeApiDestination"
      Resource = aws_cloudwatch_event_api_destination.relay.arn
    }]
  })
}

resource "aws_sqs_queue" "events_dlq" {
  name                      = "${var.name}-relay-events-dlq"
  message_retention_seconds = 1209600 # 14 days: time to notice, fix and replay
  sqs_managed_sse_enabled   = true
  tags                      = local.tags
}

data "aws_iam_policy_document" "events_dlq" {
  statement {
    actions   = ["sqs:SendMessage"]
    resources = [aws_sqs_queue.events_dlq.arn]
    principals {
      type        = "Service"
      identifiers = ["events.amazonaws.com"]
    }
    condition {
      test     = "ArnEquals"
      variable = "aws:SourceArn"
      values   = [aws_cloudwatch_event_rule.raw_csv_created.arn]
    }
  }
}

resource "aws_sqs_queue_policy" "events_dlq" {
  queue_url = aws_sqs_queue.events_dlq.id
  policy    = data.aws_iam_policy_document.events_dlq.json
}

resource "aws_cloudwatch_event_target" "relay" {
  rule      = aws_cloudwatch_event_rule.raw_csv_created.name
  target_id = "relay"
  arn       = aws_cloudwatch_event_api_destination.relay.arn
  role_arn  = aws_iam_role.events.arn

  input_transformer {
    input_paths = {
      bucket    = "$.detail.bucket.name"
      key       = "$.detail.object.key"
      etag      = "$.detail.object.etag"
      size      = "$.detail.object.size"
      sequencer = "$.detail.object.sequencer"
      reason    = "$.detail.reason"
    }
    # Written out rather than jsonencode()d: jsonencode escapes < and >, and EventBridge
    # would not see the placeholders. Quoted placeholders are JSON-escaped by EventBridge.
    input_template = <<-EOT
      {
        "EventName": "s3:ObjectCreated:<reason>",
        "Records": [
          {
            "eventSource": "aws:s3",
            "eventName": "s3:ObjectCreated:<reason>",
            "s3": {
              "bucket": {"name": "<bucket>"},
              "object": {"key": "<key>", "eTag": "<etag>", "size": "<size>", "sequencer": "<sequencer>"}
            }
          }
        ]
      }
    EOT
  }

  retry_policy {
    maximum_event_age_in_seconds = var.event_max_age_seconds
    maximum_retry_attempts       = var.event_retry_attempts
  }

  dead_letter_config {
    arn = aws_sqs_queue.events_dlq.arn
  }
}
