"""The flow run a piece of code runs in, for reports, lock holders and idempotency keys."""

from __future__ import annotations

from prefect.context import FlowRunContext


def current_flow_run_id(default: str = "") -> str:
    """The id of the enclosing flow run (from inside its tasks too), or `default` outside one
    (a test calling a flow's function directly)."""
    context = FlowRunContext.get()
    if context is None or context.flow_run is None:
        return default
    return str(context.flow_run.id)
