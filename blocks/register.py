"""Create or update the Prefect blocks the flows load their credentials from.

Secrets go from the settings (environment / `.env`) into blocks on the Prefect server, and
from there to the flows: never into code, prefect.yaml or logs. Run inside a process whose
Prefect settings point at the server (`ivi up` does that for you).
"""

from __future__ import annotations

from blocks.objectstore import save_objectstore_blocks
from blocks.pipeline import PIPELINE_BLOCK, PipelineBuckets
from blocks.powerbi_setup import register_powerbi_blocks
from blocks.settings import SetupSettings


def register_blocks(settings: SetupSettings) -> list[str]:
    """Save every block of the project (overwriting older values); return their names.

    A Power BI block's name comes with where its rows go (never its key or secret).
    """
    objectstore = save_objectstore_blocks(settings)
    PipelineBuckets(
        raw_bucket=settings.raw_bucket,
        processed_bucket=settings.processed_bucket,
        quarantine_bucket=settings.quarantine_bucket,
        lake_bucket=settings.lake_bucket,
        contracts_prefix=settings.contracts_prefix,
        contracts_dir=settings.contracts_dir,
    ).save(PIPELINE_BLOCK, overwrite=True)
    powerbi = [f"{name} ({where})" for name, where in register_powerbi_blocks(settings)]
    return [*objectstore, PIPELINE_BLOCK, *powerbi]


if __name__ == "__main__":
    for name in register_blocks(SetupSettings()):
        print(f"saved block {name}")
