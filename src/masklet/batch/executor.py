"""What an executor is: something that runs `masklet.batch.item.run_item` for each item of a
`Job` on its workers and reports events back to the runner (on the runner's thread).

A worker that dies (killed process, lost Ray actor) has its item retried on a new worker up
to `max_retries` times; after that the item fails with the cause. Errors inside an item never
kill a worker: `run_item` turns them into a failed `ItemOutcome`.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace
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


@dataclass
class Job:
    """What an executor runs (`pending` items, in order) and where it reports: one `Job`
    for the whole run, shared by every worker's bookkeeping. `attempts` counts the times each
    item started on a worker; `lost` retries an item whose worker died, up to `max_retries`."""

    pending: deque[BatchItem]
    out: Path
    spec: WorkerSpec
    events: EventFn
    max_retries: int
    attempts: dict[str, int] = field(default_factory=dict)

    def start(self, item: BatchItem, worker: Any) -> None:
        """`item` begins on `worker` (one more attempt)."""
        self.attempts[item.item_id] = self.attempts.get(item.item_id, 0) + 1
        self.events(ItemStarted(item.item_id, worker, self.attempts[item.item_id]))

    def frames(self, item_id: str, worker: Any, frames: int) -> None:
        self.events(FramesDone(item_id, worker, frames))

    def finish(self, outcome: ItemOutcome) -> None:
        self.events(ItemFinished(replace(outcome, attempts=self.attempts[outcome.item_id])))

    def lost(self, item: BatchItem, cause: str) -> None:
        """The worker running `item` died: run it again first, or fail it after the retries."""
        if self.attempts[item.item_id] <= self.max_retries:
            self.pending.appendleft(item)
        else:
            self._died(item, cause)

    def give_up(self, cause: str) -> None:
        """Fail every item still pending (no worker is left to run them)."""
        while self.pending:
            self._died(self.pending.popleft(), cause)

    def _died(self, item: BatchItem, cause: str) -> None:
        tries = self.attempts.get(item.item_id, 0)
        error = f"WorkerDied: {cause} (tried {tries} time(s))"
        self.events(ItemFinished(ItemOutcome(item.item_id, False, error, attempts=tries)))


class Executor(Protocol):
    """Runs a job's items on workers that each hold the model once."""

    def run(self, job: Job) -> None: ...
