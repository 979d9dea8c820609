"""The official YAML configs shipped with the reference are the oracle for `ModelConfig.named`.

For each of the 8 variants, the YAML's `model:` section plus the reference builder's overrides
plus the constructor defaults it relies on give every setting that reaches the model. Each must
either equal the masklet setting it maps to (`masklet_settings`) or be a value masklet fixes in
code (`FIXED_IN_CODE`, with the reason), so a setting that changes no tensor shape
(`sigmoid_scale_for_mem_enc`, `num_maskmem`, the stability threshold, ...) cannot drift.
"""

from __future__ import annotations

import importlib
import inspect
from typing import Any

import pytest
import torch
from omegaconf import OmegaConf
from sam2.sam2_image_predictor import SAM2ImagePredictor
from sam2.sam2_video_predictor import SAM2VideoPredictor

from masklet.config import ModelConfig
from masklet.image_predictor import ImagePredictor
from masklet.video.predictor import VideoPredictor
from tests.parity.reference import (
    VIDEO_BUILDER_OVERRIDES,
    official_model_node,
    reference_model,
    small_config,
)

VARIANTS = ModelConfig.names()


def _constructor(target: str) -> Any:
    module, name = target.rsplit(".", 1)
    return getattr(importlib.import_module(module), name)


def _effective(node: Any) -> Any:
    """A `_target_` node as the constructor sees it: the signature defaults of its class and
    of the base classes it passes `**kwargs` to, then the YAML."""
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    if "_target_" in node:
        for cls in reversed(_constructor(node["_target_"]).__mro__[:-1]):
            params = inspect.signature(cls.__init__).parameters
            for key, p in params.items():
                if key != "self" and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL):
                    out[key] = p.default
    for key, value in node.items():
        if key != "_target_":
            out[key] = _effective(value)
    return out


def _flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = tuple(value) if isinstance(value, list) else value
    return flat


def official_settings(name: str) -> dict[str, Any]:
    """Every constructor argument of the official video model, flattened to dotted paths."""
    node = OmegaConf.to_container(official_model_node(name, video=True), resolve=True)
    assert isinstance(node, dict)
    return _flatten(_effective(node))


