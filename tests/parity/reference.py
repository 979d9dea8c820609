"""Build the reference implementation (`sam2==1.1.0`) from its own official YAML configs.

The reference is a test dependency. Every reference model here starts from the variant's YAML
file shipped inside the `sam2` package plus the overrides its own builders add
(`build_sam2` / `build_sam2_video_predictor`), instantiated with Hydra's `instantiate` as the
reference does. Only *size* settings are taken from the masklet config under test (trunk
width and depth, image size, and what follows from them), so a masklet setting that does not
change tensor shapes (`sigmoid_scale_for_mem_enc`, `num_maskmem`, ...) is checked against the
official value, not against itself. Tests that deliberately flip a flag pass the same flag to
both sides through `overrides`.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import sam2
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from masklet.config import ModelConfig

CONFIG_DIR = Path(sam2.__file__).parent / "configs"
_SIZE_SUFFIX = {"tiny": "t", "small": "s", "base_plus": "b+", "large": "l"}
# What the reference's own builders add on top of the YAML (sam2/build_sam.py).
IMAGE_BUILDER_OVERRIDES: dict[str, Any] = {
    "sam_mask_decoder_extra_args": {
        "dynamic_multimask_via_stability": True,
        "dynamic_multimask_stability_delta": 0.05,
        "dynamic_multimask_stability_thresh": 0.98,
    },
}
VIDEO_BUILDER_OVERRIDES: dict[str, Any] = {
    **IMAGE_BUILDER_OVERRIDES,
    "_target_": "sam2.sam2_video_predictor.SAM2VideoPredictor",
    "binarize_mask_from_pts_for_mem_enc": True,
    "fill_hole_area": 8,
}


def official_yaml(name: str) -> Path:
    """The reference's YAML file of an official variant, e.g. ``sam2.1_hiera_tiny``."""
    version, size = name.split("_hiera_")
    path = CONFIG_DIR / version / f"{version}_hiera_{_SIZE_SUFFIX[size]}.yaml"
    if not path.is_file():
        raise FileNotFoundError(f"no official config for {name!r} at {path}")
    return path


def official_model_node(name: str, *, video: bool = False) -> DictConfig:
    """The `model:` section of the official YAML with the reference builder's overrides."""
    node = OmegaConf.load(official_yaml(name)).model
    extra = VIDEO_BUILDER_OVERRIDES if video else IMAGE_BUILDER_OVERRIDES
    for key, value in extra.items():
        OmegaConf.update(node, key, value, force_add=True)
    return node


def size_overrides(cfg: ModelConfig) -> dict[str, Any]:
    """Dotted YAML paths -> values for the size settings of `cfg` (and only those)."""
    h = cfg.hiera
    side = cfg.image_size // 16  # the official backbone stride
    channels = [h.embed_dim * 2**i for i in reversed(range(4))]  # official dim_mul 2.0
    feat = [side, side]
    d, ma, me = cfg.neck.d_model, cfg.memory_attention, cfg.memory_encoder
    return {
        "image_size": cfg.image_size,
        "image_encoder.trunk.embed_dim": h.embed_dim,
        "image_encoder.trunk.stages": list(h.stages),
        "image_encoder.trunk.global_att_blocks": list(h.global_att_blocks),
        "image_encoder.neck.backbone_channel_list": channels,
        "memory_attention.layer.self_attention.feat_sizes": feat,
        "memory_attention.layer.cross_attention.feat_sizes": feat,
        # widths and depths (equal to the YAML's for the official variants; smaller for the
        # bundled nano model, which is tiny 2.1 resized)
        "image_encoder.neck.d_model": d,
        "image_encoder.neck.position_encoding.num_pos_feats": d,
        "memory_attention.d_model": d,
        "memory_attention.num_layers": ma.num_layers,
        "memory_attention.layer.d_model": d,
        "memory_attention.layer.dim_feedforward": ma.dim_feedforward,
        "memory_attention.layer.self_attention.embedding_dim": d,
        "memory_attention.layer.cross_attention.embedding_dim": d,
        "memory_attention.layer.cross_attention.kv_in_dim": me.out_dim,
        "memory_encoder.out_dim": me.out_dim,
        "memory_encoder.position_encoding.num_pos_feats": me.out_dim,
        "memory_encoder.fuser.layer.dim": d,
        "memory_encoder.in_dim": d,
        "memory_encoder.mask_downsampler.embed_dim": d,
    }


