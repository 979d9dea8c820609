"""Preprocessing equals the reference's SAM2Transforms (torchvision) and SAM2ImagePredictor."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from masklet.errors import InvalidInputError, InvalidPromptError
from masklet.transforms import (
    MEAN,
    STD,
    image_to_tensor,
    images_to_batch,
    transform_boxes,
    transform_coords,
    upscale_masks,
)

PARITY_TOLERANCE = 1e-5


@pytest.fixture(scope="module")
def reference_transforms():
    pytest.importorskip("torchvision")
    sam2_transforms = pytest.importorskip("sam2.utils.transforms")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.jit.script deprecation inside the reference
        return {size: sam2_transforms.SAM2Transforms(size, 0.0) for size in (256, 1024)}


def _random_image(h: int, w: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


# 480x640 and 333x517 are shrunk for S=256 and enlarged (333x517) or mixed (480x640) for 1024;
# 100x60 is enlarged for both sizes.
@pytest.mark.parametrize("hw", [(480, 640), (333, 517), (100, 60)])
@pytest.mark.parametrize("size", [256, 1024])
def test_image_to_tensor_matches_reference(reference_transforms, hw, size):
    image = _random_image(*hw)
    expected = reference_transforms[size](image)
    got = image_to_tensor(image, size)
    assert got.shape == (3, size, size) and got.dtype == torch.float32
    max_diff = (got - expected).abs().max().item()
    assert max_diff <= PARITY_TOLERANCE, f"max abs diff {max_diff}"


def test_batch_matches_reference(reference_transforms):
    images = [_random_image(480, 640, 1), _random_image(333, 517, 2)]
    expected = reference_transforms[256].forward_batch(images)
    got = images_to_batch(images, 256)
    assert got.shape == (2, 3, 256, 256)
    assert (got - expected).abs().max().item() <= PARITY_TOLERANCE


def test_pil_input_equals_array_input():
    image = _random_image(40, 30)
    from_pil = image_to_tensor(Image.fromarray(image), 64)
    assert torch.equal(from_pil, image_to_tensor(image, 64))
    gray = Image.fromarray(image[..., 0])  # mode "L" is converted to RGB
    assert image_to_tensor(gray, 64).shape == (3, 64, 64)


def test_constant_image_normalised_per_channel():
    image = np.full((7, 9, 3), 255, dtype=np.uint8)
    out = image_to_tensor(image, 16)
    expected = (1.0 - torch.tensor(MEAN)) / torch.tensor(STD)
    torch.testing.assert_close(out[:, 5, 5], expected)


@pytest.mark.parametrize(
    "bad",
    [
        np.zeros((4, 4), dtype=np.uint8),
        np.zeros((4, 4, 4), dtype=np.uint8),
        np.zeros((4, 4, 3), dtype=np.float32),
        np.zeros((0, 4, 3), dtype=np.uint8),
        [[1, 2, 3]],
    ],
)
def test_bad_images_raise(bad):
    with pytest.raises(InvalidInputError):
        image_to_tensor(bad, 32)


def test_empty_batch_raises():
    with pytest.raises(InvalidInputError, match="at least one image"):
        images_to_batch([], 32)


def test_transform_coords_pixels_and_relative():
    coords = torch.tensor([[[320.0, 240.0], [0.0, 480.0]]])  # [1, 2, 2] in a 480x640 image
    got = transform_coords(coords, (480, 640), 1024)
    torch.testing.assert_close(got, torch.tensor([[[512.0, 512.0], [0.0, 1024.0]]]))
    relative = torch.tensor([[0.25, 0.75]])
    torch.testing.assert_close(
        transform_coords(relative, None, 1024, normalize=False), torch.tensor([[256.0, 768.0]])
    )


def test_transform_coords_and_boxes_match_reference(reference_transforms):
    tr = reference_transforms[1024]
    coords = torch.rand(3, 5, 2) * torch.tensor([517.0, 333.0])
    boxes = torch.rand(4, 4) * 500
    for normalize in (True, False):
        expected_c = tr.transform_coords(coords, normalize=normalize, orig_hw=(333, 517))
        got_c = transform_coords(coords, (333, 517), 1024, normalize=normalize)
        assert torch.equal(got_c, expected_c)
        expected_b = tr.transform_boxes(boxes, normalize=normalize, orig_hw=(333, 517))
        got_b = transform_boxes(boxes, (333, 517), 1024, normalize=normalize)
        assert got_b.shape == (4, 2, 2)
        assert torch.equal(got_b, expected_b)


def test_transform_boxes_keeps_leading_dims():
    boxes = torch.tensor([[[0.0, 0.0, 100.0, 50.0]]])  # [1, 1, 4]
    got = transform_boxes(boxes, (50, 100), 10)
    assert got.shape == (1, 1, 2, 2)
    torch.testing.assert_close(got[0, 0], torch.tensor([[0.0, 0.0], [10.0, 10.0]]))


def test_coordinate_errors():
    with pytest.raises(InvalidPromptError):
        transform_coords(torch.zeros(2, 3), (10, 10), 64)
    with pytest.raises(InvalidPromptError):
        transform_boxes(torch.zeros(2, 2), (10, 10), 64)
    with pytest.raises(InvalidInputError, match="orig_hw"):
        transform_coords(torch.zeros(2, 2), None, 64)


def test_upscale_masks_matches_bilinear_and_reference_shape():
    masks = torch.randn(2, 3, 16, 16)
    got = upscale_masks(masks, (33, 47))
    assert got.shape == (2, 3, 33, 47)
    expected = F.interpolate(masks, (33, 47), mode="bilinear", align_corners=False)
    assert torch.equal(got, expected)
    with pytest.raises(InvalidInputError):
        upscale_masks(torch.zeros(3, 16, 16), (32, 32))


def test_upscale_masks_matches_reference_postprocess(reference_transforms):
    masks = torch.randn(1, 3, 64, 64)
    expected = reference_transforms[256].postprocess_masks(masks, (120, 90))
    assert torch.equal(upscale_masks(masks, (120, 90)), expected)


def test_mask_to_logits_gives_confident_prompt_logits() -> None:
    from masklet.modeling.logits import MASK_LOGIT
    from masklet.transforms import mask_to_logits

    mask = np.zeros((64, 64), bool)
    mask[:, :32] = True  # left half
    logits = mask_to_logits(mask, (16, 16))
    assert logits.shape == (1, 16, 16)
    assert np.allclose(logits[0, :, :7], MASK_LOGIT) and np.allclose(logits[0, :, 9:], -MASK_LOGIT)
    assert ((logits[0] > 0) == mask[::4, ::4]).all()  # thresholding gives the mask back
    assert np.allclose(mask_to_logits(np.ones((8, 8), bool), (4, 4)), MASK_LOGIT)


def test_normalize_uses_the_trunks_statistics_on_any_batch_shape() -> None:
    from masklet.transforms import MEAN, STD, normalize

    pixels = torch.rand(2, 3, 4, 5, dtype=torch.float64)
    out = normalize(pixels)
    for c in range(3):
        expected = (pixels[:, c] - MEAN[c]) / STD[c]
        torch.testing.assert_close(out[:, c], expected)
    assert out.dtype == torch.float64 and normalize(pixels[0]).shape == (3, 4, 5)
