"""The Ray executor: a pool of actors that each load the model once; items are actor tasks,
at most one in flight per actor (backpressure: a million-line manifest never floods the
cluster's object store). `pip install 'masklet[ray]'`.

`address` joins a running cluster ("auto", "ray://head:10001", "10.0.0.5:6379"); without it a
local Ray starts (or the one this process already initialised is used). Workers write their
outputs straight into `out/`, so on a cluster `out` must be on a file system every node sees.
An actor that dies (`ray.kill`, a lost node, an out-of-memory kill) has its item retried on a
new actor up to `max_retries` times.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from masklet.batch.executor import EventFn, FramesDone, ItemFinished, ItemStarted, death_outcome
from masklet.batch.item import WorkerSpec
from masklet.batch.manifest import BatchItem
from masklet.errors import MaskletError


class BatchActor:
    """One Ray actor: the model loaded once, then `run_item` per call (the local workers'
    function)."""

    def __init__(self, spec: WorkerSpec) -> None:
        from masklet.batch.item import WorkerState

        self.state = WorkerState(spec)

    def run(self, item: BatchItem, out: str) -> Any:
        from masklet.batch.item import run_item

        return run_item(item, Path(out), self.state)


def import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise MaskletError(
            "the Ray executor needs Ray: pip install 'masklet[ray]'", field="ray"
        ) from None
    return ray


class RayExecutor:
    """`workers` actors (default: the cluster's CPUs / `num_cpus`), each reserving `num_cpus`
    CPUs and `num_gpus` GPUs; torch in each actor uses `num_cpus` threads."""

    def __init__(
        self,
        address: str | None = None,
        *,
        workers: int | None = None,
        num_cpus: float = 1.0,
        num_gpus: float = 0.0,
    ) -> None:
        self.address = address
        self.workers = workers
        self.num_cpus = num_cpus
        self.num_gpus = num_gpus

    def run(
        self,
        items: Sequence[BatchItem],
        out: Path,
        spec: WorkerSpec,
        events: EventFn,
        *,
        max_retries: int,
    ) -> None:
        if not items:
            return
        ray = import_ray()
        started_here = not ray.is_initialized()
        if started_here:
            ray.init(address=self.address, log_to_driver=True)
        try:
            self._run(ray, items, out, spec, events, max_retries)
        finally:
            if started_here:
                ray.shutdown()

    def pool_size(self, ray: Any, count: int) -> int:
        if self.workers is not None:
            return max(1, min(self.workers, count))
        cpus = float(ray.cluster_resources().get("CPU", 1.0))
        return max(1, min(count, int(cpus // max(self.num_cpus, 1e-9))))

    def _run(
        self,
        ray: Any,
        items: Sequence[BatchItem],
        out: Path,
        spec: WorkerSpec,
        events: EventFn,
        max_retries: int,
    ) -> None:
        from dataclasses import replace

        if spec.threads is None:
            spec = replace(spec, threads=max(1, int(self.num_cpus)))
        remote = ray.remote(BatchActor).options(
            num_cpus=self.num_cpus, num_gpus=self.num_gpus, max_restarts=0, max_task_retries=0
        )
        pending: deque[BatchItem] = deque(items)
        attempts: dict[str, int] = {}
        idle = [remote.remote(spec) for _ in range(self.pool_size(ray, len(items)))]
        running: dict[Any, tuple[Any, BatchItem]] = {}  # task ref -> (actor, item)
        try:
            while pending or running:
                while idle and pending:
                    actor, item = idle.pop(), pending.popleft()
                    attempts[item.item_id] = attempts.get(item.item_id, 0) + 1
                    running[actor.run.remote(item, str(out))] = (actor, item)
                    events(ItemStarted(item.item_id, actor, attempts[item.item_id]))
                [ref], _ = ray.wait(list(running), num_returns=1)
                actor, item = running.pop(ref)
                try:
                    outcome = ray.get(ref)
                except ray.exceptions.RayActorError as error:
                    if _never_started(error):
                        cause = [ln for ln in str(error).splitlines() if ln.strip()][-1]
                        raise MaskletError(
                            f"a Ray worker could not load the model: {cause.strip()}"
                        ) from None
                    ray.kill(actor)
                    if attempts[item.item_id] <= max_retries:
                        pending.appendleft(item)
                    else:
                        cause = f"Ray actor died: {str(error).splitlines()[0]}"
                        events(ItemFinished(death_outcome(item, cause, attempts[item.item_id])))
                    idle.append(remote.remote(spec))
                    continue
                idle.append(actor)
                events(FramesDone(item.item_id, actor, outcome.frames))
                events(ItemFinished(replace(outcome, attempts=attempts[item.item_id])))
        finally:
            for actor, _ in running.values():
                ray.kill(actor)
            for actor in idle:
                ray.kill(actor)


def _never_started(error: Exception) -> bool:
    """An actor whose constructor raised (e.g. an unknown model) cannot run anything; Ray says
    so in the error of every task sent to it."""
    return "error raised in its creation task" in str(error)
