"""End-to-end parity of `ImagePredictor` with the reference `SAM2ImagePredictor`."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sam2.sam2_image_predictor import SAM2ImagePredictor  # noqa: E402

from masklet.config import ModelConfig
from masklet.image_predictor import ImagePredictor
from masklet.modeling.sam2 import build_model
from tests.parity.reference import perturbed_state_dict, reference_model, small_config

ATOL = 1e-4


def _pair(cfg: ModelConfig, seed: int = 0) -> tuple[ImagePredictor, SAM2ImagePredictor]:
    ref = reference_model(cfg)
    sd = perturbed_state_dict(ref, seed)
    ref.load_state_dict(sd, strict=True)
    ours = build_model(cfg)
    ours.load_state_dict(sd, strict=True)
    ref_pred = SAM2ImagePredictor(ref)
    # the reference hard-codes the feature sizes of a 1024 input
    side = cfg.image_size // 4
    ref_pred._bb_feat_sizes = [(side, side), (side // 2, side // 2), (side // 4, side // 4)]
    return ImagePredictor(ours), ref_pred


def _image(h: int, w: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    img = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    img[h // 4 : h // 2, w // 3 : w // 2] = (250, 30, 30)  # a structured region
    return img


def _compare(ours: tuple, ref: tuple) -> float:
    worst = 0.0
    assert len(ours) == len(ref) > 0, (len(ours), len(ref))
    for a, b in zip(ours, ref, strict=True):
        assert a.shape == b.shape, (a.shape, b.shape)
        worst = max(worst, float(np.abs(a.astype(np.float64) - b.astype(np.float64)).max()))
    return worst


PROMPTS = {
    "point": dict(point_coords=[[120.0, 90.0]], point_labels=[1]),
    "points_negative": dict(
        point_coords=[[120.0, 90.0], [30.0, 40.0], [200, 150]], point_labels=[1, 0, 0]
    ),
    "box": dict(box=[40.0, 30.0, 210.0, 160.0]),
    "box_points": dict(
        box=[40.0, 30.0, 210.0, 160.0], point_coords=[[120.0, 90.0]], point_labels=[0]
    ),
    "batched_boxes": dict(box=[[40.0, 30.0, 210.0, 160.0], [5.0, 5.0, 60.0, 70.0]]),
}


@pytest.mark.parametrize("name", ModelConfig.names())
@pytest.mark.parametrize("multimask", [True, False])
def test_predict_matches_reference_all_variants(name: str, multimask: bool) -> None:
    cfg = small_config(name)
    ours, ref = _pair(cfg, seed=1)
    image = _image(180, 240)  # non-square
    with torch.inference_mode():
        ours.set_image(image)
        ref.set_image(image)
    assert torch.allclose(ours.get_image_embedding(), ref.get_image_embedding(), atol=ATOL)
    for kind, prompt in PROMPTS.items():
        with torch.inference_mode():
            a = ours.predict(**prompt, multimask_output=multimask, return_logits=True)
            b = ref.predict(**prompt, multimask_output=multimask, return_logits=True)
        assert _compare(a, b) <= ATOL, kind


def test_mask_input_and_thresholded_masks_match() -> None:
    cfg = small_config("sam2.1_hiera_tiny")
    ours, ref = _pair(cfg, seed=2)
    image = _image(200, 150, seed=3)
    ours.set_image(image)
    ref.set_image(image)
    prompt = dict(point_coords=[[70.0, 60.0]], point_labels=[1])
    a = ours.predict(**prompt)
    b = ref.predict(**prompt)
    assert _compare(a[1:], b[1:]) <= ATOL
    # binary masks agree except where a logit sits within float noise of the threshold
    assert (a[0] != b[0]).mean() < 1e-4
    best = int(np.argmax(a[1]))
    logits = a[2][best : best + 1]
    a2 = ours.predict(**prompt, mask_input=logits, multimask_output=False, return_logits=True)
    b2 = ref.predict(**prompt, mask_input=logits, multimask_output=False, return_logits=True)
    assert _compare(a2, b2) <= ATOL


def test_object_scores_match_reference_decoder() -> None:
    cfg = small_config("sam2.1_hiera_small")
    ours, ref = _pair(cfg, seed=4)
    image = _image(160, 160, seed=5)
    ours.set_image(image)
    ref.set_image(image)
    full = ours.predict_full(point_coords=[[50.0, 50.0]], point_labels=[1])
    with torch.inference_mode():
        coords = torch.tensor([[[50.0, 50.0]]]) / 160 * cfg.image_size
        sparse, dense = ref.model.sam_prompt_encoder(
            points=(coords, torch.ones(1, 1, dtype=torch.int32)), boxes=None, masks=None
        )
        feats = ref._features
        _, _, _, ref_scores = ref.model.sam_mask_decoder(
            image_embeddings=feats["image_embed"],
            image_pe=ref.model.sam_prompt_encoder.get_dense_pe(),
            sparse_prompt_embeddings=sparse,
            dense_prompt_embeddings=dense,
            multimask_output=True,
            repeat_image=False,
            high_res_features=feats["high_res_feats"],
        )
    assert torch.allclose(full.object_scores, ref_scores, atol=ATOL)


def test_batch_api_matches_reference() -> None:
    cfg = small_config("sam2_hiera_base_plus")
    ours, ref = _pair(cfg, seed=6)
    images = [_image(120, 200, seed=7), _image(256, 100, seed=8)]
    ours.set_image_batch(images)
    ref.set_image_batch(images)
    kwargs = dict(
        point_coords_batch=[np.array([[50.0, 40.0]]), np.array([[20.0, 200.0]])],
        point_labels_batch=[np.array([1]), np.array([1])],
        box_batch=[None, np.array([5.0, 100.0, 90.0, 250.0])],
        return_logits=True,
    )
    a = ours.predict_batch(**kwargs)
    b = ref.predict_batch(**kwargs)
    # (masks, scores, logits) per image: every list as long as the reference's
    assert len(a) == len(b) == 3
    for la, lb in zip(a, b, strict=True):
        assert len(la) == len(lb) == len(images)
        for x, y in zip(la, lb, strict=True):
            assert x.shape == y.shape
            assert np.abs(x - y).max() <= ATOL


@pytest.mark.slow
def test_real_size_tiny_1024_matches_reference() -> None:
    cfg = ModelConfig.named("sam2.1_hiera_tiny")
    ours, ref = _pair(cfg, seed=9)
    image = _image(480, 640, seed=10)
    ours.set_image(image)
    ref.set_image(image)
    for prompt in (PROMPTS["point"], PROMPTS["box_points"]):
        a = ours.predict(**prompt, return_logits=True)
        b = ref.predict(**prompt, return_logits=True)
        assert _compare(a, b) <= ATOL
