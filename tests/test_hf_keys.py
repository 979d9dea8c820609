"""hf_to_official against real transformers SAM 2 models built from small configs (no download)."""

from __future__ import annotations

import re

import pytest
import torch

from masklet.config import ModelConfig
from masklet.errors import CheckpointError
from masklet.hf_keys import hf_to_official, is_hf_layout
from tests.parity.reference import assert_close, perturbed_state_dict, reference_model, small_config

transformers = pytest.importorskip("transformers", reason="transformers' Sam2 is the HF layout")

from transformers import Sam2Config, Sam2Model, Sam2VideoConfig, Sam2VideoModel  # noqa: E402
from transformers.models.sam2.configuration_sam2 import (  # noqa: E402
    Sam2HieraDetConfig,
    Sam2VisionConfig,
)

IMAGE_SIZE = 256
POSITIONAL = "prompt_encoder.shared_embedding.positional_embedding"
POSITIONAL_COPY = "shared_image_embedding.positional_embedding"


def hf_vision_config(cfg: ModelConfig) -> Sam2VisionConfig:
    """The transformers vision config equal to masklet's trunk + neck config."""
    h = cfg.hiera
    dims = list(reversed(h.channel_list))
    heads = [h.num_heads * 2**i for i in range(len(h.stages))]
    side = cfg.image_size // 4  # highest-resolution FPN level: patch stride 4
    trunk = Sam2HieraDetConfig(
        hidden_size=h.embed_dim,
        num_attention_heads=h.num_heads,
        image_size=[cfg.image_size, cfg.image_size],
        blocks_per_stage=list(h.stages),
        embed_dim_per_stage=dims,
        num_attention_heads_per_stage=heads,
        window_size_per_stage=list(h.window_spec),
        global_attention_blocks=list(h.global_att_blocks),
        window_positional_embedding_background_size=list(h.window_pos_embed_bkg_spatial_size),
    )
    return Sam2VisionConfig(
        backbone_config=trunk,
        backbone_channel_list=list(h.channel_list),
        backbone_feature_sizes=[[side, side], [side // 2, side // 2], [side // 4, side // 4]],
    )


def hf_video_model(cfg: ModelConfig) -> torch.nn.Module:
    v21 = cfg.no_obj_embed_spatial
    config = Sam2VideoConfig(
        vision_config=hf_vision_config(cfg),
        prompt_encoder_config=dict(image_size=cfg.image_size),
        image_size=cfg.image_size,
        enable_temporal_pos_encoding_for_object_pointers=v21,
        enable_occlusion_spatial_embedding=v21,
        memory_attention_rope_feat_sizes=[cfg.image_embedding_size] * 2,
    )
    return Sam2VideoModel(config).eval()


def hf_image_model(cfg: ModelConfig) -> torch.nn.Module:
    config = Sam2Config(
        vision_config=hf_vision_config(cfg),
        prompt_encoder_config=dict(image_size=cfg.image_size),
    )
    return Sam2Model(config).eval()


def tie_positional(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Converted checkpoints hold one matrix twice; a fresh random model holds two."""
    out = dict(state_dict)
    out[POSITIONAL_COPY] = out[POSITIONAL].clone()
    return out


def official_to_hf(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """An independent inverse, written from the renames in transformers' conversion script
    (`convert_sam2_video_to_hf.py` is not shipped in the wheel, so it cannot be imported)."""
    plain = [
        ("image_encoder.neck.", "vision_encoder.neck."),
        ("image_encoder.trunk.", "vision_encoder.backbone."),
        ("sam_prompt_encoder.", "prompt_encoder."),
        ("sam_mask_decoder.", "mask_decoder."),
        ("pe_layer.positional_encoding_gaussian_matrix", "shared_embedding.positional_embedding"),
        ("mask_downscaling.0.", "mask_embed.conv1."),
        ("mask_downscaling.1.", "mask_embed.layer_norm1."),
        ("mask_downscaling.3.", "mask_embed.conv2."),
        ("mask_downscaling.4.", "mask_embed.layer_norm2."),
        ("mask_downscaling.6.", "mask_embed.conv3."),
        ("output_upscaling.0.", "upscale_conv1."),
        ("output_upscaling.1.", "upscale_layer_norm."),
        ("output_upscaling.3.", "upscale_conv2."),
        ("patch_embed.proj.", "patch_embed.projection."),
        ("pix_feat_proj", "feature_projection"),
        ("memory_encoder.out_proj", "memory_encoder.projection"),
        ("fuser.", "memory_fuser."),
        ("dwconv", "depthwise_conv"),
        ("pwconv", "pointwise_conv"),
        (".gamma", ".scale"),
        ("maskmem_tpos_enc", "memory_temporal_positional_encoding"),
        ("no_mem_embed", "no_memory_embedding"),
        ("no_mem_pos_enc", "no_memory_positional_encoding"),
        ("no_obj_embed_spatial", "occlusion_spatial_embedding_parameter"),
        ("obj_ptr_tpos_proj", "temporal_positional_encoding_projection_layer"),
        ("no_obj_ptr", "no_object_pointer"),
        ("obj_ptr_proj", "object_pointer_proj"),
        ("out_proj", "o_proj"),
        (".norm", ".layer_norm"),
    ]
    three_layer_mlps = r"(iou_prediction_head|output_hypernetworks_mlps\.\d+|pred_obj_score_head|object_pointer_proj)"
    out: dict[str, torch.Tensor] = {}
    points = []
    for key, value in state_dict.items():
        if key.startswith("sam_prompt_encoder.point_embeddings."):
            points.append((int(key.split(".")[2]), value))
            continue
        for old, new in plain:
            key = key.replace(old, new)
        key = re.sub(r"neck\.convs\.(\d+)\.conv\.", r"neck.convs.\1.", key)
        key = re.sub(rf"{three_layer_mlps}\.layers\.0\.", r"\1.proj_in.", key)
        key = re.sub(rf"{three_layer_mlps}\.layers\.1\.", r"\1.layers.0.", key)
        key = re.sub(rf"{three_layer_mlps}\.layers\.2\.", r"\1.proj_out.", key)
        key = re.sub(r"mlp\.layers\.0\.", "mlp.proj_in.", key)
        key = re.sub(r"mlp\.layers\.1\.", "mlp.proj_out.", key)
        match = re.search(r"mask_downsampler\.encoder\.(\d+)\.", key)
        if match:
            i = int(match[1])
            name = (
                "final_conv"
                if i == 12
                else f"layers.{i // 3}." + ("conv" if i % 3 == 0 else "layer_norm")
            )
            key = key.replace(match[0], f"mask_downsampler.{name}.")
        out[key] = value
    out["prompt_encoder.point_embed.weight"] = torch.cat([v for _, v in sorted(points)], dim=0)
    out[POSITIONAL_COPY] = out[POSITIONAL]
    return out


VIDEO_VARIANTS = ["sam2.1_hiera_tiny", "sam2_hiera_tiny", "sam2.1_hiera_base_plus"]


@pytest.mark.parametrize("name", VIDEO_VARIANTS)
def test_video_model_keys_and_shapes_equal_the_official_layout(name: str) -> None:
    cfg = small_config(name, image_size=IMAGE_SIZE)
    hf = tie_positional(hf_video_model(cfg).state_dict())
    official = reference_model(cfg).state_dict()

    mapped = hf_to_official(hf)

    assert is_hf_layout(hf) and not is_hf_layout(official)
    assert sorted(mapped) == sorted(official)
    assert {k: tuple(v.shape) for k, v in mapped.items()} == {
        k: tuple(v.shape) for k, v in official.items()
    }


def test_every_hf_key_is_consumed() -> None:
    """Each HF tensor lands in the result: one-to-one, except the [4, C] point table (-> four
    keys) and the duplicated positional matrix (two keys -> one)."""
    hf = tie_positional(hf_video_model(small_config(image_size=IMAGE_SIZE)).state_dict())
    mapped = hf_to_official(hf)
    assert len(mapped) == len(hf) + 3 - 1
    mapped_ids = {id(v) for v in mapped.values()}
    unmapped = [k for k, v in hf.items() if id(v) not in mapped_ids and k not in {POSITIONAL_COPY}]
    assert unmapped == ["prompt_encoder.point_embed.weight"]  # split into copies, checked below
    table = hf["prompt_encoder.point_embed.weight"]
    for i in range(4):
        assert torch.equal(
            mapped[f"sam_prompt_encoder.point_embeddings.{i}.weight"], table[i : i + 1]
        )


def test_image_only_model_maps_to_a_subset_of_the_official_keys() -> None:
    cfg = small_config(image_size=IMAGE_SIZE)
    official = reference_model(cfg).state_dict()
    mapped = hf_to_official(tie_positional(hf_image_model(cfg).state_dict()))
    assert set(mapped) < set(official)
    assert all(mapped[k].shape == official[k].shape for k in mapped)
    missing = set(official) - set(mapped)
    assert all(
        k.startswith(("memory_", "mask_downsample", "obj_ptr", "no_obj", "maskmem", "no_mem_pos"))
        for k in missing
    )


@pytest.mark.parametrize("name", ["sam2.1_hiera_tiny", "sam2_hiera_tiny"])
def test_round_trip_through_the_transformers_model_gives_back_the_same_tensors(name: str) -> None:
    cfg = small_config(name, image_size=IMAGE_SIZE)
    official = perturbed_state_dict(reference_model(cfg), seed=3)
    hf_model = hf_video_model(cfg)
    # transformers itself accepts the converted dict, strictly: names and shapes are its own
    hf_model.load_state_dict(official_to_hf(official), strict=True)

    back = hf_to_official(hf_model.state_dict())

    assert sorted(back) == sorted(official)
    for key, value in official.items():
        assert torch.equal(back[key], value), key


@torch.no_grad()
def test_mapped_weights_give_the_transformers_outputs_in_the_reference() -> None:
    """Same-shaped tensors (MLP layers, norms) swapped by a wrong rule would pass the shape
    tests; running both models on the same prompt would not."""
    cfg = small_config(image_size=IMAGE_SIZE)
    hf_model = hf_image_model(cfg)
    weights = tie_positional(perturbed_state_dict(hf_model, seed=1))
    hf_model.load_state_dict(weights, strict=True)
    ref = reference_model(cfg)
    missing, unexpected = ref.load_state_dict(hf_to_official(weights), strict=False)
    assert not unexpected and all(not k.startswith(("image_encoder", "sam_")) for k in missing)

    gen = torch.Generator().manual_seed(0)
    image = torch.randn(1, 3, IMAGE_SIZE, IMAGE_SIZE, generator=gen)
    points = torch.tensor([[[[80.0, 120.0], [200.0, 30.0]]]])  # [B, prompts, N, 2] in pixels
    labels = torch.tensor([[[1, 0]]])
    hf_out = hf_model(pixel_values=image, input_points=points, input_labels=labels)

    backbone = ref.forward_image(image)
    _, feats, _, sizes = ref._prepare_backbone_features(backbone)
    feats[-1] = feats[-1] + ref.no_mem_embed
    maps = [f.permute(1, 2, 0).reshape(1, -1, *s) for f, s in zip(feats, sizes, strict=True)]
    sparse, dense = ref.sam_prompt_encoder(points=(points[0], labels[0]), boxes=None, masks=None)
    masks, ious, _, object_logits = ref.sam_mask_decoder(
        image_embeddings=maps[-1],
        image_pe=ref.sam_prompt_encoder.get_dense_pe(),
        sparse_prompt_embeddings=sparse,
        dense_prompt_embeddings=dense,
        multimask_output=True,
        repeat_image=False,
        high_res_features=maps[:-1],
    )
    assert hf_out.pred_masks.abs().max() > 0.1  # the comparison is not between zeros
    assert_close(hf_out.pred_masks[0], masks, atol=1e-4)
    assert_close(hf_out.iou_scores[0], ious, atol=1e-5)
    assert_close(hf_out.object_score_logits[0], object_logits, atol=1e-5)


def test_unknown_module_is_refused() -> None:
    hf = tie_positional(hf_image_model(small_config(image_size=IMAGE_SIZE)).state_dict())
    hf["text_encoder.weight"] = torch.zeros(1)
    with pytest.raises(CheckpointError, match="unrecognised key 'text_encoder.weight'"):
        hf_to_official(hf)


def test_key_left_with_hf_vocabulary_is_refused() -> None:
    hf = {"vision_encoder.backbone.blocks.0.extra_layer_norm.weight": torch.zeros(1)}
    with pytest.raises(CheckpointError, match="still contains 'layer_norm'"):
        hf_to_official(hf)


def test_differing_positional_copies_warn_and_use_the_prompt_encoder_copy() -> None:
    hf = hf_image_model(small_config(image_size=IMAGE_SIZE)).state_dict()
    hf[POSITIONAL_COPY] = hf[POSITIONAL] + 1.0
    with pytest.warns(UserWarning, match="differs"):
        mapped = hf_to_official(hf)
    assert torch.equal(
        mapped["sam_prompt_encoder.pe_layer.positional_encoding_gaussian_matrix"], hf[POSITIONAL]
    )


def test_no_official_key_uses_hf_vocabulary() -> None:
    """The leftover guard in hf_to_official must never fire on a correctly mapped key."""
    from masklet.hf_keys import _HF_ONLY_WORDS

    official = reference_model(small_config("sam2.1_hiera_base_plus")).state_dict()
    assert [k for k in official if any(w in k for w in _HF_ONLY_WORDS)] == []


@torch.no_grad()
def test_mapped_memory_modules_compute_what_the_transformers_video_model_computes() -> None:
    """The video path's modules, run on the same inputs in transformers' Sam2VideoModel and in
    the reference loaded through `hf_to_official`: a swap of two same-shaped memory tensors
    (attention projections, norms, fuser blocks, pointer MLP layers) changes the outputs."""
    cfg = small_config(image_size=IMAGE_SIZE)
    hf_model = hf_video_model(cfg)
    weights = tie_positional(perturbed_state_dict(hf_model, seed=4))
    hf_model.load_state_dict(weights, strict=True)
    ref = reference_model(cfg)
    ref.load_state_dict(hf_to_official(weights), strict=True)

    gen = torch.Generator().manual_seed(5)
    side, d, mem = cfg.image_embedding_size, cfg.hidden_dim, cfg.mem_dim
    pix = torch.randn(2, d, side, side, generator=gen)
    masks = torch.rand(2, 1, IMAGE_SIZE, IMAGE_SIZE, generator=gen)  # already sigmoid-ed
    hf_feat, hf_pos = hf_model.memory_encoder(pix, masks)
    ref_enc = ref.memory_encoder(pix, masks, skip_mask_sigmoid=True)
    assert hf_feat.abs().max() > 0.1  # not a comparison of zeros
    assert_close(hf_feat, ref_enc["vision_features"], atol=1e-4)
    assert_close(hf_pos, ref_enc["vision_pos_enc"][0], atol=1e-5)

    hw, num_ptr = side * side, 4
    mem_len = 2 * hw + num_ptr  # two memory frames and one pointer split into 4 tokens
    inputs = dict(
        curr=torch.randn(hw, 2, d, generator=gen),
        memory=torch.randn(mem_len, 2, mem, generator=gen),
        curr_pos=torch.randn(hw, 2, d, generator=gen),
        memory_pos=torch.randn(mem_len, 2, mem, generator=gen),
    )
    hf_out = hf_model.memory_attention(
        current_vision_features=inputs["curr"],
        memory=inputs["memory"],
        current_vision_position_embeddings=inputs["curr_pos"],
        memory_posision_embeddings=inputs["memory_pos"],  # sic: transformers' spelling
        num_object_pointer_tokens=num_ptr,
    )
    ref_out = ref.memory_attention(**inputs, num_obj_ptr_tokens=num_ptr)  # [HW, B, C]
    assert ref_out.abs().max() > 0.1
    assert_close(hf_out.squeeze(0).transpose(0, 1), ref_out, atol=1e-4)  # [1, B, HW, C] ->

    tokens = torch.randn(3, d, generator=gen)
    assert_close(hf_model.object_pointer_proj(tokens), ref.obj_ptr_proj(tokens), atol=1e-5)
    sine = torch.randn(3, d, generator=gen)
    assert_close(
        hf_model.temporal_positional_encoding_projection_layer(sine),
        ref.obj_ptr_tpos_proj(sine),
        atol=1e-5,
    )
    # plain parameters: the same tensors under their official names
    for hf_name, official in (
        ("memory_temporal_positional_encoding", ref.maskmem_tpos_enc),
        ("no_object_pointer", ref.no_obj_ptr),
        ("no_memory_embedding", ref.no_mem_embed),
        ("no_memory_positional_encoding", ref.no_mem_pos_enc),
        ("occlusion_spatial_embedding_parameter", ref.no_obj_embed_spatial),
    ):
        assert torch.equal(getattr(hf_model, hf_name), official), hf_name
