"""`Spool`: byte records parked on disk, keyed by frame index (bounded RAM for out-of-order
results)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import IO


class Spool:
    """Byte records keyed by frame index, parked in an unnamed temporary file.

    Only the index `frame -> (offset, length)` lives in RAM. The file has no name on disk
    (deleted on creation where the OS allows), so a crash leaves nothing behind.
    """

    def __init__(self, folder: Path | None = None) -> None:
        self._file: IO[bytes] = tempfile.TemporaryFile(dir=folder)
        self._index: dict[int, tuple[int, int]] = {}

    def put(self, key: int, data: bytes) -> None:
        self._file.seek(0, os.SEEK_END)
        self._index[key] = (self._file.tell(), len(data))
        self._file.write(data)

    def get(self, key: int) -> bytes:
        offset, length = self._index[key]
        self._file.seek(offset)
        return self._file.read(length)

    def pop(self, key: int) -> bytes:
        data = self.get(key)
        del self._index[key]
        return data

    def __contains__(self, key: int) -> bool:
        return key in self._index

    def __len__(self) -> int:
        return len(self._index)

    def keys(self) -> list[int]:
        return sorted(self._index)

    def close(self) -> None:
        self._file.close()
