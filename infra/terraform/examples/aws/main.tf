# A root configuration deploying the pipeline on AWS: copy this directory, add your backend,
# fill terraform.tfvars from ../../modules/aws/terraform.tfvars.example, then
#   terraform init && terraform apply
# and run the command of the output setup_run_task_command once.

terraform {
  required_version = ">= 1.9.0, < 2.0.0"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = "~> 5.100"
    }
    random = {
      source  = "hashicorp/random"
      version = "~> 3.7"
    }
  }

  # The state holds generated secrets (webhook token, database password, the pipeline's S3
  # secret key): keep it in an encrypted, access-controlled backend, e.g.
  # backend "s3" {
  #   bucket       = "acme-terraform-state"
  #   key          = "ivi/prod.tfstate"
  #   region       = "eu-west-1"
  #   encrypt      = true
  #   use_lockfile = true
  # }
}

variable "region" {
  description = "AWS region (null: AWS_REGION / the profile's region)."
  type        = string
  default     = null
}

provider "aws" {
  region = var.region

  default_tags {
    tags = { project = "mini-pipeline-ivi" }
  }
}

module "pipeline" {
  source = "../../modules/aws"

  image              = var.image
  vpc_id             = var.vpc_id
  public_subnet_ids  = var.public_subnet_ids
  private_subnet_ids = var.private_subnet_ids
  relay_domain_name  = var.relay_domain_name
  certificate_arn    = var.certificate_arn
  route53_zone_id    = var.route53_zone_id
  bucket_prefix      = var.bucket_prefix

  prefect_ui_allowed_cidrs = var.prefect_ui_allowed_cidrs
  worker_count             = var.worker_count

  powerbi               = var.powerbi
  powerbi_client_secret = var.powerbi_client_secret
  powerbi_dataset_ids   = var.powerbi_dataset_ids
  powerbi_push_urls     = var.powerbi_push_urls
}

output "relay_url" {
  value = module.pipeline.relay_url
}

output "prefect_ui_url" {
  value = module.pipeline.prefect_ui_url
}

output "buckets" {
  value = module.pipeline.buckets
}

output "raw_uploader_policy_arn" {
  value = module.pipeline.raw_uploader_policy_arn
}

output "setup_run_task_command" {
  value = module.pipeline.setup_run_task_command
}
