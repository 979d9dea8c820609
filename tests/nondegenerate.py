"""Checks that masks about to be compared carry information (shared by the comparison tests).

Two empty masks are equal, and so are two copies of one mask: a comparison of such masks
proves nothing. Each comparison test calls one of these on what it compares first.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch

ArrayLike = np.ndarray | torch.Tensor


def _binary(mask: ArrayLike) -> np.ndarray:
    array = mask.detach().cpu().numpy() if isinstance(mask, torch.Tensor) else np.asarray(mask)
    return array > 0 if array.dtype != bool else array


def assert_informative(
    frames: Mapping[int, Mapping[int, ArrayLike]] | Mapping[int, Sequence[ArrayLike]],
    *,
    min_pixels: int = 1,
    distinct_frames: bool = True,
) -> None:
    """`frames`: frame -> object -> mask (logits > 0 or booleans, any shape).

    Every object is non-empty (at least `min_pixels` pixels) on every frame, objects differ
    from each other on every frame, and (`distinct_frames`) some frame differs from the first.
    """
    assert frames, "nothing to compare: no frames"
    first: list[np.ndarray] | None = None
    moved = False
    for frame, objects in frames.items():
        items = list(objects.items()) if isinstance(objects, Mapping) else list(enumerate(objects))
        assert items, f"frame {frame}: no objects"
        masks = [_binary(m) for _, m in items]
        for (obj, _), mask in zip(items, masks, strict=True):
            assert int(mask.sum()) >= min_pixels, (
                f"frame {frame}, object {obj}: {int(mask.sum())} pixels (< {min_pixels}); "
                "a comparison of empty masks proves nothing"
            )
        for i in range(len(masks)):
            for j in range(i + 1, len(masks)):
                assert not np.array_equal(masks[i], masks[j]), (
                    f"frame {frame}: objects {items[i][0]} and {items[j][0]} have equal masks"
                )
        if first is None:
            first = masks
        elif len(masks) != len(first) or any(
            not np.array_equal(a, b) for a, b in zip(masks, first, strict=False)
        ):
            moved = True
    if distinct_frames and len(frames) > 1:
        assert moved, "every frame has the same masks: the comparison cannot see tracking"
