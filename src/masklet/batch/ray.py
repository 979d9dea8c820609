"""The Ray executor: a pool of actors that each load the model once; items are actor tasks,
`IN_FLIGHT` per actor (backpressure: a million-line manifest never floods the cluster's object
store, yet an actor starts its next item the moment one ends; near the end of the batch, one
per actor). `pip install 'masklet[ray]'`.

A video's task is a Ray streaming generator: it yields its frame counts as they finish (the
progress bar moves per frame, as with local workers), then its `ItemOutcome`; an image's task
returns its outcome.

`address` joins a running cluster ("auto", "ray://head:10001", "10.0.0.5:6379"); without it a
local Ray starts (or the one this process already initialised is used). Workers write their
outputs straight into `out/`, so on a cluster `out` must be on a file system every node sees.
An actor that dies (`ray.kill`, a lost node, an out-of-memory kill) has its running item
retried on a new actor up to `max_retries` times (the items queued behind it simply go back
to the queue).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import KW_ONLY, dataclass, field, replace
from pathlib import Path
from typing import Any, TypeVar

from masklet.batch.executor import Job
from masklet.batch.item import FrameFn, WorkerSpec
from masklet.batch.manifest import BatchItem
from masklet.batch.records import ItemOutcome
from masklet.errors import MaskletError

# Items queued per actor. With 1, every item paid a round trip (the outcome to the driver, the
# next item back) while the actor sat idle: ~3 ms per item, 10% of a small image's time.
IN_FLIGHT = 2
# A video's frames are reported to the driver at most this often (seconds). Each report is a
# thread wake-up and an RPC in the actor: one per frame cost ~9% of a 32-frame 160x120
# video's time on the nano model, every 0.2 s ~1% (benchmarks/ray_progress.py).
REPORT_EVERY = 0.2
T = TypeVar("T")


class BatchActor:
    """One Ray actor: the model loaded once, then `run_item` per item (the local workers'
    function): a plain task for an image, a streaming one for a video."""

    def __init__(self, spec: WorkerSpec) -> None:
        from masklet.batch.item import WorkerState

        self.state = WorkerState(spec)

    def run(self, item: BatchItem, out: str) -> ItemOutcome:
        """An image's outcome (its one frame is counted with it)."""
        from masklet.batch.item import run_item

        return run_item(item, Path(out), self.state)

    def stream(self, item: BatchItem, out: str, every: float) -> Iterator[int | ItemOutcome]:
        """A video's frame counts, summed over `every` seconds, then its outcome (a streaming
        generator: measured 0.25 ms more actor CPU per task than a plain one, so images use
        `run`)."""
        from masklet.batch.item import run_item

        def work(on_frame: FrameFn) -> ItemOutcome:
            return run_item(item, Path(out), self.state, on_frame)

        yield from stream_frames(work, every)


def stream_frames(work: Callable[[FrameFn], T], every: float = 0.0) -> Iterator[int | T]:
    """Run `work(on_frame)` on a thread; yield the frames it reports, summed over `every`
    seconds (0: each as it comes), then what it returned."""
    import queue
    import threading
    import time

    updates: queue.SimpleQueue[int | None] = queue.SimpleQueue()
    ended: list[T | BaseException] = []

    def target() -> None:
        try:
            ended.append(work(updates.put))
        except BaseException as error:  # noqa: BLE001 - re-raised on the consumer's thread
            ended.append(error)
        finally:
            updates.put(None)

    def next_update(frames: int, due: float) -> int | None:
        """The next report; 0 when `due` passes first while frames are waiting."""
        try:
            if frames == 0:
                return updates.get()
            return updates.get(timeout=max(0.0, due - time.monotonic()))
        except queue.Empty:
            return 0

    thread = threading.Thread(target=target, name="masklet-batch-item", daemon=True)
    thread.start()
    frames, due = 0, time.monotonic() + every
    while (update := next_update(frames, due)) is not None:
        frames += update
        if update == 0 or time.monotonic() >= due:
            yield frames
            frames, due = 0, time.monotonic() + every
    if frames:
        yield frames
    thread.join()
    if isinstance(ended[0], BaseException):
        raise ended[0]
    yield ended[0]


def import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise MaskletError(
            "the Ray executor needs Ray: pip install 'masklet[ray]'", field="ray"
        ) from None
    return ray


@dataclass
class _Actor:
    """An actor and its queued tasks, oldest (the one running) first."""

    handle: Any
    stream: Any  # handle.stream as a streaming-generator task
    queue: deque[tuple[Any, BatchItem]] = field(default_factory=deque)  # (task, item)
    reported: int = 0  # frames of the running item reported so far


