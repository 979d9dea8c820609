"""Build the reference implementation (`sam2==1.1.0`) from a masklet `ModelConfig`.

The reference is a test dependency only. It is built by calling its classes directly (no Hydra),
so any small test configuration can be mirrored exactly.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
import torch

from masklet.config import HieraConfig, ModelConfig

sam2 = pytest.importorskip("sam2", reason="the reference implementation sam2==1.1.0 is needed")

from sam2.modeling.backbones.hieradet import Hiera  # noqa: E402
from sam2.modeling.backbones.image_encoder import FpnNeck, ImageEncoder  # noqa: E402
from sam2.modeling.memory_attention import MemoryAttention, MemoryAttentionLayer  # noqa: E402
from sam2.modeling.memory_encoder import (  # noqa: E402
    CXBlock,
    Fuser,
    MaskDownSampler,
    MemoryEncoder,
)
from sam2.modeling.position_encoding import PositionEmbeddingSine  # noqa: E402
from sam2.modeling.sam.transformer import RoPEAttention  # noqa: E402


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


def reference_trunk(h: HieraConfig) -> torch.nn.Module:
    return Hiera(
        embed_dim=h.embed_dim,
        num_heads=h.num_heads,
        drop_path_rate=h.drop_path_rate,
        q_pool=h.q_pool,
        q_stride=h.q_stride,
        stages=h.stages,
        dim_mul=h.dim_mul,
        head_mul=h.head_mul,
        window_pos_embed_bkg_spatial_size=h.window_pos_embed_bkg_spatial_size,
        window_spec=h.window_spec,
        global_att_blocks=h.global_att_blocks,
    )


def reference_image_encoder(cfg: ModelConfig) -> torch.nn.Module:
    n = cfg.neck
    neck = FpnNeck(
        position_encoding=PositionEmbeddingSine(num_pos_feats=n.d_model, normalize=True),
        d_model=n.d_model,
        backbone_channel_list=list(n.backbone_channel_list),
        fpn_top_down_levels=list(n.fpn_top_down_levels),
        fpn_interp_model=n.fpn_interp_model,
    )
    return ImageEncoder(trunk=reference_trunk(cfg.hiera), neck=neck, scalp=n.scalp)


def reference_memory_attention(cfg: ModelConfig) -> torch.nn.Module:
    m = cfg.memory_attention
    d = cfg.hidden_dim
    feat = (cfg.image_embedding_size, cfg.image_embedding_size)

    def rope(**kw: Any) -> torch.nn.Module:
        return RoPEAttention(
            rope_theta=m.rope_theta,
            feat_sizes=feat,
            embedding_dim=d,
            num_heads=m.num_heads,
            downsample_rate=1,
            dropout=m.dropout,
            **kw,
        )

    layer = MemoryAttentionLayer(
        activation="relu",
        cross_attention=rope(rope_k_repeat=m.rope_k_repeat, kv_in_dim=cfg.mem_dim),
        d_model=d,
        dim_feedforward=m.dim_feedforward,
        dropout=m.dropout,
        pos_enc_at_attn=m.pos_enc_at_attn,
        pos_enc_at_cross_attn_keys=m.pos_enc_at_cross_attn_keys,
        pos_enc_at_cross_attn_queries=m.pos_enc_at_cross_attn_queries,
        self_attention=rope(),
    )
    return MemoryAttention(
        d_model=d, pos_enc_at_input=m.pos_enc_at_input, layer=layer, num_layers=m.num_layers
    )


def reference_memory_encoder(cfg: ModelConfig) -> torch.nn.Module:
    e = cfg.memory_encoder
    d = cfg.hidden_dim
    return MemoryEncoder(
        out_dim=e.out_dim,
        position_encoding=PositionEmbeddingSine(num_pos_feats=e.out_dim, normalize=True),
        mask_downsampler=MaskDownSampler(
            embed_dim=d,
            kernel_size=e.mask_kernel_size,
            stride=e.mask_stride,
            padding=e.mask_padding,
            total_stride=cfg.backbone_stride,
        ),
        fuser=Fuser(
            CXBlock(
                dim=d,
                kernel_size=e.fuser_kernel_size,
                padding=e.fuser_padding,
                layer_scale_init_value=e.layer_scale_init_value,
                use_dwconv=True,
            ),
            num_layers=e.fuser_num_layers,
        ),
        in_dim=d,
    )


def _base_kwargs(cfg: ModelConfig) -> dict[str, Any]:
    md = cfg.mask_decoder
    flags = {
        f.name: getattr(cfg, f.name)
        for f in dataclasses.fields(cfg)
        if f.name
        not in {"name", "hiera", "neck", "mask_decoder", "memory_attention", "memory_encoder"}
    }
    flags["sam_mask_decoder_extra_args"] = dict(
        dynamic_multimask_via_stability=md.dynamic_multimask_via_stability,
        dynamic_multimask_stability_delta=md.dynamic_multimask_stability_delta,
        dynamic_multimask_stability_thresh=md.dynamic_multimask_stability_thresh,
    )
    return dict(
        image_encoder=reference_image_encoder(cfg),
        memory_attention=reference_memory_attention(cfg),
        memory_encoder=reference_memory_encoder(cfg),
        **flags,
    )


def reference_model(cfg: ModelConfig) -> torch.nn.Module:
    """The reference `SAM2Base` for `cfg`, in eval mode."""
    from sam2.modeling.sam2_base import SAM2Base

    return SAM2Base(**_base_kwargs(cfg)).eval()


def reference_video_model(cfg: ModelConfig, fill_hole_area: int = 0) -> torch.nn.Module:
    """The reference `SAM2VideoPredictor` for `cfg` (hole filling off by default: the reference
    skips it on CPU anyway)."""
    from sam2.sam2_video_predictor import SAM2VideoPredictor

    return SAM2VideoPredictor(fill_hole_area=fill_hole_area, **_base_kwargs(cfg)).eval()


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
