"""A bounded worker pool for model work, and cancellable jobs.

Model calls are CPU/GPU-heavy and must not run on the event loop. They go to a small thread
pool; at most `workers + queue_size` jobs may be running or waiting, and a job that finds the
pool full is refused at once with `BusyError` (429 + Retry-After) instead of piling up
requests the server cannot finish. A `Job` carries a cancel flag that long work checks
between frames; a client that goes away sets it (`run_job` watches the connection), and so
does a shutdown (`cancel_all`). A queued job whose flag is set never starts.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

from masklet.errors import BusyError
from masklet.pipelines.control import CancelledError, CancelToken

T = TypeVar("T")
DISCONNECT_POLL_SECONDS = 0.1  # how often a waiting request checks that its client is there


JobCancelledError = CancelledError  # raised inside a job whose cancel flag was set


class Job(CancelToken):
    """A cancel flag shared by a running job and whoever may stop it (the pipeline's
    `CancelToken`, so pipelines check it once per frame)."""


class WorkerPool:
    """`workers` threads with room for `queue_size` waiting jobs; beyond that, `BusyError`.
    One owner (API key) may have at most `per_owner` jobs running or waiting, so one key
    cannot fill the queue and lock the others out."""

    def __init__(self, workers: int, queue_size: int, per_owner: int | None = None) -> None:
        self.workers = workers
        self.capacity = workers + queue_size
        self.per_owner = per_owner
        self._owners: dict[str, int] = {}
        self._slots = threading.BoundedSemaphore(self.capacity)
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="masklet")
        self._pending = 0
        self._lock = threading.Lock()
        self._jobs: set[Job] = set()  # jobs running or queued, for cancel_all

    @property
    def pending(self) -> int:
        """Jobs running or waiting."""
        return self._pending

    def owner_jobs(self, owner: str) -> int:
        return self._owners.get(owner, 0)

    def submit(self, fn: Callable[[], T], owner: str | None = None) -> Future[T]:
        """Queue `fn`; `BusyError` when the pool, or `owner`'s share of it, is full."""
        with self._lock:
            if owner is not None and self.per_owner is not None:
                if self._owners.get(owner, 0) >= self.per_owner:
                    raise BusyError(
                        f"this API key has {self.per_owner} jobs running or queued, its share "
                        "of the server (--max-jobs-per-key); wait for one to finish"
                    )
            if not self._slots.acquire(blocking=False):
                raise BusyError(
                    f"the server is busy ({self.capacity} jobs running or queued); retry shortly"
                )
            self._pending += 1
            if owner is not None:
                self._owners[owner] = self._owners.get(owner, 0) + 1
        try:
            future = self._executor.submit(fn)
        except BaseException:
            self._release(owner)
            raise
        future.add_done_callback(lambda _: self._release(owner))
        return future

    def _release(self, owner: str | None) -> None:
        with self._lock:
            self._pending -= 1
            if owner is not None:
                left = self._owners.get(owner, 1) - 1
                if left > 0:
                    self._owners[owner] = left
                else:
                    self._owners.pop(owner, None)
        self._slots.release()

    async def run(self, fn: Callable[[], T], owner: str | None = None) -> T:
        """Run `fn` on the pool and await its result (raises what it raises)."""
        return await asyncio.wrap_future(self.submit(fn, owner))

    async def run_job(
        self,
        fn: Callable[[Job], T],
        disconnected: Callable[[], Awaitable[bool]] | None = None,
        owner: str | None = None,
    ) -> T:
        """Run `fn(job)` on the pool; the job is cancelled (a pipeline given `job` as its
        cancel token stops within one frame; a queued one never starts) when the awaiting
        request is cancelled or `disconnected()` (e.g. `request.is_disconnected`) turns true."""
        job = Job()
        future = self.submit(lambda: self._guarded(fn, job), owner)
        with self._lock:
            self._jobs.add(job)
        watcher = None
        if disconnected is not None:
            watcher = asyncio.create_task(_watch(disconnected, job))
        try:
            return await asyncio.shield(asyncio.wrap_future(future))
        except asyncio.CancelledError:
            job.cancel()
            raise
        finally:
            if watcher is not None:
                watcher.cancel()
            with self._lock:
                self._jobs.discard(job)

    @staticmethod
    def _guarded(fn: Callable[[Job], T], job: Job) -> T:
        job.check()  # cancelled while queued (client gone, shutdown): drop it
        return fn(job)

    def track(self, job: Job) -> None:
        """Count `job` among those `cancel_all` stops (for jobs not started by `run_job`)."""
        with self._lock:
            self._jobs.add(job)

    def untrack(self, job: Job) -> None:
        with self._lock:
            self._jobs.discard(job)

    def cancel_all(self) -> int:
        """Cancel every running or queued job; returns how many."""
        with self._lock:
            jobs = list(self._jobs)
        for job in jobs:
            job.cancel()
        return len(jobs)

    def shutdown(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)


async def _watch(disconnected: Callable[[], Awaitable[bool]], job: Job) -> None:
    """Cancel `job` as soon as its client is gone."""
    while not job.cancelled:
        if await disconnected():
            job.cancel()
            return
        await asyncio.sleep(DISCONNECT_POLL_SECONDS)
