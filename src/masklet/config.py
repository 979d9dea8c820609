"""Frozen configuration dataclasses for every component, and the official variants as deltas.

`ModelConfig.named("sam2.1_hiera_tiny")` returns the configuration of an official checkpoint;
`dataclasses.replace` (or `ModelConfig.small_test`) makes small models for tests.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

# The official variant used when no model is named (CLI commands, training).
DEFAULT_MODEL = "sam2.1_hiera_tiny"
NANO_MODEL = "masklet-nano-synthetic"  # shipped inside the package (masklet/weights)


@dataclass(frozen=True)
class HieraConfig:
    """Hiera trunk (Ryali et al. 2023) as used by SAM 2 ("hieradet")."""

    embed_dim: int = 96
    num_heads: int = 1
    stages: tuple[int, ...] = (1, 2, 7, 2)
    # blocks (0-based, counted over all stages) with global instead of windowed attention
    global_att_blocks: tuple[int, ...] = (5, 7, 9)
    # background size of the windowed positional embedding (Bolya et al. 2023)
    window_pos_embed_bkg_spatial_size: tuple[int, int] = (7, 7)
    window_spec: tuple[int, ...] = (8, 4, 14, 7)
    q_pool: int = 3  # number of stage transitions with query pooling
    q_stride: tuple[int, int] = (2, 2)
    dim_mul: float = 2.0
    head_mul: float = 2.0
    drop_path_rate: float = 0.0

    @property
    def channel_list(self) -> tuple[int, ...]:
        """Output channels of every stage, deepest first (the neck's `backbone_channel_list`)."""
        dims = [int(self.embed_dim * self.dim_mul**i) for i in range(len(self.stages))]
        return tuple(reversed(dims))


@dataclass(frozen=True)
class NeckConfig:
    """FPN neck on top of the trunk."""

    d_model: int = 256
    backbone_channel_list: tuple[int, ...] = (768, 384, 192, 96)
    # levels that receive top-down features; 0 and 1 use the lateral features directly
    fpn_top_down_levels: tuple[int, ...] = (2, 3)
    fpn_interp_model: str = "nearest"
    # drop this many of the lowest-resolution levels after the neck
    scalp: int = 1


@dataclass(frozen=True)
class MaskDecoderConfig:
    """Two-way transformer mask decoder (SAM heads)."""

    transformer_depth: int = 2
    mlp_dim: int = 2048
    num_heads: int = 8
    num_multimask_outputs: int = 3
    iou_head_depth: int = 3
    iou_head_hidden_dim: int = 256
    mask_in_chans: int = 16
    # When a single mask is asked for but its stability score is low, fall back to the best
    # multimask output. The official builders turn this on for image and video alike.
    dynamic_multimask_via_stability: bool = True
    dynamic_multimask_stability_delta: float = 0.05
    dynamic_multimask_stability_thresh: float = 0.98


@dataclass(frozen=True)
class MemoryAttentionConfig:
    """Memory attention: self-attention on the current frame, cross-attention to memories."""

    num_layers: int = 4
    dim_feedforward: int = 2048
    num_heads: int = 1
    dropout: float = 0.1
    rope_theta: float = 10000.0
    pos_enc_at_input: bool = True
    pos_enc_at_attn: bool = False
    pos_enc_at_cross_attn_keys: bool = True
    pos_enc_at_cross_attn_queries: bool = False
    # memory keys are repeated over several frames; RoPE is repeated to match
    rope_k_repeat: bool = True


@dataclass(frozen=True)
class MemoryEncoderConfig:
    """Memory encoder: mask downsampler + fuser (ConvNeXt blocks) + projection."""

    out_dim: int = 64
    mask_kernel_size: int = 3
    mask_stride: int = 2
    mask_padding: int = 1
    fuser_num_layers: int = 2
    fuser_kernel_size: int = 7
    fuser_padding: int = 3
    layer_scale_init_value: float = 1e-6


@dataclass(frozen=True)
class ModelConfig:
    """A whole SAM 2 model. Field names follow the official configs so they can be compared."""

    name: str = "custom"
    image_size: int = 1024
    backbone_stride: int = 16
    hiera: HieraConfig = field(default_factory=HieraConfig)
    neck: NeckConfig = field(default_factory=NeckConfig)
    mask_decoder: MaskDecoderConfig = field(default_factory=MaskDecoderConfig)
    memory_attention: MemoryAttentionConfig = field(default_factory=MemoryAttentionConfig)
    memory_encoder: MemoryEncoderConfig = field(default_factory=MemoryEncoderConfig)

    num_maskmem: int = 7  # the conditioning frame + 6 previous frames
    # scaled sigmoid on mask logits before the memory encoder
    sigmoid_scale_for_mem_enc: float = 20.0
    sigmoid_bias_for_mem_enc: float = -10.0
    # on clicked frames, encode the thresholded mask so memory holds what the user saw
    binarize_mask_from_pts_for_mem_enc: bool = True
    # on frames with a mask prompt, output that mask directly instead of running the decoder
    use_mask_input_as_output_without_sam: bool = True
    max_cond_frames_in_attn: int = -1
    directly_add_no_mem_embed: bool = True
    no_obj_embed_spatial: bool = True  # 2.1 only
    use_high_res_features_in_sam: bool = True
    multimask_output_in_sam: bool = True
    multimask_min_pt_num: int = 0
    multimask_max_pt_num: int = 1
    multimask_output_for_tracking: bool = True
    use_multimask_token_for_obj_ptr: bool = True
    iou_prediction_use_sigmoid: bool = True
    memory_temporal_stride_for_eval: int = 1
    non_overlap_masks_for_mem_enc: bool = False
    use_obj_ptrs_in_encoder: bool = True
    max_obj_ptrs_in_encoder: int = 16
    add_tpos_enc_to_obj_ptrs: bool = True  # 2.1 only (2.0: False)
    proj_tpos_enc_in_obj_ptrs: bool = True  # 2.1 only
    use_signed_tpos_enc_to_obj_ptrs: bool = True  # 2.1 only
    only_obj_ptrs_in_the_past_for_eval: bool = True
    pred_obj_scores: bool = True
    pred_obj_scores_mlp: bool = True
    fixed_no_obj_ptr: bool = True
    soft_no_obj_ptr: bool = False
    use_mlp_for_obj_ptr_proj: bool = True

    @property
    def hidden_dim(self) -> int:
        return self.neck.d_model

    @property
    def mem_dim(self) -> int:
        return self.memory_encoder.out_dim

    @property
    def image_embedding_size(self) -> int:
        """Side of the lowest-resolution feature map the SAM heads see."""
        return self.image_size // self.backbone_stride

    @staticmethod
    def names() -> list[str]:
        return list(_VARIANTS)

    @staticmethod
    def named(name: str) -> ModelConfig:
        """The configuration of an official variant, e.g. ``"sam2.1_hiera_tiny"``."""
        key = name.replace("-", "_").replace("b+", "base_plus")
        key = key.replace("sam2_1", "sam2.1")
        if key not in _VARIANTS:
            from masklet.errors import InvalidInputError

            raise InvalidInputError(
                f"unknown model variant {name!r}; expected one of: {', '.join(_VARIANTS)}"
            )
        return _VARIANTS[key]

    def to_dict(self) -> dict[str, object]:
        """Plain JSON-able form (stored inside checkpoints of non-official models)."""
        return dataclasses.asdict(self)

    @staticmethod
    def from_dict(data: dict[str, object]) -> ModelConfig:
        """Inverse of `to_dict`; unknown or missing fields raise TypeError."""
        sections = {
            "hiera": HieraConfig,
            "neck": NeckConfig,
            "mask_decoder": MaskDecoderConfig,
            "memory_attention": MemoryAttentionConfig,
            "memory_encoder": MemoryEncoderConfig,
        }
        fields: dict[str, object] = {}
        for key, value in data.items():
            if key in sections and isinstance(value, dict):
                value = sections[key](**{k: _tuple(v) for k, v in value.items()})
            fields[key] = _tuple(value)
        return ModelConfig(**fields)  # type: ignore[arg-type]

    def with_trunk(self, **changes: object) -> ModelConfig:
        """Replace trunk fields and keep the neck's channel list in step with them."""
        hiera = dataclasses.replace(self.hiera, **changes)  # type: ignore[arg-type]
        neck = dataclasses.replace(self.neck, backbone_channel_list=hiera.channel_list)
        return dataclasses.replace(self, hiera=hiera, neck=neck)


def _tuple(value: object) -> object:
    """JSON lists back to the tuples frozen configs hold."""
    return tuple(value) if isinstance(value, list) else value


def _variant(version: str, size: str) -> ModelConfig:
    """One official config: a size delta on the trunk plus a 2.0/2.1 delta on the flags."""
    trunks = {
        "tiny": HieraConfig(),
        "small": HieraConfig(stages=(1, 2, 11, 2), global_att_blocks=(7, 10, 13)),
        "base_plus": HieraConfig(
            embed_dim=112, num_heads=2, stages=(2, 3, 16, 3),
            global_att_blocks=(12, 16, 20), window_pos_embed_bkg_spatial_size=(14, 14),
        ),
        "large": HieraConfig(
            embed_dim=144, num_heads=2, stages=(2, 6, 36, 4),
            global_att_blocks=(23, 33, 43), window_pos_embed_bkg_spatial_size=(7, 7),
            window_spec=(8, 4, 16, 8),
        ),
    }  # fmt: skip
    name = f"{version}_hiera_{size}"
    base = ModelConfig(name=name).with_trunk(**dataclasses.asdict(trunks[size]))
    if version == "sam2":
        # SAM 2.0 has no spatial no-object embedding and no temporal encoding of pointers
        base = dataclasses.replace(
            base,
            no_obj_embed_spatial=False,
            add_tpos_enc_to_obj_ptrs=False,
            proj_tpos_enc_in_obj_ptrs=False,
            use_signed_tpos_enc_to_obj_ptrs=False,
        )
    return base


_VARIANTS: dict[str, ModelConfig] = {
    f"{v}_hiera_{s}": _variant(v, s)
    for v in ("sam2", "sam2.1")
    for s in ("tiny", "small", "base_plus", "large")
}
