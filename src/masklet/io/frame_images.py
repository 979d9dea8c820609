"""`FrameImageSink`: one rendered image per output frame (`frame_00000.webp`, ...), as
Replicate's sam-2-video returns when `output_video` is false."""

from __future__ import annotations

import os
from pathlib import Path

from masklet.io.images import write_image
from masklet.io.overlay import render_mask_type
from masklet.io.records import FrameProvider, FrameRecord
from masklet.io.sinks import FolderSink

FRAME_IMAGE_NAME = "frame_{:05d}.{}"


class FrameImageSink(FolderSink):
    """The source frame with its masks rendered (`mask_type`), one file per written frame
    (staged and published like every folder sink)."""

    what = "frame images"

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
        super().__init__(folder, output_frame_interval)
        self.source = source
        self.mask_type = mask_type
        self.image_format = image_format
        self.quality = max(1, min(int(quality), 100))

    @property
    def outputs(self) -> list[Path]:
        return [self.path_of(i) for i in sorted(self.written)]

    def file_name(self, frame_idx: int) -> str:
        return FRAME_IMAGE_NAME.format(frame_idx, self.image_format)

    def write_file(self, path: Path, result: FrameRecord) -> None:
        image = render_mask_type(
            self.source.get(result.frame_idx), result.masks(), self.mask_type,
            colors=result.colors(),
        )  # fmt: skip
        write_image(path, image, self.quality)
