"""When a failed task is worth another attempt: the one shape every task's condition takes.

Prefect retries a task when its `retry_condition_fn` says so. Each task knows which of its
errors a later attempt can get past (a store or service briefly away, a lost commit race);
everything else (a refusal, a bug) is final, so that a run fails at once with the reason
instead of retrying what cannot change.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from prefect.states import State

RetryCondition = Callable[[Any, Any, State], bool]


def _never(_error: BaseException) -> bool:
    return False


def retry_when(
    transient: tuple[type[BaseException], ...],
    also: Callable[[BaseException], bool] = _never,
) -> RetryCondition:
    """A `retry_condition_fn`: retry on the `transient` exceptions, and on any other one
    `also` accepts; a completed state is never retried."""

    def condition(task: Any, task_run: Any, state: State) -> bool:
        try:
            state.result()
        except transient:
            return True
        except Exception as error:  # noqa: BLE001 - `also` decides
            return also(error)
        return False

    return condition
