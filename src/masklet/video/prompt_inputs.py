"""Validation and normalisation of click / box prompts for the video predictor."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

from masklet.errors import InvalidPromptError
from masklet.modeling.prompt_encoder import BOX_BOTTOM_RIGHT_LABEL, BOX_TOP_LEFT_LABEL
from masklet.prompt_rules import check_label_values, check_model_points

BOX_LABELS = (BOX_TOP_LEFT_LABEL, BOX_BOTTOM_RIGHT_LABEL)  # a box as two corner points


def clicks_and_box(
    points: np.ndarray | Tensor | Sequence[Sequence[float]] | None,
    labels: np.ndarray | Tensor | Sequence[int] | None,
    box: np.ndarray | Tensor | Sequence[float] | None,
    clear_old_points: bool,
) -> tuple[Tensor, Tensor]:
    """Clicks [N, 2] with labels [N] and an optional box as one prompt: (coords [P, 2],
    labels [P]) with the box's corners first, as SAM 2 orders them."""
    if (points is None) != (labels is None):
        raise InvalidPromptError("points and labels must be given together")
    if points is None and box is None:
        raise InvalidPromptError("give points with labels, or a box (or both)")
    coords = (
        torch.zeros(0, 2)
        if points is None
        else torch.as_tensor(np.asarray(points), dtype=torch.float32).reshape(-1, 2)
    )
    labs = (
        torch.zeros(0, dtype=torch.int32)
        if labels is None
        else torch.as_tensor(np.asarray(labels)).to(torch.int32).reshape(-1)
    )
    if coords.shape[0] != labs.shape[0]:
        raise InvalidPromptError(f"{coords.shape[0]} points but {labs.shape[0]} labels")
    check_label_values(labs.numpy(), allow_padding=False)  # one object per call: no padding
    if box is not None:
        if not clear_old_points:
            raise InvalidPromptError(
                "a box must come before any click on a frame: pass clear_old_points=True"
            )
        b = torch.as_tensor(np.asarray(box), dtype=torch.float32).reshape(-1)
        if b.numel() != 4 or b[2] < b[0] or b[3] < b[1]:
            raise InvalidPromptError(
                f"a box is x1, y1, x2, y2 with x2 >= x1, y2 >= y1; got {b.tolist()}"
            )
        coords = torch.cat([b.reshape(2, 2), coords], dim=0)
        labs = torch.cat([torch.tensor(BOX_LABELS, dtype=torch.int32), labs], dim=0)
    return coords, labs


def check_inside(coords: Tensor, width: int, height: int, normalize: bool) -> None:
    """Points [P, 2] must lie on the frame: [0, W] x [0, H] pixels, or [0, 1] if relative."""
    check_model_points(coords.numpy(), width, height, normalize, surface="frame")
