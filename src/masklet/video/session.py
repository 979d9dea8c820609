"""Typed state of one video session: objects, their prompts and their bounded memory bank.

Nothing the model can never read again is kept: tracked (non-conditioning) outputs outside the
memory window are pruned, image features live in a small LRU cache, and frames are decoded on
demand by the frame source. RSS therefore stays flat however long the video is.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from masklet.modeling.outputs import FrameOutput, ImageFeatures
from masklet.transforms import normalize, uint8_to_unit
from masklet.video.frames import FrameSource

PointInputs = tuple[Tensor, Tensor]  # coords [1, P, 2] in model-input pixels, labels [1, P]


@dataclass
class ObjectTrack:
    """One tracked object: its prompts and its memory bank (all tensors have batch size 1).

    cond: outputs of prompted (conditioning) frames, always kept.
    non_cond: outputs of tracked frames, pruned to the memory window.
    pending_cond / pending_non_cond: outputs of clicks not yet written into the memory (the
        memory encoder runs on them when propagation starts), split like the reference.
    tracked: frame -> whether it was last tracked in reverse.
    """

    obj_id: int
    name: str
    point_inputs: dict[int, PointInputs] = field(default_factory=dict)
    mask_inputs: dict[int, Tensor] = field(default_factory=dict)
    cond: dict[int, FrameOutput] = field(default_factory=dict)
    non_cond: dict[int, FrameOutput] = field(default_factory=dict)
    pending_cond: dict[int, FrameOutput] = field(default_factory=dict)
    pending_non_cond: dict[int, FrameOutput] = field(default_factory=dict)
    tracked: dict[int, bool] = field(default_factory=dict)

    def pending(self, is_cond: bool) -> dict[int, FrameOutput]:
        return self.pending_cond if is_cond else self.pending_non_cond

    def output_at(self, frame_idx: int, is_cond: bool) -> FrameOutput | None:
        """The newest output of this frame: a pending click first, then the memory bank."""
        return (
            self.pending(is_cond).get(frame_idx)
            or self.cond.get(frame_idx)
            or self.non_cond.get(frame_idx)
        )

    def prompted_frames(self) -> set[int]:
        return set(self.point_inputs) | set(self.mask_inputs)

    def clear_results(self) -> None:
        for d in (self.point_inputs, self.mask_inputs, self.cond, self.non_cond):
            d.clear()
        self.pending_cond.clear()
        self.pending_non_cond.clear()
        self.tracked.clear()


def frame_to_tensor(frame: np.ndarray, image_size: int) -> Tensor:
    """[H, W, 3] uint8 RGB -> [3, S, S] normalised model input, the way SAM 2 loads video
    frames (PIL resize to S x S with its default bicubic filter, rounded to uint8), so video
    results equal the reference's on the same frames."""
    resized = np.array(Image.fromarray(frame).resize((image_size, image_size)))
    x = uint8_to_unit(torch.from_numpy(resized).permute(2, 0, 1))  # [H, W, 3] -> [3, S, S]
    return normalize(x)


class FeatureCache:
    """Bounded LRU of per-frame image features (batch size 1)."""

    def __init__(self, compute: Callable[[int], ImageFeatures], capacity: int = 2) -> None:
        self._compute = compute
        self.capacity = max(1, capacity)
        self._items: OrderedDict[int, ImageFeatures] = OrderedDict()

    def get(self, frame_idx: int) -> ImageFeatures:
        if frame_idx in self._items:
            self._items.move_to_end(frame_idx)
            return self._items[frame_idx]
        feats = self._compute(frame_idx)
        self._items[frame_idx] = feats
        while len(self._items) > self.capacity:
            self._items.popitem(last=False)
        return feats

    def __len__(self) -> int:
        return len(self._items)

    def clear(self) -> None:
        self._items.clear()


@dataclass
class VideoSession:
    """Everything one video's tracking needs (replaces the reference's dict of dicts)."""

    source: FrameSource
    features: FeatureCache
    # non-conditioning outputs farther than this from the tracking frontier and from every
    # prompted frame of any object are dropped (None keeps everything, as the reference does)
    memory_window: int | None
    objects: dict[int, ObjectTrack] = field(default_factory=dict)
    names: dict[int, str] = field(default_factory=dict)
    # the memory position encoding is the same for every frame and object: stored once
    memory_pos: Tensor | None = None

    @property
    def num_frames(self) -> int | None:
        return self.source.num_frames

    @property
    def height(self) -> int:
        return self.source.height

    @property
    def width(self) -> int:
        return self.source.width

    @property
    def fps(self) -> float:
        return self.source.fps

    @property
    def obj_ids(self) -> list[int]:
        return list(self.objects)

    def add_frame(self, frame: np.ndarray) -> int:
        """Append a frame to a live source (camera / stream); returns its index."""
        add = getattr(self.source, "add_frame", None)
        if add is None:
            from masklet.errors import InvalidInputError

            raise InvalidInputError(
                "add_frame needs a live session: init_state(LiveSource(...)) or init_state(None)"
            )
        return int(add(frame))

    def prune(self, frontier: int) -> None:
        """Drop tracked outputs the memory can no longer read (see `memory_window`)."""
        if self.memory_window is None:
            return
        w = self.memory_window
        # A propagation may start again at the frontier or at ANY object's prompted frame (the
        # default start is the first prompted frame over all objects), and its first frames read
        # every object's tracked outputs up to `w` frames on the side it comes from (e.g.
        # backward from frame s reads s+1, s+2, ... of the objects not prompted on s). So the
        # anchors are the prompted frames of every object, not only the object's own: with
        # per-object anchors, object 1 (prompted on 0) lost frames 6..8 after a forward pass,
        # which a backward pass from object 2's prompt on frame 5 reads.
        prompted = {t for track in self.objects.values() for t in track.cond}
        anchors = [frontier, *sorted(prompted)]
        for track in self.objects.values():
            stale = [t for t in track.non_cond if all(abs(t - a) > w for a in anchors)]
            for t in stale:
                del track.non_cond[t]

    def stored_outputs(self) -> int:
        """How many per-frame outputs the memory bank holds (for tests and benchmarks)."""
        return sum(len(t.cond) + len(t.non_cond) for t in self.objects.values())
