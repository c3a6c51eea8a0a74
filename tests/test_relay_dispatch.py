"""The relay's grouping of a burst's objects (relay/dispatch.py), without a server: which
object starts its own run, which waits for a group, and what a group's event says."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from relay.dispatch import READY_EVENT, BurstGrouper, ready_event
from relay.store_events import CreatedObject


def created(name: str, etag: str | None = None) -> CreatedObject:
    return CreatedObject("seaweedfs", "raw", f"vendas/{name}.csv", etag if etag is not None else f"etag-{name}", "12", "")


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Posts:
    """What the grouper posted, and a way to wait for the n-th post (no fixed sleep)."""

    def __init__(self, answers: list[Any] | None = None) -> None:
        self.events: list[dict[str, Any]] = []
        self.calls = 0
        self._answers = list(answers or [])
        self._changed = asyncio.Event()

    async def __call__(self, events: list[dict[str, Any]]) -> bool:
        self.calls += 1
        self._changed.set()
        answer = self._answers.pop(0) if self._answers else True
        if isinstance(answer, Exception):
            raise answer
        if answer:
            self.events.extend(events)
        return bool(answer)

    async def wait_for_calls(self, count: int) -> None:
        async with asyncio.timeout(5):
            while self.calls < count:
                self._changed.clear()
                await self._changed.wait()

    def keys(self) -> list[list[str]]:
        return [[ref["key"] for ref in event["payload"]["objects"]] for event in self.events]


class Outcomes:
    """What the grouper told its `on_group_done` (the relay's counters): groups posted, lost."""

    def __init__(self) -> None:
        self.posted = 0
        self.lost = 0

    def __call__(self, size: int, posted: bool) -> None:
        if posted:
            self.posted += 1
        else:
            self.lost += 1


def accept(grouper: BurstGrouper, obj: CreatedObject) -> str:
    route = grouper.route(obj)
    grouper.accepted(obj, route)
    return route


def test_an_object_that_comes_alone_starts_its_own_run_and_a_burst_waits_to_be_grouped() -> None:
    async def scenario() -> None:
        clock, posts = Clock(), Posts()
        grouper = BurstGrouper(posts, max_objects=8, window_seconds=0.5, clock=clock)
        assert accept(grouper, created("a")) == "run"
        clock.now += 0.1
        assert [accept(grouper, created(name)) for name in "bcd"] == ["batch"] * 3
        clock.now += 5  # a quiet window later, the next upload is alone again...
        assert grouper.route(created("e")) == "batch"  # ...but not while a group is waiting
        await grouper.close()
        assert posts.keys() == [["vendas/b.csv", "vendas/c.csv", "vendas/d.csv"]]
        clock.now += 5
        assert grouper.route(created("f")) == "run"
        assert grouper.waiting == 0

    asyncio.run(scenario())


def test_deliveries_that_arrive_together_are_grouped_before_any_is_acknowledged() -> None:
    """A store that sends several deliveries at once: each is routed on arrival."""

    async def scenario() -> None:
        posts = Posts()
        grouper = BurstGrouper(posts, max_objects=8, window_seconds=0.5)
        objects = [created(str(i)) for i in range(4)]
        routes = [grouper.route(obj) for obj in objects]
        assert routes == ["run", "batch", "batch", "batch"]
        for obj, route in zip(objects, routes, strict=True):
            grouper.accepted(obj, route)
        assert grouper.waiting == 3
        await grouper.close()
        assert posts.keys() == [["vendas/1.csv", "vendas/2.csv", "vendas/3.csv"]] and grouper.waiting == 0

    asyncio.run(scenario())


def test_a_full_group_is_posted_at_once_and_the_rest_after_the_window() -> None:
    async def scenario() -> None:
        posts, outcomes = Posts(), Outcomes()
        grouper = BurstGrouper(posts, max_objects=3, window_seconds=0.2, on_group_done=outcomes)
        routes = [accept(grouper, created(str(i))) for i in range(6)]
        assert routes == ["run"] + ["batch"] * 5
        await posts.wait_for_calls(1)  # the first three of the burst: full, posted without waiting
        assert posts.keys() == [["vendas/1.csv", "vendas/2.csv", "vendas/3.csv"]]
        await posts.wait_for_calls(2)  # the last two, once the window has passed
        assert posts.keys()[1] == ["vendas/4.csv", "vendas/5.csv"]
        assert outcomes.posted == 2 and outcomes.lost == 0 and grouper.waiting == 0

    asyncio.run(scenario())


def test_an_object_delivered_twice_keeps_its_route_and_joins_one_group() -> None:
    """SeaweedFS sends `update` right after `create`; stores re-deliver."""

    async def scenario() -> None:
        posts = Posts()
        grouper = BurstGrouper(posts, max_objects=8, window_seconds=0.5)
        assert accept(grouper, created("a")) == "run"
        assert accept(grouper, created("a")) == "run"  # its update: the same version
        assert accept(grouper, created("b")) == "batch"
        assert accept(grouper, created("b")) == "batch"
        assert accept(grouper, created("b", etag="new")) == "batch"  # a new version is new
        await grouper.close()
        assert posts.keys() == [["vendas/b.csv", "vendas/b.csv"]]
        assert [ref["etag"] for ref in posts.events[0]["payload"]["objects"]] == ["etag-b", "new"]

    asyncio.run(scenario())


def test_an_object_prefect_did_not_take_is_never_grouped() -> None:
    """The relay answered 503 for it: the store delivers it again, and then it is new."""

    async def scenario() -> None:
        posts = Posts()
        grouper = BurstGrouper(posts, max_objects=8, window_seconds=0.5)
        accept(grouper, created("a"))
        assert grouper.route(created("b")) == "batch"  # routed, but its event failed: not accepted
        await grouper.close()
        assert posts.calls == 0

    asyncio.run(scenario())


def _burst_of_three(posts: Posts) -> tuple[BurstGrouper, Outcomes]:
    """Objects a, b, c in one burst, in groups of two, retried at once."""
    outcomes = Outcomes()
    grouper = BurstGrouper(posts, max_objects=2, window_seconds=0.5, retry_delays=(0.0, 0.0),
                           on_group_done=outcomes)
    for name in "abc":
        accept(grouper, created(name))
    return grouper, outcomes


def test_a_group_prefect_could_not_take_is_posted_again_and_a_refused_one_is_not() -> None:
    async def scenario() -> None:
        unavailable = Posts([ConnectionError("down"), ConnectionError("down"), True])
        grouper, outcomes = _burst_of_three(unavailable)
        await unavailable.wait_for_calls(3)
        await grouper.close()
        assert unavailable.keys() == [["vendas/b.csv", "vendas/c.csv"]] and outcomes.posted == 1

        refused = Posts([False])
        grouper, outcomes = _burst_of_three(refused)
        await grouper.close()
        assert refused.calls == 1 and outcomes.lost == 1

        gone = Posts([ConnectionError("down")] * 3)
        grouper, outcomes = _burst_of_three(gone)
        await grouper.close()
        assert gone.calls == 3 and outcomes.lost == 1  # then left to the reconcile
        assert grouper.waiting == 0

    asyncio.run(scenario())


@pytest.mark.parametrize("max_objects", [1, 0])
def test_grouping_off_routes_every_object_to_its_own_run(max_objects: int) -> None:
    async def scenario() -> None:
        posts = Posts()
        grouper = BurstGrouper(posts, max_objects=max_objects, window_seconds=0.5)
        assert [accept(grouper, created(str(i))) for i in range(5)] == ["run"] * 5
        await grouper.close()
        assert posts.calls == 0

    asyncio.run(scenario())


def test_a_group_event_names_its_objects_and_has_the_same_id_when_posted_again() -> None:
    group = [created("a"), created("b", etag="")]
    event = ready_event(group)
    assert event["event"] == READY_EVENT
    assert event["resource"]["prefect.resource.id"] == f"ivi.batch.{event['id']}"
    assert event["payload"]["objects"] == [
        {"bucket": "raw", "key": "vendas/a.csv", "etag": "etag-a"},
        {"bucket": "raw", "key": "vendas/b.csv", "etag": None},  # no eTag: the current version
    ]
    assert [r["prefect.resource.id"] for r in event["related"]] == ["minio.object.raw/vendas/a.csv",
                                                                    "minio.object.raw/vendas/b.csv"]
    assert ready_event([created("a"), created("c")])["id"] == ready_event([created("a"), created("c")])["id"]
    assert ready_event([created("a"), created("c")])["id"] != ready_event([created("c"), created("a")])["id"]
