"""Pure preprocessing steps: image -> normalised model input, prompts -> model coordinates,
low-resolution mask logits -> original resolution.

SAM 2 squashes every image to a square `image_size x image_size` input (no padding, the aspect
ratio is not kept), so prompt coordinates are scaled by `image_size / w` and `image_size / h`
independently. The resize is torch's bilinear interpolation with antialiasing, which is what
torchvision's `Resize` calls on tensors; using it directly keeps torchvision out of run time
while producing the same numbers.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from masklet.errors import InvalidInputError, InvalidPromptError
from masklet.modeling.logits import MASK_LOGIT

# ImageNet statistics the Hiera trunk was trained with (RGB order, on [0, 1] pixel values).
MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)

_UINT8_MAX = 255.0


def normalize(pixels: torch.Tensor) -> torch.Tensor:
    """RGB pixels in [0, 1], channels at dim -3 (`[..., 3, H, W]`), normalised with `MEAN` /
    `STD` on their own device and dtype: the one place the model's input statistics apply."""
    mean = torch.tensor(MEAN, dtype=pixels.dtype, device=pixels.device).view(3, 1, 1)
    std = torch.tensor(STD, dtype=pixels.dtype, device=pixels.device).view(3, 1, 1)
    return (pixels - mean) / std


def uint8_to_unit(pixels: torch.Tensor) -> torch.Tensor:
    """uint8 pixel values as floats in [0, 1]."""
    return pixels.float() / _UINT8_MAX


def mask_to_logits(mask: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """A binary mask [H, W] as low-res mask-prompt logits [1, h, w]: +-MASK_LOGIT, resized
    with antialiasing (so values in between around the boundary)."""
    m = torch.from_numpy(np.asarray(mask, dtype=np.float32))[None, None]  # [1, 1, H, W]
    m = F.interpolate(m, size=size, mode="bilinear", align_corners=False, antialias=True)
    return ((m[0] * 2 - 1) * MASK_LOGIT).numpy()


def _image_array(image: np.ndarray | Image.Image) -> np.ndarray:
    """Validate an input image and return it as an `[H, W, 3]` uint8 array."""
    if isinstance(image, Image.Image):
        # The predictor always feeds three channels; convert grayscale / RGBA / palette here so
        # PIL inputs behave like the arrays `read_image` returns.
        image = np.asarray(image.convert("RGB"))
    if not isinstance(image, np.ndarray):
        raise InvalidInputError(
            f"expected an image as a numpy array or PIL image, got {type(image).__name__}; "
            "read files with masklet.io.images.read_image"
        )
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise InvalidInputError(
            "expected an RGB image array of shape [H, W, 3] and dtype uint8, got shape "
            f"{tuple(image.shape)} and dtype {image.dtype}; convert it (e.g. with "
            "masklet.io.images.read_image) before calling the model"
        )
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise InvalidInputError(f"the image is empty (shape {tuple(image.shape)})")
    return image


def image_to_tensor(
    image: np.ndarray | Image.Image,
    image_size: int,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Turn an RGB image into the normalised square model input.

    Arguments:
      image: `[H, W, 3]` uint8 RGB array, or a PIL image (converted to RGB).
      image_size: side S of the square model input.
      device: where to resize; the result lives there. Defaults to the CPU.

    Returns:
      `[3, S, S]` float32: pixels / 255, resized to (S, S) bilinearly with antialiasing
      (aspect ratio not kept), then normalised with `MEAN` / `STD`.
    """
    array = _image_array(image)
    # torch needs a writable, contiguous buffer; copy only when the input is not one
    x = torch.from_numpy(np.require(array, requirements=["C", "W"])).to(device)
    x = x.permute(2, 0, 1).unsqueeze(0).float() / _UINT8_MAX  # [H, W, 3] -> [1, 3, H, W]
    x = F.interpolate(
        x, size=(image_size, image_size), mode="bilinear", align_corners=False, antialias=True
    )
    return normalize(x).squeeze(0)  # [1, 3, S, S] -> [3, S, S]


def images_to_batch(
    images: Sequence[np.ndarray | Image.Image],
    image_size: int,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """`image_to_tensor` on each image, stacked to `[B, 3, S, S]`. Sizes may differ."""
    if len(images) == 0:
        raise InvalidInputError("expected at least one image in the batch, got an empty list")
    return torch.stack([image_to_tensor(im, image_size, device) for im in images], dim=0)


def transform_coords(
    coords: torch.Tensor,
    orig_hw: tuple[int, int] | None,
    image_size: int,
    normalize: bool = True,
) -> torch.Tensor:
    """Map prompt points to the coordinates of the square model input.

    Arguments:
      coords: `[..., 2]` (x, y) points.
      orig_hw: (height, width) of the original image; needed only when `normalize` is True.
      image_size: side S of the model input.
      normalize: True when `coords` are pixels of the original image (x is divided by its
        width and y by its height first); False when they are already relative, in [0, 1].
        Same meaning as the reference predictor's `normalize_coords`.

    Returns:
      `[..., 2]` float points in model-input pixels, `relative * S`.
    """
    if coords.shape[-1:] != (2,):
        raise InvalidPromptError(
            f"expected points with 2 values (x, y) in the last dimension, got shape "
            f"{tuple(coords.shape)}"
        )
    coords = coords.float()
    if normalize:
        if orig_hw is None:
            raise InvalidInputError(
                "orig_hw (height, width) is required to normalise pixel coordinates; pass it, "
                "or normalize=False if the coordinates are already relative"
            )
        h, w = orig_hw
        # divide (not multiply by 1/w) so results match the reference to the last bit
        size_xy = torch.tensor([w, h], dtype=coords.dtype, device=coords.device)
        coords = coords / size_xy
    return coords * image_size


def transform_boxes(
    boxes: torch.Tensor,
    orig_hw: tuple[int, int] | None,
    image_size: int,
    normalize: bool = True,
) -> torch.Tensor:
    """Map (x0, y0, x1, y1) boxes to model-input coordinates as pairs of corner points.

    Arguments:
      boxes: `[..., 4]` boxes; see `transform_coords` for `orig_hw` and `normalize`.

    Returns:
      `[..., 2, 2]` corners (top-left, bottom-right), each (x, y), which is how the prompt
      encoder consumes boxes. (The reference flattens leading dims to `[N, 2, 2]`; for the usual
      `[N, 4]` input the two agree.)
    """
    if boxes.shape[-1:] != (4,):
        raise InvalidPromptError(
            f"expected boxes with 4 values (x0, y0, x1, y1) in the last dimension, got shape "
            f"{tuple(boxes.shape)}"
        )
    corners = boxes.reshape(*boxes.shape[:-1], 2, 2)  # [..., 4] -> [..., 2, 2]
    return transform_coords(corners, orig_hw, image_size, normalize)


def upscale_masks(masks: torch.Tensor, orig_hw: tuple[int, int]) -> torch.Tensor:
    """Resize mask logits to the original image size.

    Arguments:
      masks: `[B, M, h, w]` logits (low-resolution decoder output).
      orig_hw: (H, W) of the original image.

    Returns:
      `[B, M, H, W]` float logits, bilinear with `align_corners=False` (no antialiasing, as in
      the reference; the masks are upsampled, never shrunk, in normal use).
    """
    if masks.dim() != 4:
        raise InvalidInputError(
            f"expected mask logits of shape [B, M, h, w], got shape {tuple(masks.shape)}"
        )
    return F.interpolate(masks.float(), size=tuple(orig_hw), mode="bilinear", align_corners=False)
