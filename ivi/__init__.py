"""The `ivi` command: local processing, stack control and Power BI setup.

Kept import-light on purpose: `ivi process` must start fast, so subcommands import what they
need only when they run.
"""
