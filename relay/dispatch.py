"""How a new object reaches a run: on its own, or grouped with the rest of a burst.

Every new object is acknowledged by its own `minio.object.created` event, posted before the
store gets its 2xx (so a Prefect that cannot take it still gets a 503 and the store's retry).
Its `ivi.dispatch` label says what starts its run:

- `run`: the object came alone (nothing new arrived in the last window). The process-object
  trigger starts its run at once, as it always did: a single upload waits for nothing.
- `batch`: it came in a burst. It waits here, with the burst's other objects, for at most one
  window or until the group is full; then one `ivi.objects.ready` event names the whole
  group, and the process-objects trigger starts one run for it (one subflow per object).

Why: a deployment run costs about 0.5 CPU-s before it does any work (docs/shared-state.md),
as much as a small file's work itself, so a burst of 200 small files spent half its CPU on
runs. The price is the window: an object of a burst starts up to that much later, and one
that was acknowledged but not yet grouped when the relay stops is left to the reconcile
(every 5 minutes), like an event any store failed to deliver.

Pure asyncio, no web framework and no Prefect client: the relay posts what `ready_event`
returns through the function it is given.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, Literal

from relay.store_events import EVENT_ID_NAMESPACE, CreatedObject

READY_EVENT = "ivi.objects.ready"
Route = Literal["run", "batch"]
# Objects acknowledged recently, by event id: SeaweedFS sends `update` right after `create`,
# stores re-deliver; the same version must not join a second group.
REMEMBERED_OBJECTS = 10_000
# A group Prefect could not take is posted again after these waits, then left to the reconcile.
RETRY_DELAYS_SECONDS = (1.0, 2.0, 4.0, 8.0, 16.0)

log = logging.getLogger("ivi.relay")

PostGroup = Callable[[list[dict[str, Any]]], Awaitable[bool]]


def ready_event(objects: list[CreatedObject]) -> dict[str, Any]:
    """The event that starts one process-objects run for these objects.

    Its id comes from the objects' own event ids, so a group posted again (a retry after a
    timeout that had in fact reached Prefect) is the same event, which Prefect runs once.
    Each object is also a related resource, so the event shows in the UI on each object's page.
    """
    ids = "\n".join(str(obj.event_id()) for obj in objects)
    group_id = uuid.uuid5(EVENT_ID_NAMESPACE, ids)
    return {
        "id": str(group_id),
        "occurred": datetime.now(UTC).isoformat(),
        "event": READY_EVENT,
        "resource": {
            "prefect.resource.id": f"ivi.batch.{group_id}",
            "prefect.resource.name": f"{len(objects)} object(s)",
        },
        "related": [
            {"prefect.resource.id": f"minio.object.{obj.bucket}/{obj.key}", "prefect.resource.role": "object"}
            for obj in objects
        ],
        "payload": {
            "objects": [{"bucket": obj.bucket, "key": obj.key, "etag": obj.etag or None} for obj in objects]
        },
    }


class BurstGrouper:
    """Routes each new object (`route`), and holds a burst's objects (`accepted`) until their
    group is full or its window has passed, then posts the group's `ivi.objects.ready` event
    and tells `on_group_done(size, posted)` (the relay's counters).

    `max_objects` 1 turns grouping off: every object is routed `run`.
    """

    def __init__(
        self,
        post: PostGroup,
        *,
        max_objects: int,
        window_seconds: float,
        clock: Callable[[], float] = time.monotonic,
        retry_delays: tuple[float, ...] = RETRY_DELAYS_SECONDS,
        on_group_done: Callable[[int, bool], None] = lambda size, posted: None,
    ) -> None:
        self._post = post
        self._max = max(1, max_objects)
        self._window = window_seconds
        self._clock = clock
        self._retry_delays = retry_delays
        self._on_group_done = on_group_done
        self._last_new: float | None = None
        self._group: list[CreatedObject] = []
        self._timer: asyncio.Task[None] | None = None
        self._sending: dict[asyncio.Task[None], int] = {}  # a group's post in flight: its size
        self._seen: OrderedDict[uuid.UUID, Route] = OrderedDict()

    @property
    def waiting(self) -> int:
        """Accepted `batch` objects not yet posted in a group nor given up (the relay's gauge)."""
        return len(self._group) + sum(self._sending.values())

    def route(self, obj: CreatedObject) -> Route:
        """`run` for an object that came alone, `batch` for one of a burst; an object seen
        recently keeps the route it had (its event id is the same, Prefect runs it once)."""
        known = self._seen.get(obj.event_id())
        if known is not None:
            return known
        now = self._clock()
        # Arrival, not acknowledgement: deliveries that come at once are routed before the
        # first of them is acknowledged.
        alone = self._last_new is None or now - self._last_new >= self._window
        self._last_new = now
        if self._max == 1 or (alone and not self._group):
            return "run"
        return "batch"

    def accepted(self, obj: CreatedObject, route: Route) -> None:
        """Prefect took the object's own event: remember it, and group it if it is `batch`
        and new. Objects whose event Prefect did not take are never grouped (the store
        delivers them again)."""
        event_id = obj.event_id()
        if event_id in self._seen:
            self._seen.move_to_end(event_id)
            return
        self._seen[event_id] = route
        if len(self._seen) > REMEMBERED_OBJECTS:
            self._seen.popitem(last=False)
        if route == "batch":
            self._group.append(obj)
            if len(self._group) >= self._max:
                self._send_group()
            elif self._timer is None:
                self._timer = asyncio.get_running_loop().create_task(self._send_after_window())

    async def _send_after_window(self) -> None:
        await asyncio.sleep(self._window)
        self._timer = None
        self._send_group()

    def _send_group(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        group, self._group = self._group, []
        if group:
            task = asyncio.get_running_loop().create_task(self._post_with_retries(group))
            self._sending[task] = len(group)
            task.add_done_callback(lambda done: self._sending.pop(done, None))  # cancelled before it ran

    async def _post_with_retries(self, group: list[CreatedObject]) -> None:
        posted = False
        try:
            posted = await self._post_until_taken(group)
        finally:
            self._sending.pop(asyncio.current_task(), None)  # no longer waiting, before it is told
            if not posted:
                log.error("a group of %d object(s) was not posted; the reconcile will process them: %s",
                          len(group), ", ".join(f"{obj.bucket}/{obj.key}" for obj in group[:10]))
            self._on_group_done(len(group), posted)

    async def _post_until_taken(self, group: list[CreatedObject]) -> bool:
        event = ready_event(group)
        for delay in (*self._retry_delays, None):
            try:
                # False: refused for good, and the same request would be refused again
                return await self._post([event])
            except Exception as error:  # noqa: BLE001 - any failure: wait and post again
                if delay is None:
                    return False
                log.warning("could not post a group of %d object(s) (%s); again in %.0f s",
                            len(group), error, delay)
                await asyncio.sleep(delay)
        return False

    async def close(self, timeout_seconds: float = 10.0) -> None:
        """Send what is waiting now and give the posts in flight `timeout_seconds` to finish
        (the relay is stopping); what is still retrying then is left to the reconcile."""
        self._send_group()
        if self._sending:
            _done, pending = await asyncio.wait(set(self._sending), timeout=timeout_seconds)
            for task in pending:
                task.cancel()
