"""Parity of the memory attention and memory encoder with the reference `sam2==1.1.0`."""

from __future__ import annotations

import dataclasses
import functools

import pytest
import torch

from masklet.config import ModelConfig
from masklet.modeling.memory_attention import MemoryAttention
from masklet.modeling.memory_encoder import MemoryEncoder
from tests.parity.reference import (
    assert_close,
    perturbed_state_dict,
    reference_memory_attention,
    reference_memory_encoder,
    small_config,
)

ATOL = 1e-4
VARIANTS = ["sam2_hiera_tiny", "sam2.1_hiera_large"]
OBJ_PTR_TOKENS = 4  # one 256-d pointer split into 64-d memory tokens
BATCH = 2


def _load_pair(ref: torch.nn.Module, ours: torch.nn.Module, seed: int) -> None:
    state = perturbed_state_dict(ref, seed=seed)
    ref.load_state_dict(state, strict=True)
    ours.load_state_dict(state, strict=True)
    ref.eval()
    ours.eval()


def _attention_pair(
    cfg: ModelConfig, seed: int, overrides: dict | None = None
) -> tuple[torch.nn.Module, MemoryAttention]:
    ref = reference_memory_attention(cfg, overrides)
    ours = MemoryAttention(cfg.memory_attention, cfg.hidden_dim, cfg.mem_dim)
    _load_pair(ref, ours, seed)
    return ref, ours


def _memory_inputs(cfg: ModelConfig, num_frames: int, num_ptr: int, seed: int) -> dict:
    gen = torch.Generator().manual_seed(seed)
    hw = cfg.image_embedding_size**2
    mem_len = num_frames * hw + num_ptr
    return dict(
        curr=torch.randn(hw, BATCH, cfg.hidden_dim, generator=gen),
        memory=torch.randn(mem_len, BATCH, cfg.mem_dim, generator=gen),
        curr_pos=torch.randn(hw, BATCH, cfg.hidden_dim, generator=gen),
        memory_pos=torch.randn(mem_len, BATCH, cfg.mem_dim, generator=gen),
    )


@functools.cache
def attention_pair(name: str) -> tuple[ModelConfig, torch.nn.Module, MemoryAttention]:
    """One loaded pair per variant, shared by the tests (building one is the slow part)."""
    cfg = small_config(name)
    return (cfg, *_attention_pair(cfg, seed=VARIANTS.index(name)))


# The memory-attention config is the same in every official variant: cover both versions'
# builders, 1 and 3 memory frames, with and without object-pointer tokens, without
# running the full cross product on a shared CPU.
ATTENTION_CASES = [
    ("sam2_hiera_tiny", 1, OBJ_PTR_TOKENS),
    ("sam2_hiera_tiny", 3, 0),
    ("sam2.1_hiera_large", 1, 0),
    ("sam2.1_hiera_large", 3, OBJ_PTR_TOKENS),
]


@pytest.mark.parametrize(("name", "num_frames", "num_ptr"), ATTENTION_CASES)
def test_memory_attention_matches_reference(name: str, num_frames: int, num_ptr: int) -> None:
    cfg, ref, ours = attention_pair(name)
    inputs = _memory_inputs(cfg, num_frames, num_ptr, seed=10 + num_frames)
    with torch.no_grad():
        expected = ref(**inputs, num_obj_ptr_tokens=num_ptr)
        actual = ours(**inputs, num_obj_ptr_tokens=num_ptr)
    assert actual.shape == inputs["curr"].shape
    assert_close(actual, expected, ATOL)


def test_memory_attention_pointer_tokens_are_not_rotated() -> None:
    """Declaring the pointers changes the result (they would otherwise be rotated as if
    they were the first grid cells of another frame), and the reference agrees."""
    cfg, ref, ours = attention_pair("sam2.1_hiera_large")
    hw = cfg.image_embedding_size**2
    # two grids of tokens: read as 2 frames, or as 1 frame + hw unrotated pointer tokens
    inputs = _memory_inputs(cfg, num_frames=2, num_ptr=0, seed=20)
    with torch.no_grad():
        as_pointers = ours(**inputs, num_obj_ptr_tokens=hw)
        as_frame = ours(**inputs, num_obj_ptr_tokens=0)
        expected = ref(**inputs, num_obj_ptr_tokens=hw)
    assert (as_pointers - as_frame).abs().max() > 1e-3
    assert_close(as_pointers, expected, ATOL)


# the pos-enc flags the official configs keep fixed, flipped
POS_ENC_FLAGS = dict(
    pos_enc_at_input=False,
    pos_enc_at_attn=True,
    pos_enc_at_cross_attn_keys=False,
    pos_enc_at_cross_attn_queries=True,
)


def test_memory_attention_pos_enc_flags_match_reference() -> None:
    base = small_config("sam2.1_hiera_tiny")
    ma = dataclasses.replace(base.memory_attention, num_layers=2, **POS_ENC_FLAGS)
    cfg = dataclasses.replace(base, memory_attention=ma)
    # the same flips on the reference side, as paths in its official YAML
    flips = {"memory_attention.num_layers": 2, "memory_attention.pos_enc_at_input": False}
    flips.update(
        {
            f"memory_attention.layer.{k}": v
            for k, v in POS_ENC_FLAGS.items()
            if k != "pos_enc_at_input"
        }
    )
    ref, ours = _attention_pair(cfg, seed=7, overrides=flips)
    inputs = _memory_inputs(cfg, num_frames=2, num_ptr=OBJ_PTR_TOKENS, seed=8)
    with torch.no_grad():
        expected = ref(**inputs, num_obj_ptr_tokens=OBJ_PTR_TOKENS)
        actual = ours(**inputs, num_obj_ptr_tokens=OBJ_PTR_TOKENS)
    assert_close(actual, expected, ATOL)


@pytest.mark.parametrize("name", VARIANTS)
@pytest.mark.parametrize("skip_mask_sigmoid", [False, True])
def test_memory_encoder_matches_reference(name: str, skip_mask_sigmoid: bool) -> None:
    cfg = small_config(name)
    ref = reference_memory_encoder(cfg)
    ours = MemoryEncoder(cfg.memory_encoder, cfg.hidden_dim, cfg.backbone_stride)
    _load_pair(ref, ours, seed=3)
    gen = torch.Generator().manual_seed(4)
    side = cfg.image_embedding_size
    pix_feat = torch.randn(BATCH, cfg.hidden_dim, side, side, generator=gen)
    masks = (
        torch.randn(BATCH, 1, side * cfg.backbone_stride, side * cfg.backbone_stride, generator=gen)
        * 8
    )
    if skip_mask_sigmoid:
        # what the model core passes: a scaled sigmoid already applied
        masks = torch.sigmoid(masks) * 20.0 - 10.0
    with torch.no_grad():
        expected = ref(pix_feat, masks, skip_mask_sigmoid=skip_mask_sigmoid)
        features, pos = ours(pix_feat, masks, skip_mask_sigmoid=skip_mask_sigmoid)
        other, _ = ours(pix_feat, masks, skip_mask_sigmoid=not skip_mask_sigmoid)
    assert features.shape == (BATCH, cfg.mem_dim, side, side)
    assert_close(features, expected["vision_features"], ATOL)
    assert_close(pos, expected["vision_pos_enc"][0], ATOL)
    # the flag matters: the other setting gives different memories
    assert (features - other).abs().max() > 1e-3
