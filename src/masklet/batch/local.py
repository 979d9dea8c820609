"""The local executor: `workers` processes on this machine, each loading the model once.

Each worker holds at most one item at a time (the runner's backpressure); the parent waits on
every worker's pipe and process sentinel together, so a worker that dies is noticed at once
and its item goes to a fresh worker. Workers ignore SIGINT: Ctrl-C reaches the parent, which
stops them; an interrupted item leaves only a staging folder (deleted by the next run).
"""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
from dataclasses import dataclass, replace
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Any

from masklet.batch.executor import Job
from masklet.batch.item import WorkerSpec, default_threads
from masklet.batch.manifest import BatchItem
from masklet.errors import MaskletError

JOIN_SECONDS = 5.0


class WorkerStartError(MaskletError):
    """A worker could not load the model (the message says why); nothing can run."""


def _worker_main(conn: Connection, spec: WorkerSpec, out: str) -> None:
    """A worker process: load the model, then run the items the parent sends until None."""
    from masklet.batch.item import WorkerState, one_line, run_item

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        state = WorkerState(spec)
    except Exception as error:  # noqa: BLE001 - reported to the parent as a fatal message
        conn.send(("fatal", one_line(error)))
        return
    conn.send(("ready", None))
    while True:
        item = conn.recv()
        if item is None:
            # every output is committed; skip interpreter teardown (seconds with torch loaded)
            conn.close()
            os._exit(0)

        def on_frame(n: int, item_id: str = item.item_id) -> None:
            conn.send(("frames", (item_id, n)))

        conn.send(("done", run_item(item, Path(out), state, on_frame)))


@dataclass
class _Worker:
    process: Any  # multiprocessing.Process (spawn context)
    conn: Connection
    item: BatchItem | None = None
    ready: bool = False


class LocalExecutor:
    """`workers` processes (spawned, so no state is shared with the parent); torch threads
    split between them unless `threads` is given."""

    def __init__(self, workers: int = 1, threads: int | None = None) -> None:
        if workers < 1:
            raise MaskletError(f"workers must be >= 1, got {workers}", field="workers")
        self.workers = workers
        self.threads = threads

    def run(self, job: Job) -> None:
        spec = job.spec
        if spec.threads is None:
            spec = replace(spec, threads=self.threads or default_threads(self.workers))
        ctx = mp.get_context("spawn")
        pool: list[_Worker] = []

        def start() -> _Worker:
            parent, child = ctx.Pipe()
            process = ctx.Process(target=_worker_main, args=(child, spec, str(job.out)),
                                  daemon=True)  # fmt: skip
            process.start()
            child.close()
            return _Worker(process, parent)

        def hand_out(worker: _Worker) -> None:
            if worker.ready and worker.item is None and job.pending:
                worker.item = job.pending.popleft()
                worker.conn.send(worker.item)
                job.start(worker.item, worker.process.pid)

        def died(worker: _Worker) -> None:
            pool.remove(worker)
            worker.process.join(JOIN_SECONDS)
            if not worker.ready:  # it never loaded the model: a new one would die the same way
                raise WorkerStartError(
                    f"a worker process exited with {worker.process.exitcode} before loading the "
                    "model (see its traceback above)"
                )
            if worker.item is not None:
                process = worker.process
                job.lost(
                    worker.item, f"worker process {process.pid} exited with {process.exitcode}"
                )
            if job.pending and len(pool) < self.workers:
                pool.append(start())

        try:
            pool.extend(start() for _ in range(min(self.workers, len(job.pending))))
            while pool and (job.pending or any(w.item is not None for w in pool)):
                for worker in pool:
                    hand_out(worker)
                handles = [w.conn for w in pool] + [w.process.sentinel for w in pool]
                ready = set(wait(handles))
                for worker in list(pool):
                    exited = worker.process.sentinel in ready
                    if worker.conn in ready or exited:
                        # drain what it sent before it ended: a finished item stays finished
                        if not _receive(worker, job) or exited:
                            died(worker)
            job.give_up("no worker left")  # every worker failed to start (see WorkerStartError)
        finally:
            _stop(pool)


def _receive(worker: _Worker, job: Job) -> bool:
    """Handle the worker's messages; False when its pipe is closed (it died)."""
    try:
        while worker.conn.poll():
            kind, payload = worker.conn.recv()
            if kind == "fatal":
                raise WorkerStartError(f"a worker could not start: {payload}")
            if kind == "ready":
                worker.ready = True
            elif kind == "frames":
                job.frames(payload[0], worker.process.pid, payload[1])
            elif kind == "done":
                worker.item = None
                job.finish(payload)
    except (EOFError, OSError):
        return False
    return True


def _stop(pool: list[_Worker]) -> None:
    for worker in pool:
        try:
            worker.conn.send(None)
        except (OSError, ValueError):
            pass
    for worker in pool:
        worker.process.join(JOIN_SECONDS if worker.item is None else 0)
        if worker.process.is_alive():
            worker.process.kill()
            worker.process.join(JOIN_SECONDS)
        worker.conn.close()
