"""How the Ray executor queues items on its actors (fake actors, no Ray): every actor gets an
item first, a second waits behind each running one only while enough are left for all actors,
and a dead actor's running item is retried while the one queued behind it just goes back."""

from __future__ import annotations

from collections import deque
from pathlib import Path
from typing import Any

from masklet.batch.executor import Event, ItemStarted, Job
from masklet.batch.item import WorkerSpec
from masklet.batch.manifest import items_from_specs
from masklet.batch.ray import IN_FLIGHT, _Actor, _fill, _lost


class FakeMethod:
    def __init__(self, calls: list[tuple[str, str]], actor: str, kind: str) -> None:
        self.calls, self.actor, self.kind = calls, actor, kind

    def remote(self, item: Any, out: str, *every: float) -> str:
        assert len(every) == (self.kind == "stream")  # a video's task says how often to report
        self.calls.append((self.actor, item.item_id))
        return f"{self.kind}:{item.item_id}"  # stands for the task's ObjectRef / generator


class FakeHandle:
    def __init__(self, name: str, calls: list[tuple[str, str]]) -> None:
        self.name = name
        self.run = FakeMethod(calls, name, "run")


def fake_actors(n: int, calls: list[tuple[str, str]]) -> list[_Actor]:
    handles = [FakeHandle(f"actor{k}", calls) for k in range(n)]
    return [_Actor(h, FakeMethod(calls, h.name, "stream")) for h in handles]


def job(count: int, events: list[Event]) -> Job:
    specs = [{"input": f"v{k}.mp4" if k % 2 else f"i{k}.png", "text": "a dog."}
             for k in range(count)]  # fmt: skip
    items = items_from_specs(specs)
    return Job(deque(items), Path("out"), WorkerSpec(model="m"), events.append, max_retries=1)


def test_every_actor_gets_one_item_before_any_gets_a_second() -> None:
    assert IN_FLIGHT == 2
    calls: list[tuple[str, str]] = []
    events: list[Event] = []
    actors, five = fake_actors(2, calls), job(5, events)
    _fill(actors, five, 0.2)
    assert calls == [("actor0", "i0"), ("actor1", "v1"), ("actor0", "i2"), ("actor1", "v3")]
    assert [q[0] for q in actors[1].queue] == ["stream:v1", "stream:v3"]  # videos stream
    assert [item.item_id for item in five.pending] == ["i4"]
    # only the items that run now have started (one attempt each)
    assert [(e.item_id, e.attempt) for e in events if isinstance(e, ItemStarted)] == [
        ("i0", 1), ("v1", 1)
    ]  # fmt: skip


def test_near_the_end_no_item_waits_behind_a_running_one() -> None:
    calls: list[tuple[str, str]] = []
    actors, three = fake_actors(2, calls), job(3, [])
    _fill(actors, three, 0.2)
    assert calls == [("actor0", "i0"), ("actor1", "v1")]
    assert [item.item_id for item in three.pending] == ["i2"]  # for the first actor free


def test_a_dead_actor_retries_its_running_item_and_requeues_the_waiting_one() -> None:
    class FakeRay:
        killed: list[str] = []

        def kill(self, handle: FakeHandle) -> None:
            self.killed.append(handle.name)

    calls: list[tuple[str, str]] = []
    events: list[Event] = []
    actors, four = fake_actors(1, calls), job(4, events)
    _fill(actors, four, 0.2)
    assert [q[1].item_id for q in actors[0].queue] == ["i0", "v1"]
    fake_ray = FakeRay()
    _lost(fake_ray, actors[0], four, RuntimeError("The actor died unexpectedly"))
    assert fake_ray.killed == ["actor0"]
    assert [item.item_id for item in four.pending] == ["i0", "v1", "i2", "v3"]
    assert four.attempts == {"i0": 1}  # v1 never started: its first run is still to come
