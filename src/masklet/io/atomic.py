"""Atomic output files: write to a temporary file beside the target, then rename.

An interrupted run never leaves a half-written file under the final name, and an existing file
is only replaced once the new one is complete.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import TypeVar


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path in the target's folder; rename it to `path` on success.

    The temporary name keeps the target's suffix so encoders that pick a format from the
    extension (PIL, PyAV) still work. On any exception the temporary file is removed.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(
        prefix=f".{target.stem}.", suffix=f".partial{target.suffix}", dir=target.parent
    )
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        # mkstemp creates 0600 files; give the output the permissions a plain open() would
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            tmp.unlink()


_P = TypeVar("_P", bound="Publishing")


class Publishing:
    """A context manager for outputs published on success: leaving the block normally calls
    `close()` (finish and move under the final name), leaving it with an exception calls
    `discard(error)` (nothing is left under the final name)."""

    def close(self) -> None:
        raise NotImplementedError

    def discard(self, error: BaseException) -> None:
        raise NotImplementedError

    def __enter__(self: _P) -> _P:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if exc is not None:
            self.discard(exc)
        else:
            self.close()
