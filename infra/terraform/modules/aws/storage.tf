# The four buckets. Uploads land in raw (never rewritten by the pipeline); the flows write
# processed/ (clean CSV, JSON, _reports/), quarantine/ (rejected rows, rejected files) and
# lake/ (a Delta table per contract, whose files the nightly vacuum deletes).

resource "aws_s3_bucket" "this" {
  for_each = local.buckets

  bucket        = each.value
  force_destroy = var.force_destroy_buckets
  tags          = merge(local.tags, { "ivi:bucket" = each.key })
}

resource "aws_s3_bucket_ownership_controls" "this" {
  for_each = aws_s3_bucket.this

  bucket = each.value.id
  rule {
    object_ownership = "BucketOwnerEnforced"
  }
}

resource "aws_s3_bucket_public_access_block" "this" {
  for_each = aws_s3_bucket.this

  bucket                  = each.value.id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_versioning" "this" {
  for_each = aws_s3_bucket.this

  bucket = each.value.id
  versioning_configuration {
    status = "Enabled"
  }
}

resource "aws_s3_bucket_server_side_encryption_configuration" "this" {
  for_each = aws_s3_bucket.this

  bucket = each.value.id
  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm     = var.kms_key_arn == "" ? "AES256" : "aws:kms"
      kms_master_key_id = var.kms_key_arn == "" ? null : var.kms_key_arn
    }
    bucket_key_enabled = var.kms_key_arn != ""
  }
}

resource "aws_s3_bucket_lifecycle_configuration" "this" {
  for_each = aws_s3_bucket.this

  bucket = each.value.id

  rule {
    id     = "expire-old-versions"
    status = "Enabled"
    filter {}

    noncurrent_version_expiration {
      noncurrent_days = var.noncurrent_version_retention_days
    }
    abort_incomplete_multipart_upload {
      days_after_initiation = 7
    }
  }

  depends_on = [aws_s3_bucket_versioning.this]
}

data "aws_iam_policy_document" "tls_only" {
  for_each = aws_s3_bucket.this

  statement {
    sid     = "DenyInsecureTransport"
    effect  = "Deny"
    actions = ["s3:*"]
    resources = [
      each.value.arn,
      "${each.value.arn}/*",
    ]
    principals {
      type        = "*"
      identifiers = ["*"]
    }
    condition {
      test     = "Bool"
      variable = "aws:SecureTransport"
      values   = ["false"]
    }
  }
}

resource "aws_s3_bucket_policy" "this" {
  for_each = aws_s3_bucket.this

  bucket = each.value.id
  policy = data.aws_iam_policy_document.tls_only[each.key].json

  depends_on = [aws_s3_bucket_public_access_block.this]
}

# Object-created events of the raw bucket go to EventBridge (events.tf routes them).
resource "aws_s3_bucket_notification" "raw" {
  bucket      = aws_s3_bucket.this["raw"].id
  eventbridge = true
}

# --- The pipeline's S3 credentials --------------------------------------------------------
# The flows talk S3 through the `minio` client with the static keys of the `minio-credentials`
# block (blocks/register.py), so the pipeline needs an access key rather than a task role.
# Least privilege: read raw, read and write processed and quarantine, delete there only the
# pipeline's own state (lock records, Power BI deferrals); read, write and delete (vacuum) in lake.

resource "aws_iam_user" "pipeline" {
  name = "${var.name}-pipeline-s3"
  path = "/ivi/"
  tags = local.tags
}

data "aws_iam_policy_document" "pipeline_s3" {
  statement {
    sid       = "ListTheBuckets"
    actions   = ["s3:ListBucket", "s3:GetBucketLocation"]
    resources = [for bucket in aws_s3_bucket.this : bucket.arn]
  }

  statement {
    sid       = "ReadUploads"
    actions   = ["s3:GetObject"]
    resources = ["${aws_s3_bucket.this["raw"].arn}/*"]
  }

  statement {
    sid = "WriteOutputs"
    actions = [
      "s3:GetObject",
      "s3:PutObject",
      "s3:AbortMultipartUpload",
      "s3:ListMultipartUploadParts",
    ]
    resources = [
      "${aws_s3_bucket.this["processed"].arn}/*",
      "${aws_s3_bucket.this["quarantine"].arn}/*",
    ]
  }

  # The pipeline's own state in the processed bucket, the one place outside the lake where it
  # deletes: the version-lock records no run wrote for a day (flows/sweep_locks.py) and the
  # Power BI deferrals once pushed (flows/powerbi_deferral.py). Outputs are never deleted.
  statement {
    sid     = "DeleteOwnState"
    actions = ["s3:DeleteObject"]
    resources = [
      "${aws_s3_bucket.this["processed"].arn}/_ivi/locks/*",
      "${aws_s3_bucket.this["processed"].arn}/_ivi/powerbi-deferred/*",
    ]
  }

  # The Delta tables: commits are conditional PUTs, and vacuum deletes the files no version
  # within the retention needs (flows/maintain_lake.py).
  statement {
    sid = "WriteTheLake"
    actions = [
      "s3:GetObject",
      "s3:PutObject",
      "s3:DeleteObject",
      "s3:AbortMultipartUpload",
      "s3:ListMultipartUploadParts",
    ]
    resources = ["${aws_s3_bucket.this["lake"].arn}/*"]
  }

  dynamic "statement" {
    for_each = var.kms_key_arn == "" ? [] : [var.kms_key_arn]
    content {
      sid       = "UseTheBucketKey"
      actions   = ["kms:Decrypt", "kms:GenerateDataKey"]
      resources = [statement.value]
    }
  }
}

resource "aws_iam_user_policy" "pipeline_s3" {
  name   = "${var.name}-pipeline-s3"
  user   = aws_iam_user.pipeline.name
  policy = data.aws_iam_policy_document.pipeline_s3.json
}

# The secret key is kept in the terraform state (and copied into Secrets Manager): keep the
# state in an encrypted backend with restricted access. Rotate with `terraform apply -replace`.
resource "aws_iam_access_key" "pipeline" {
  user = aws_iam_user.pipeline.name
}

# --- Who may upload ------------------------------------------------------------------------
# Attach this to the roles or users that drop CSV files: they can write the raw bucket and
# nothing else (the pipeline's own outputs stay out of their reach).

data "aws_iam_policy_document" "uploader" {
  statement {
    sid       = "ListRaw"
    actions   = ["s3:ListBucket"]
    resources = [aws_s3_bucket.this["raw"].arn]
  }

  statement {
    sid       = "UploadToRaw"
    actions   = ["s3:PutObject", "s3:AbortMultipartUpload", "s3:ListMultipartUploadParts"]
    resources = ["${aws_s3_bucket.this["raw"].arn}/*"]
  }

  dynamic "statement" {
    for_each = var.kms_key_arn == "" ? [] : [var.kms_key_arn]
    content {
      sid       = "UseTheBucketKey"
      actions   = ["kms:GenerateDataKey"]
      resources = [statement.value]
    }
  }
}

resource "aws_iam_policy" "uploader" {
  name        = "${var.name}-raw-uploader"
  description = "Upload CSV files to the ${local.buckets.raw} bucket (nothing else)."
  policy      = data.aws_iam_policy_document.uploader.json
  tags        = local.tags
}
