"""`FrameImageSink`: one rendered image per output frame (`frame_00000.webp`, ...), as
Replicate's sam-2-video returns when `output_video` is false."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from masklet.errors import InvalidInputError
from masklet.io.images import write_image
from masklet.io.overlay import render_mask_type
from masklet.io.records import FrameProvider, FrameRecord
from masklet.io.sinks import FrameSink, check_interval

FRAME_IMAGE_NAME = "frame_{:05d}.{}"


class FrameImageSink(FrameSink):
    """The source frame with its masks rendered (`mask_type`), one file per written frame.

    Images are staged in a hidden folder beside `folder` and moved in by `close()`, so an
    interrupted run adds nothing to `folder`. Results may come in any order."""

    def __init__(
        self,
        folder: str | os.PathLike[str],
        source: FrameProvider,
        *,
        mask_type: str = "highlighted",
        image_format: str = "png",
        quality: int = 95,
        output_frame_interval: int = 1,
    ) -> None:
        self.folder = Path(folder)
        if self.folder.exists() and not self.folder.is_dir():
            raise InvalidInputError(f"{str(self.folder)!r} is a file; give a folder for the frames")
        self.source = source
        self.mask_type = mask_type
        self.image_format = image_format
        self.quality = max(1, min(int(quality), 100))
        self.output_frame_interval = check_interval(output_frame_interval)
        self.written: set[int] = set()
        parent = self.folder.absolute().parent
        parent.mkdir(parents=True, exist_ok=True)
        self._staging: Path | None = Path(
            tempfile.mkdtemp(prefix=f".{self.folder.name}.", suffix=".partial", dir=parent)
        )

    @property
    def outputs(self) -> list[Path]:
        return [self.path_of(i) for i in sorted(self.written)]

    def path_of(self, frame_idx: int) -> Path:
        return self.folder / FRAME_IMAGE_NAME.format(frame_idx, self.image_format)

    def write(self, result: FrameRecord) -> None:
        if self._staging is None:
            raise InvalidInputError(f"cannot write to {str(self.folder)!r}: the sink is closed")
        if not self.wants(result.frame_idx):
            return
        image = render_mask_type(
            self.source.get(result.frame_idx), result.masks(), self.mask_type,
            colors=result.colors(),
        )  # fmt: skip
        write_image(self._staging / self.path_of(result.frame_idx).name, image, self.quality)
        self.written.add(result.frame_idx)

    def close(self) -> None:
        if self._staging is None:
            return
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            for frame_idx in sorted(self.written):
                name = self.path_of(frame_idx).name
                os.replace(self._staging / name, self.folder / name)
        finally:
            self.abort()

    def abort(self) -> None:
        if self._staging is not None:
            shutil.rmtree(self._staging, ignore_errors=True)
            self._staging = None
