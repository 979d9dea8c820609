"""Parity of the image encoder (Hiera trunk + FPN neck) with the reference `sam2==1.1.0`.

Both models get the same perturbed random weights (strict loading) and the same images; every
FPN level, every position encoding and the vision features must agree to 1e-4.
"""

from __future__ import annotations

import functools
from typing import Any

import pytest
import torch

from masklet.config import ModelConfig
from masklet.modeling.neck import BackboneOutput, ImageEncoder
from tests.parity.reference import (
    assert_close,
    perturbed_state_dict,
    reference_image_encoder,
    small_config,
)

ATOL = 1e-4
VARIANTS = ModelConfig.names()


@functools.cache
def _key_shapes(
    cfg: ModelConfig,
) -> tuple[dict[str, tuple[int, ...]], dict[str, tuple[int, ...]], tuple[int, ...]]:
    """(reference keys -> shapes, our keys -> shapes, our channel_list) for one trunk + neck.

    Cached by config (the large encoder takes seconds to build).
    """
    ref = reference_image_encoder(cfg)
    ours = ImageEncoder(cfg.hiera, cfg.neck)
    ref_shapes = {k: tuple(v.shape) for k, v in ref.state_dict().items()}
    our_shapes = {k: tuple(v.shape) for k, v in ours.state_dict().items()}
    return ref_shapes, our_shapes, ours.trunk.channel_list


@pytest.mark.parametrize("name", VARIANTS)
@pytest.mark.parametrize("size", ["full", "small"])
def test_state_dict_keys_and_shapes_match_reference(name: str, size: str) -> None:
    cfg = ModelConfig.named(name) if size == "full" else small_config(name)
    ref_shapes, our_shapes, channels = _key_shapes(cfg)
    assert set(our_shapes) == set(ref_shapes), (
        f"missing {sorted(set(ref_shapes) - set(our_shapes))[:5]}, "
        f"unexpected {sorted(set(our_shapes) - set(ref_shapes))[:5]}"
    )
    assert our_shapes == ref_shapes
    assert channels == cfg.hiera.channel_list == cfg.neck.backbone_channel_list
    # spot-check names the model core and the checkpoint loader rely on
    for key in ("trunk.pos_embed", "trunk.pos_embed_window", "trunk.patch_embed.proj.weight"):
        assert key in our_shapes
    first_of_stage2 = cfg.hiera.stages[0]
    assert f"trunk.blocks.{first_of_stage2}.proj.weight" in our_shapes
    assert "trunk.blocks.0.proj.weight" not in our_shapes


def _run_both(cfg: ModelConfig, batch: int, seed: int) -> tuple[dict[str, Any], BackboneOutput]:
    ref = reference_image_encoder(cfg).eval()
    ours = ImageEncoder(cfg.hiera, cfg.neck).eval()
    state = perturbed_state_dict(ref, seed=seed)
    ref.load_state_dict(state, strict=True)
    ours.load_state_dict(state, strict=True)
    gen = torch.Generator().manual_seed(1000 + seed)
    image = torch.randn(batch, 3, cfg.image_size, cfg.image_size, generator=gen)
    with torch.inference_mode():
        return ref(image), ours(image)


def _max_abs_diff(expected: dict[str, Any], actual: BackboneOutput) -> float:
    pairs = list(zip(actual.backbone_fpn, expected["backbone_fpn"], strict=True))
    pairs += list(zip(actual.vision_pos_enc, expected["vision_pos_enc"], strict=True))
    pairs.append((actual.vision_features, expected["vision_features"]))
    return max((a - e).abs().max().item() for a, e in pairs)


def _assert_parity(expected: dict[str, Any], actual: BackboneOutput, cfg: ModelConfig) -> None:
    ref_fpn: list[torch.Tensor] = expected["backbone_fpn"]
    ref_pos: list[torch.Tensor] = expected["vision_pos_enc"]
    levels = len(cfg.neck.backbone_channel_list) - cfg.neck.scalp
    assert len(actual.backbone_fpn) == len(ref_fpn) == levels
    assert len(actual.vision_pos_enc) == len(ref_pos) == levels
    for ours, ref in zip(actual.backbone_fpn, ref_fpn, strict=True):
        assert ours.std() > 0.1  # perturbed weights give non-degenerate features
        assert_close(ours, ref, atol=ATOL)
    for ours, ref in zip(actual.vision_pos_enc, ref_pos, strict=True):
        assert_close(ours, ref, atol=ATOL)
    assert_close(actual.vision_features, expected["vision_features"], atol=ATOL)
    side = cfg.image_size // cfg.backbone_stride
    assert actual.vision_features.shape[-2:] == (side, side)
    print(f"{cfg.name} @ {cfg.image_size}: max abs diff {_max_abs_diff(expected, actual):.3g}")


@pytest.mark.parametrize("seed, name", list(enumerate(VARIANTS)))
def test_small_variants_match_reference(seed: int, name: str) -> None:
    cfg = small_config(name)
    expected, actual = _run_both(cfg, batch=2, seed=seed)
    _assert_parity(expected, actual, cfg)


def test_padded_windows_match_reference_at_320() -> None:
    # 320 px: the stride-16 map is 20 x 20, not a multiple of the 14-wide windows of stage 3,
    # and the stride-32 map is 10 x 10 against windows of 7: both pad.
    cfg = small_config("sam2.1_hiera_tiny", image_size=320)
    expected, actual = _run_both(cfg, batch=1, seed=11)
    _assert_parity(expected, actual, cfg)


@pytest.mark.slow
def test_full_size_tiny_matches_reference_at_1024() -> None:
    cfg = ModelConfig.named("sam2.1_hiera_tiny")
    assert cfg.image_size == 1024
    expected, actual = _run_both(cfg, batch=1, seed=3)
    _assert_parity(expected, actual, cfg)
