"""Progress and cancellation, passed as arguments to the pipeline functions.

A front end gives a `progress` callback (the CLI draws a bar, the server streams events, batch
work counts items) and a `CancelToken` it may set from another thread (a client that went
away, Ctrl-C, a shutdown). Pipelines call `cancel.check()` at least once per frame and raise
`CancelledError` there, so work stops within one frame.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass


class CancelledError(Exception):
    """Raised inside a pipeline whose `CancelToken` was set (not a user error)."""


class CancelToken:
    """A flag shared by running work and whoever may stop it."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def check(self) -> None:
        """Raise `CancelledError` if cancelled (call between units of work)."""
        if self._event.is_set():
            raise CancelledError


NEVER = CancelToken()  # the default: a token nobody sets


@dataclass(frozen=True)
class Progress:
    """One step of a pipeline: `done` of `total` units (frames for video, objects for an
    image), the frame just finished (video) and how many objects it holds."""

    done: int
    total: int
    frame: int | None = None
    objects: int = 0


ProgressFn = Callable[[Progress], None]


def no_progress(_: Progress) -> None:
    """The default progress callback: nothing to report to."""