def masklet_settings(cfg: ModelConfig) -> dict[str, Any]:
    """The same dotted paths, read from a masklet config."""
    h, n, ma, me = cfg.hiera, cfg.neck, cfg.memory_attention, cfg.memory_encoder
    md = cfg.mask_decoder
    feat = (cfg.image_embedding_size, cfg.image_embedding_size)
    top = {
        f: getattr(cfg, f)
        for f in (
            "num_maskmem image_size backbone_stride sigmoid_scale_for_mem_enc "
            "sigmoid_bias_for_mem_enc binarize_mask_from_pts_for_mem_enc "
            "use_mask_input_as_output_without_sam max_cond_frames_in_attn "
            "directly_add_no_mem_embed use_high_res_features_in_sam multimask_output_in_sam "
            "multimask_min_pt_num multimask_max_pt_num multimask_output_for_tracking "
            "use_multimask_token_for_obj_ptr iou_prediction_use_sigmoid "
            "memory_temporal_stride_for_eval non_overlap_masks_for_mem_enc "
            "use_obj_ptrs_in_encoder max_obj_ptrs_in_encoder add_tpos_enc_to_obj_ptrs "
            "proj_tpos_enc_in_obj_ptrs use_signed_tpos_enc_to_obj_ptrs "
            "only_obj_ptrs_in_the_past_for_eval pred_obj_scores pred_obj_scores_mlp "
            "fixed_no_obj_ptr soft_no_obj_ptr use_mlp_for_obj_ptr_proj no_obj_embed_spatial"
        ).split()
    }
    trunk = {
        f"image_encoder.trunk.{f}": getattr(h, f)
        for f in (
            "embed_dim num_heads drop_path_rate q_pool q_stride stages dim_mul head_mul "
            "window_pos_embed_bkg_spatial_size window_spec global_att_blocks"
        ).split()
    }
    attention = {
        f"memory_attention.layer.{which}.{key}": value
        for which in ("self_attention", "cross_attention")
        for key, value in {
            "rope_theta": ma.rope_theta,
            "feat_sizes": feat,
            "embedding_dim": cfg.hidden_dim,
            "num_heads": ma.num_heads,
            "dropout": ma.dropout,
        }.items()
    }
    return {
        **top,
        **trunk,
        "image_encoder.scalp": n.scalp,
        "image_encoder.neck.d_model": n.d_model,
        "image_encoder.neck.backbone_channel_list": n.backbone_channel_list,
        "image_encoder.neck.fpn_top_down_levels": n.fpn_top_down_levels,
        "image_encoder.neck.fpn_interp_model": n.fpn_interp_model,
        "image_encoder.neck.position_encoding.num_pos_feats": n.d_model,
        "memory_attention.d_model": cfg.hidden_dim,
        "memory_attention.num_layers": ma.num_layers,
        "memory_attention.pos_enc_at_input": ma.pos_enc_at_input,
        "memory_attention.layer.d_model": cfg.hidden_dim,
        "memory_attention.layer.dim_feedforward": ma.dim_feedforward,
        "memory_attention.layer.dropout": ma.dropout,
        "memory_attention.layer.pos_enc_at_attn": ma.pos_enc_at_attn,
        "memory_attention.layer.pos_enc_at_cross_attn_keys": ma.pos_enc_at_cross_attn_keys,
        "memory_attention.layer.pos_enc_at_cross_attn_queries": ma.pos_enc_at_cross_attn_queries,
        **attention,
        "memory_attention.layer.cross_attention.rope_k_repeat": ma.rope_k_repeat,
        "memory_attention.layer.cross_attention.kv_in_dim": cfg.mem_dim,
        "memory_encoder.out_dim": me.out_dim,
        "memory_encoder.in_dim": cfg.hidden_dim,
        "memory_encoder.position_encoding.num_pos_feats": me.out_dim,
        "memory_encoder.mask_downsampler.embed_dim": cfg.hidden_dim,
        "memory_encoder.mask_downsampler.kernel_size": me.mask_kernel_size,
        "memory_encoder.mask_downsampler.stride": me.mask_stride,
        "memory_encoder.mask_downsampler.padding": me.mask_padding,
        "memory_encoder.mask_downsampler.total_stride": cfg.backbone_stride,
        "memory_encoder.fuser.num_layers": me.fuser_num_layers,
        "memory_encoder.fuser.layer.dim": cfg.hidden_dim,
        "memory_encoder.fuser.layer.kernel_size": me.fuser_kernel_size,
        "memory_encoder.fuser.layer.padding": me.fuser_padding,
        "memory_encoder.fuser.layer.layer_scale_init_value": me.layer_scale_init_value,
        "sam_mask_decoder_extra_args.dynamic_multimask_via_stability": (
            md.dynamic_multimask_via_stability
        ),
        "sam_mask_decoder_extra_args.dynamic_multimask_stability_delta": (
            md.dynamic_multimask_stability_delta
        ),
        "sam_mask_decoder_extra_args.dynamic_multimask_stability_thresh": (
            md.dynamic_multimask_stability_thresh
        ),
    }


# Official settings masklet has no config field for: the value its code fixes, and why.
# The test fails if an official config ever uses another value.
_POSITION = {"temperature": 10000, "normalize": True, "scale": None}
FIXED_IN_CODE: dict[str, tuple[Any, str]] = {
    **{
        f"{where}.position_encoding.{key}": (value, "sine encoding constants in position.py")
        for where in ("image_encoder.neck", "memory_encoder")
        for key, value in _POSITION.items()
    },
    **{
        f"{where}.position_encoding.{key}": (value, "a precomputed cache only, no effect")
        for where in ("image_encoder.neck", "memory_encoder")
        for key, value in {
            "warmup_cache": True,
            "image_size": 1024,
            "strides": (4, 8, 16, 32),
        }.items()
    },
    "image_encoder.trunk.weights_path": (None, "whole checkpoints are loaded instead"),
    "image_encoder.trunk.return_interm_layers": (True, "the neck always reads every stage"),
    "image_encoder.neck.kernel_size": (1, "1x1 lateral convs in neck.py"),
    "image_encoder.neck.stride": (1, "1x1 lateral convs in neck.py"),
    "image_encoder.neck.padding": (0, "1x1 lateral convs in neck.py"),
    "image_encoder.neck.fuse_type": ("sum", "top-down features are summed in neck.py"),
    "memory_attention.batch_first": (True, "token-major inputs, as the model core passes"),
    "memory_attention.layer.activation": ("relu", "MemoryAttentionLayer's FFN"),
    "memory_attention.layer.self_attention.rope_k_repeat": (False, "same-length q and k"),
    "memory_attention.layer.self_attention.downsample_rate": (1, "no downsampling"),
    "memory_attention.layer.cross_attention.downsample_rate": (1, "no downsampling"),
    "memory_attention.layer.self_attention.kv_in_dim": (None, "keys come from the frame"),
    "memory_encoder.mask_downsampler.activation": (torch.nn.GELU, "memory_encoder.py"),
    "memory_encoder.fuser.layer.drop_path": (0.0, "inference only"),
    "memory_encoder.fuser.layer.use_dwconv": (True, "depth-wise conv in CXBlock"),
    "memory_encoder.fuser.dim": (None, "no input projection"),
    "memory_encoder.fuser.input_projection": (False, "no input projection"),
    "compile_image_encoder": (False, "torch.compile is not a model setting"),
    # video predictor settings: masklet keeps them on VideoPredictor (compared below)
    "fill_hole_area": (8, "VideoPredictor(fill_hole_area=8)"),
    "non_overlap_masks": (False, "VideoPredictor argument"),
    "clear_non_cond_mem_around_input": (False, "VideoPredictor argument"),
    "add_all_frames_to_correct_as_cond": (False, "VideoPredictor argument, deliberately True"),
}


