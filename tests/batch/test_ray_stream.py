"""`stream_frames`, the loop behind a Ray video task's progress (no Ray needed): frame counts
summed over the report interval, every frame counted, then the work's result; an error in
the work is raised to the consumer after the frames reported before it."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

import pytest

from masklet.batch.item import FrameFn
from masklet.batch.ray import stream_frames


def frames_then(count: int, seconds: float, fail: bool = False) -> Callable[[FrameFn], str]:
    def work(on_frame: FrameFn) -> str:
        for _ in range(count):
            time.sleep(seconds)
            on_frame(1)
        if fail:
            raise RuntimeError("decoder broke")
        return "outcome"

    return work


def timed(stream: Iterable[int | str]) -> list[tuple[float, int | str]]:
    return [(time.monotonic(), value) for value in stream]


def test_each_frame_is_reported_without_an_interval() -> None:
    assert list(stream_frames(frames_then(5, 0.01), every=0.0)) == [1, 1, 1, 1, 1, "outcome"]


def test_frames_are_summed_over_the_interval() -> None:
    """40 frames of 5 ms (0.2 s) with a 50 ms interval: a handful of reports, none closer
    together than the interval (within the scheduler's slack), every frame counted."""
    started = time.monotonic()
    reports = timed(stream_frames(frames_then(40, 0.005), every=0.05))
    counts = [value for _, value in reports[:-1] if isinstance(value, int)]
    assert reports[-1][1] == "outcome" and len(counts) == len(reports) - 1 and sum(counts) == 40
    assert 2 <= len(counts) <= 8, counts  # per frame it would be 40
    times = [started] + [t for t, _ in reports[:-2]]  # the last count comes at the end
    assert min(b - a for a, b in zip(times, times[1:])) >= 0.04, times


def test_frames_left_at_the_end_are_reported_before_the_result() -> None:
    assert list(stream_frames(frames_then(3, 0.001), every=10.0)) == [3, "outcome"]


def test_an_error_in_the_work_reaches_the_consumer_after_its_frames() -> None:
    stream = stream_frames(frames_then(2, 0.001, fail=True), every=10.0)
    assert next(stream) == 2
    with pytest.raises(RuntimeError, match="decoder broke"):
        next(stream)
