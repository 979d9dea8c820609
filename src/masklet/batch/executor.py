"""What an executor is: something that runs `masklet.batch.item.run_item` for each item on
its workers and reports events back to the runner (on the runner's thread).

A worker that dies (killed process, lost Ray actor) has its item retried on a new worker up
to `max_retries` times; after that the item fails with the cause. Errors inside an item never
kill a worker: `run_item` turns them into a failed `ItemOutcome`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from masklet.batch.item import WorkerSpec
from masklet.batch.manifest import BatchItem
from masklet.batch.records import ItemOutcome


@dataclass(frozen=True)
class ItemStarted:
    """An item was handed to `worker` (a process id for the local executor, an actor handle
    for Ray); `attempt` counts from 1."""

    item_id: str
    worker: Any
    attempt: int


@dataclass(frozen=True)
class FramesDone:
    """`frames` more frames of an item are finished (1 for an image)."""

    item_id: str
    worker: Any
    frames: int


@dataclass(frozen=True)
class ItemFinished:
    outcome: ItemOutcome


Event = ItemStarted | FramesDone | ItemFinished
EventFn = Callable[[Event], None]


class Executor(Protocol):
    """Runs items on workers that each hold the model once."""

    def run(
        self,
        items: Sequence[BatchItem],
        out: Path,
        spec: WorkerSpec,
        events: EventFn,
        *,
        max_retries: int,
    ) -> None: ...


def death_outcome(item: BatchItem, cause: str, attempts: int) -> ItemOutcome:
    return ItemOutcome(
        item.item_id, False, f"WorkerDied: {cause} (tried {attempts} time(s))", attempts=attempts
    )
