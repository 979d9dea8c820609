"""A tqdm progress bar as a pipeline progress callback (a bar on a terminal, silence in pipes
and logs)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from masklet.pipelines.control import Progress, ProgressFn


@contextmanager
def progress_bar(desc: str, unit: str, total: int | None = None) -> Iterator[ProgressFn]:
    """Yields a callback that moves the bar to each `Progress` (its total may grow)."""
    from tqdm import tqdm

    with tqdm(total=total, unit=unit, desc=desc, file=sys.stderr, disable=None,
              dynamic_ncols=True) as bar:  # fmt: skip

        def update(step: Progress) -> None:
            if step.total != bar.total:
                bar.total = step.total
            bar.set_postfix(objects=step.objects, refresh=False)
            bar.update(step.done - bar.n)

        yield update