@dataclass(frozen=True)
class RayExecutor:
    """`workers` actors (default: the cluster's CPUs / `num_cpus`), each reserving `num_cpus`
    CPUs and `num_gpus` GPUs; torch in each actor uses `num_cpus` threads. A video's frames
    reach the progress bar every `report_every` seconds (0: each frame)."""

    address: str | None = None
    _: KW_ONLY
    workers: int | None = None
    num_cpus: float = 1.0
    num_gpus: float = 0.0
    report_every: float = REPORT_EVERY

    def run(self, job: Job) -> None:
        ray = import_ray()
        started_here = not ray.is_initialized()
        if started_here:
            ray.init(address=self.address, log_to_driver=True)
        try:
            self._run(ray, job)
        finally:
            if started_here:
                ray.shutdown()

    def pool_size(self, ray: Any, count: int) -> int:
        if self.workers is not None:
            return max(1, min(self.workers, count))
        cpus = float(ray.cluster_resources().get("CPU", 1.0))
        return max(1, min(count, int(cpus // max(self.num_cpus, 1e-9))))

    def _run(self, ray: Any, job: Job) -> None:
        spec = job.spec
        if spec.threads is None:
            spec = replace(spec, threads=max(1, int(self.num_cpus)))
        remote = ray.remote(BatchActor).options(
            num_cpus=self.num_cpus, num_gpus=self.num_gpus, max_restarts=0, max_task_retries=0
        )

        def new_actor() -> _Actor:
            handle = remote.remote(spec)
            return _Actor(handle, handle.stream.options(num_returns="streaming"))

        actors = [new_actor() for _ in range(self.pool_size(ray, len(job.pending)))]
        try:
            while job.pending or any(a.queue for a in actors):
                _fill(actors, job, self.report_every)
                running = {a.queue[0][0]: a for a in actors if a.queue}
                [ready], _ = ray.wait(list(running), num_returns=1)
                actor = running[ready]
                try:  # an image's task is its outcome; a video's, the stream of its updates
                    update = ray.get(next(ready) if actor.queue[0][1].kind == "video" else ready)
                except ray.exceptions.RayActorError as error:
                    _lost(ray, actor, job, error)
                    actors[actors.index(actor)] = new_actor()
                    continue
                _received(actor, job, update)
        finally:
            for actor in actors:
                ray.kill(actor.handle)


def _fill(actors: list[_Actor], job: Job, every: float) -> None:
    """Give every idle actor an item, then queue more behind the running ones (up to
    `IN_FLIGHT` each) while enough items are left for every actor: at the end of a batch, an
    item queued behind a long video would wait while another actor sat idle."""
    for depth in range(IN_FLIGHT):
        for actor in actors:
            if not job.pending or (depth > 0 and len(job.pending) < len(actors)):
                return
            if len(actor.queue) == depth:
                item = job.pending.popleft()
                if item.kind == "video":
                    task = actor.stream.remote(item, str(job.out), every)
                else:
                    task = actor.handle.run.remote(item, str(job.out))
                actor.queue.append((task, item))
                if depth == 0:
                    job.start(item, actor.handle)


def _received(actor: _Actor, job: Job, update: int | ItemOutcome) -> None:
    """A frame count or the outcome of the actor's running item."""
    item = actor.queue[0][1]
    if isinstance(update, int):
        actor.reported += update
        job.frames(item.item_id, actor.handle, update)
        return
    if update.frames > actor.reported:
        job.frames(item.item_id, actor.handle, update.frames - actor.reported)
    actor.queue.popleft()
    actor.reported = 0
    job.finish(update)
    if actor.queue:  # the next one was waiting on the actor and runs now
        job.start(actor.queue[0][1], actor.handle)


def _lost(ray: Any, actor: _Actor, job: Job, error: Exception) -> None:
    """The actor died: its running item is retried (or fails), the queued ones go back."""
    if _never_started(error):
        cause = [ln for ln in str(error).splitlines() if ln.strip()][-1]
        raise MaskletError(f"a Ray worker could not load the model: {cause.strip()}") from None
    ray.kill(actor.handle)
    running = actor.queue.popleft()[1]
    for _, queued in reversed(actor.queue):
        job.pending.appendleft(queued)
    job.lost(running, f"Ray actor died: {str(error).splitlines()[0]}")


def _never_started(error: Exception) -> bool:
    """An actor whose constructor raised (e.g. an unknown model) cannot run anything; Ray says
    so in the error of every task sent to it."""
    return "error raised in its creation task" in str(error)
