"""Per-frame results of video tracking, as produced (sinks consume them one by one)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from torch import Tensor


@dataclass
class FrameResult:
    """Masks of every object on one frame.

    mask_logits: [N, 1, H, W] logits at the video's size (N = len(obj_ids)).
    object_scores: [N, 1] "object visible" logits.
    names: object id -> name.
    """

    frame_idx: int
    obj_ids: list[int]
    mask_logits: Tensor
    object_scores: Tensor
    names: dict[int, str] = field(default_factory=dict)

    def masks(self, threshold: float = 0.0) -> dict[int, np.ndarray]:
        """Object id -> [H, W] bool mask."""
        binary = (self.mask_logits[:, 0] > threshold).cpu().numpy()
        return {obj_id: binary[i] for i, obj_id in enumerate(self.obj_ids)}

    def scores(self) -> dict[int, float]:
        """Object id -> probability that the object is visible."""
        probs = self.object_scores.float().sigmoid().flatten().cpu().tolist()
        return dict(zip(self.obj_ids, probs))

    def name(self, obj_id: int) -> str:
        return self.names.get(obj_id, f"object_{obj_id}")
