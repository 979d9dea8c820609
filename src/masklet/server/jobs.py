"""A bounded worker pool for model work, and cancellable jobs.

Model calls are CPU/GPU-heavy and must not run on the event loop. They go to a small thread
pool; at most `workers + queue_size` jobs may be running or waiting, and a job that finds the
pool full is refused at once with `BusyError` (429 + Retry-After) instead of piling up
requests the server cannot finish. A `Job` carries a cancel flag that long work (propagation)
checks between frames; a client that goes away sets it.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

from masklet.errors import BusyError
from masklet.pipelines.control import CancelledError, CancelToken

T = TypeVar("T")


JobCancelledError = CancelledError  # raised inside a job whose cancel flag was set


class Job(CancelToken):
    """A cancel flag shared by a running job and whoever may stop it (the pipeline's
    `CancelToken`, so pipelines check it once per frame)."""


class WorkerPool:
    """`workers` threads with room for `queue_size` waiting jobs; beyond that, `BusyError`."""

    def __init__(self, workers: int, queue_size: int) -> None:
        self.workers = workers
        self.capacity = workers + queue_size
        self._slots = threading.BoundedSemaphore(self.capacity)
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="masklet")
        self._pending = 0
        self._lock = threading.Lock()

    @property
    def pending(self) -> int:
        """Jobs running or waiting."""
        return self._pending

    def submit(self, fn: Callable[[], T]) -> Future[T]:
        if not self._slots.acquire(blocking=False):
            raise BusyError(
                f"the server is busy ({self.capacity} jobs running or queued); retry shortly"
            )
        with self._lock:
            self._pending += 1
        try:
            future = self._executor.submit(fn)
        except BaseException:
            self._release()
            raise
        future.add_done_callback(lambda _: self._release())
        return future

    def _release(self) -> None:
        with self._lock:
            self._pending -= 1
        self._slots.release()

    async def run(self, fn: Callable[[], T]) -> T:
        """Run `fn` on the pool and await its result (raises what it raises)."""
        return await asyncio.wrap_future(self.submit(fn))

    async def run_job(self, fn: Callable[[Job], T]) -> T:
        """Run `fn(job)` on the pool; if the awaiting request is cancelled, so is the job (a
        pipeline given `job` as its cancel token stops within one frame)."""
        job = Job()
        future = self.submit(lambda: fn(job))
        try:
            return await asyncio.shield(asyncio.wrap_future(future))
        except asyncio.CancelledError:
            job.cancel()
            raise

    def shutdown(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
