"""Typed requests: everything one image or video job needs, whichever front end built it.

The CLI builds them from argparse, the server from HTTP bodies, batch work from manifest lines.
Prompts are `masklet.prompts.ObjectPrompt`s in the order the user gave them (their `where`
names the field each came from); `masklet.pipelines.validation` checks them all at once.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

from masklet.pipelines.limits import Limits
from masklet.prompts import ObjectPrompt
from masklet.text.detector import (
    DEFAULT_BOX_THRESHOLD,
    DEFAULT_NEW_OBJECT_IOU,
    DEFAULT_TEXT_THRESHOLD,
)

Direction = Literal["forward", "backward", "both"]
DIRECTIONS: tuple[str, ...] = ("forward", "backward", "both")
MASK_TYPES: tuple[str, ...] = ("binary", "highlighted", "greenscreen")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")
VIDEO_SUFFIXES = (".mp4", ".m4v", ".mov", ".mkv")  # containers that carry H.264 (+ audio)
FRAME_FORMATS = ("png", "jpg", "webp")


@dataclass(frozen=True)
class TextQuery:
    """A text prompt ("a dog. a red car.") for GroundingDINO: every box it finds becomes an
    object named after its phrase. On video, `redetect_every` N frames looks for new ones (a
    box overlapping a tracked object by less than `new_object_iou` is new)."""

    text: str
    box_threshold: float = DEFAULT_BOX_THRESHOLD
    text_threshold: float = DEFAULT_TEXT_THRESHOLD
    max_objects: int | None = None
    redetect_every: int | None = None
    new_object_iou: float = DEFAULT_NEW_OBJECT_IOU


@dataclass(frozen=True)
class EverythingQuery:
    """Segment everything (SAM 2's automatic mask generator, the reference's defaults): every
    region found becomes an object named `region_{k}`. On video, regions found on `frame`
    (default: the start frame) are tracked, and with `every` N frames, regions no tracked
    object covers become new objects. `max_objects` keeps the best-scored regions."""

    points_per_side: int = 32
    points_per_batch: int = 64
    pred_iou_thresh: float = 0.8
    stability_score_thresh: float = 0.95
    box_nms_thresh: float = 0.7
    crop_n_layers: int = 0
    min_mask_region_area: int = 0
    max_objects: int | None = None
    every: int | None = None
    frame: int | None = None

    def generator_config(self):  # type: ignore[no-untyped-def]
        from masklet.everything import MaskGeneratorConfig

        return MaskGeneratorConfig(
            points_per_side=self.points_per_side, points_per_batch=self.points_per_batch,
            pred_iou_thresh=self.pred_iou_thresh,
            stability_score_thresh=self.stability_score_thresh,
            box_nms_thresh=self.box_nms_thresh, crop_n_layers=self.crop_n_layers,
            min_mask_region_area=self.min_mask_region_area,
        )  # fmt: skip


@dataclass(frozen=True)
class ImageRequest:
    """Segment objects on one image.

    image: a file path or an `[H, W, 3]` uint8 RGB array.
    prompts: one entry per object (frame 0); entries with the same object id are merged.
    names: object id -> name for objects without one in their prompt.
    text: objects from a text prompt, numbered after the largest prompted id.
    multimask: pick the best of SAM 2's three candidate masks (else its single mask).
    """

    image: str | Path | np.ndarray
    prompts: Sequence[ObjectPrompt] = ()
    names: Mapping[int, str] = field(default_factory=dict)
    text: TextQuery | None = None
    everything: EverythingQuery | None = None
    multimask: bool = False
    limits: Limits = field(default_factory=Limits.generous)


@dataclass(frozen=True)
class ImageOutputs:
    """Files to write for an image (any may be None): an overlay (PNG/JPEG), an id PNG
    (DAVIS palette, pixel value = object id) and COCO RLE JSON."""

    overlay: Path | None = None
    id_png: Path | None = None
    json: Path | None = None


@dataclass(frozen=True)
class VideoOutputs:
    """What to write while tracking (at least one).

    overlay: an MP4/MOV/MKV of the whole video with the masks drawn (`mask_type`), at the
      source's timing (or `overlay_fps` frames per second), audio kept unless `keep_audio`
      is False.
    masks_dir: one DAVIS palette PNG per frame (`00000.png`), pixel value = object id.
    json: COCO RLE masks of every frame with scores and boxes.
    frames_dir: one image per output frame (`frame_00000.<frame_format>`), the overlay drawn.
    output_frame_interval: write every Nth frame only (Replicate's option).
    overlay_alpha: tint strength of "highlighted" masks, 0 (none) .. 1 (solid).
    """

    overlay: Path | None = None
    masks_dir: Path | None = None
    json: Path | None = None
    frames_dir: Path | None = None
    frame_format: str = "png"
    frame_quality: int = 95
    mask_type: str = "highlighted"
    output_frame_interval: int = 1
    overlay_fps: float | None = None
    overlay_alpha: float = 0.5
    keep_audio: bool = True

    @property
    def any(self) -> bool:
        return any(
            p is not None for p in (self.overlay, self.masks_dir, self.json, self.frames_dir)
        )


@dataclass(frozen=True)
class VideoRequest:
    """Track objects through a video.

    source: a video file, a folder of frames, or an open `FrameSource`.
    prompts: clicks, boxes and masks on any frames (one entry per object and frame, or more).
    start_frame: where tracking starts (default: the first prompted frame).
    max_frames: frames tracked beyond the start in each direction (default: to the end).
    fps: frame rate of a frame folder (or to override a file's).
    """

    source: object
    prompts: Sequence[ObjectPrompt] = ()
    names: Mapping[int, str] = field(default_factory=dict)
    text: TextQuery | None = None
    everything: EverythingQuery | None = None
    direction: Direction = "forward"
    start_frame: int | None = None
    max_frames: int | None = None
    fps: float | None = None
    outputs: VideoOutputs = field(default_factory=VideoOutputs)
    limits: Limits = field(default_factory=Limits.generous)
