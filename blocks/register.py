"""Create or update the Prefect blocks the flows load their credentials from.

Secrets go from the settings (environment / `.env`) into blocks on the Prefect server, and
from there to the flows: never into code, prefect.yaml or logs. Run inside a process whose
Prefect settings point at the server (`ivi up` does that for you).
"""

from __future__ import annotations

from prefect_aws import AwsClientParameters, MinIOCredentials

from blocks.powerbi_setup import register_powerbi_blocks
from ivi.settings import Settings

MINIO_CREDENTIALS_BLOCK = "minio-credentials"


def minio_credentials(settings: Settings) -> MinIOCredentials:
    """The object store's credentials and endpoint as a prefect-aws block."""
    return MinIOCredentials(
        minio_root_user=settings.s3_access_key,
        minio_root_password=settings.s3_secret_key,
        region_name=settings.s3_region,
        aws_client_parameters=AwsClientParameters(
            endpoint_url=settings.s3_endpoint, use_ssl=settings.s3_secure
        ),
    )


def register_blocks(settings: Settings) -> list[str]:
    """Save every block of the project (overwriting older values); return their names.

    A Power BI block's name comes with where its rows go (never its key or secret).
    """
    minio_credentials(settings).save(MINIO_CREDENTIALS_BLOCK, overwrite=True)
    powerbi = [f"{name} ({where})" for name, where in register_powerbi_blocks(settings)]
    return [MINIO_CREDENTIALS_BLOCK, *powerbi]


if __name__ == "__main__":
    for name in register_blocks(Settings()):
        print(f"saved block {name}")