@pytest.mark.parametrize("name", VARIANTS)
def test_every_official_setting_equals_masklets(name: str) -> None:
    official = official_settings(name)
    ours = masklet_settings(ModelConfig.named(name))

    unmapped = set(official) - set(ours) - set(FIXED_IN_CODE)
    assert not unmapped, f"official settings with no masklet counterpart: {sorted(unmapped)}"
    extra = set(ours) - set(official)
    assert not extra, f"masklet maps settings the reference does not have: {sorted(extra)}"
    differing = {
        key: (value, official[key]) for key, value in ours.items() if value != official[key]
    }
    assert not differing, f"{name}: masklet vs official {differing}"
    fixed = {
        key: (value, official[key])
        for key, (value, _reason) in FIXED_IN_CODE.items()
        if official[key] != value
    }
    assert not fixed, f"{name}: official values masklet's code does not follow {fixed}"


def test_settings_that_change_no_shape_are_compared() -> None:
    """The oracle must see the settings a shape check cannot: flipping one must show up."""
    import dataclasses

    official = official_settings("sam2.1_hiera_tiny")
    cfg = ModelConfig.named("sam2.1_hiera_tiny")
    for change in (
        dict(sigmoid_scale_for_mem_enc=10.0),
        dict(num_maskmem=6),
        dict(memory_temporal_stride_for_eval=2),
        dict(multimask_min_pt_num=1),
    ):
        flipped = masklet_settings(dataclasses.replace(cfg, **change))
        assert any(flipped[k] != official[k] for k in flipped), change


def test_hard_coded_mask_decoder_settings_equal_the_reference() -> None:
    """SAM2Base builds its SAM heads with constants, not YAML fields: read them off a model."""
    cfg = small_config("sam2.1_hiera_tiny", image_size=128)
    md = cfg.mask_decoder
    ref = reference_model(cfg)
    decoder = ref.sam_mask_decoder
    first = decoder.transformer.layers[0]
    assert (
        len(decoder.transformer.layers),
        first.mlp.layers[0].out_features,
        first.self_attn.num_heads,
        decoder.num_multimask_outputs,
        decoder.iou_prediction_head.num_layers,
        decoder.iou_prediction_head.layers[0].out_features,
        ref.sam_prompt_encoder.mask_downscaling[3].out_channels,
    ) == (
        md.transformer_depth,
        md.mlp_dim,
        md.num_heads,
        md.num_multimask_outputs,
        md.iou_head_depth,
        md.iou_head_hidden_dim,
        md.mask_in_chans,
    )


def _defaults(fn: Any) -> dict[str, Any]:
    return {
        k: p.default
        for k, p in inspect.signature(fn).parameters.items()
        if p.default is not inspect.Parameter.empty
    }


def test_predictor_defaults_equal_the_official_builders() -> None:
    image_ours, image_ref = _defaults(ImagePredictor.__init__), _defaults(SAM2ImagePredictor)
    for key in ("mask_threshold", "max_hole_area", "max_sprinkle_area"):
        assert image_ours[key] == image_ref[key], key
    video_ours = _defaults(VideoPredictor.__init__)
    video_ref = {**_defaults(SAM2VideoPredictor), **VIDEO_BUILDER_OVERRIDES}
    for key in ("fill_hole_area", "non_overlap_masks", "clear_non_cond_mem_around_input"):
        assert video_ours[key] == video_ref[key], key
    # the one deliberate difference (documented on VideoPredictor): corrections stay
    assert video_ours["add_all_frames_to_correct_as_cond"] is True
    assert video_ref["add_all_frames_to_correct_as_cond"] is False