def official_node_for(
    cfg: ModelConfig, *, video: bool = False, overrides: dict[str, Any] | None = None
) -> DictConfig:
    """The official node of `cfg.name` resized to `cfg`, plus explicit `overrides`."""
    if cfg.name not in ModelConfig.names():
        raise ValueError(
            f"reference models are built from an official YAML; config name {cfg.name!r} is "
            f"none of {ModelConfig.names()} (start from small_config(name) or ModelConfig.named)"
        )
    node = official_model_node(cfg.name, video=video)
    for key, value in {**size_overrides(cfg), **(overrides or {})}.items():
        OmegaConf.update(node, key, value, merge=False, force_add=True)
    return node


def _build(node: DictConfig) -> torch.nn.Module:
    return instantiate(node, _recursive_=True)


def small_config(name: str = "sam2.1_hiera_tiny", image_size: int = 256) -> ModelConfig:
    """An official variant's flags with a shrunk trunk and image size, for fast parity tests.

    Keeps what distinguishes the variant (heads, window spec, positional-embedding background
    size, 2.0 vs 2.1 flags) and cuts the width and depth of the trunk.
    """
    cfg = ModelConfig.named(name)
    h = cfg.hiera
    trunk: dict[str, Any] = dict(embed_dim=16 * h.num_heads)
    if sum(h.stages) > 16:
        trunk.update(stages=(1, 2, 7, 2), global_att_blocks=(5, 7, 9))
    cfg = cfg.with_trunk(**trunk)
    return dataclasses.replace(cfg, image_size=image_size)


def reference_image_encoder(
    cfg: ModelConfig, overrides: dict[str, Any] | None = None
) -> torch.nn.Module:
    """The reference `ImageEncoder` (trunk + neck) of the official YAML, resized to `cfg`."""
    return _build(official_node_for(cfg, overrides=overrides).image_encoder)


def reference_memory_attention(
    cfg: ModelConfig, overrides: dict[str, Any] | None = None
) -> torch.nn.Module:
    """The reference `MemoryAttention` of the official YAML; `overrides` use model paths
    (``memory_attention.layer.pos_enc_at_attn``)."""
    return _build(official_node_for(cfg, overrides=overrides).memory_attention)


def reference_memory_encoder(
    cfg: ModelConfig, overrides: dict[str, Any] | None = None
) -> torch.nn.Module:
    """The reference `MemoryEncoder` of the official YAML, resized to `cfg`."""
    return _build(official_node_for(cfg, overrides=overrides).memory_encoder)


def reference_model(cfg: ModelConfig, overrides: dict[str, Any] | None = None) -> torch.nn.Module:
    """The reference `SAM2Base` as `build_sam2` makes it from the official YAML, resized to
    `cfg`, in eval mode. `overrides`: dotted model paths -> values a test flips on purpose."""
    return _build(official_node_for(cfg, overrides=overrides)).eval()


def reference_video_model(
    cfg: ModelConfig, fill_hole_area: int = 0, overrides: dict[str, Any] | None = None
) -> torch.nn.Module:
    """The reference `SAM2VideoPredictor` as `build_sam2_video_predictor` makes it, resized to
    `cfg` (hole filling off by default: the reference skips it on CPU anyway)."""
    extra = {"fill_hole_area": fill_hole_area, **(overrides or {})}
    return _build(official_node_for(cfg, video=True, overrides=extra)).eval()


def perturbed_state_dict(
    module: torch.nn.Module, seed: int = 0, scale: float = 0.05
) -> dict[str, torch.Tensor]:
    """A copy of `module.state_dict()` with seeded noise added to every floating tensor.

    The reference init leaves many tensors zero or constant (biases, layer-norm weights,
    no-object embeddings), which would hide bugs; noise makes every parameter matter.
    """
    gen = torch.Generator().manual_seed(seed)
    out: dict[str, torch.Tensor] = {}
    for key, value in module.state_dict().items():
        if value.is_floating_point():
            noise = torch.randn(value.shape, generator=gen, dtype=torch.float32)
            out[key] = (value.float() + scale * noise).to(value.dtype)
        else:
            out[key] = value.clone()
    return out


def assert_close(actual: torch.Tensor, expected: torch.Tensor, atol: float = 1e-4) -> None:
    """Max-abs comparison with a message giving the worst difference."""
    assert actual.shape == expected.shape, f"shape {tuple(actual.shape)} != {tuple(expected.shape)}"
    diff = (actual.float() - expected.float()).abs().max().item() if actual.numel() else 0.0
    assert diff <= atol, f"max abs difference {diff:.3g} > {atol}"
