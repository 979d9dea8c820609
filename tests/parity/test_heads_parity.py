"""Parity of the prompt encoder and mask decoder with the reference `sam2==1.1.0`.

Both sides get the same perturbed random weights and identical inputs; outputs must agree
to 1e-4 (max abs).
"""

from __future__ import annotations

import dataclasses

import pytest
import torch

from masklet.config import ModelConfig
from masklet.modeling.mask_decoder import MaskDecoder, stability_score
from masklet.modeling.memory_attention import MemoryAttention
from masklet.modeling.memory_encoder import MemoryEncoder
from masklet.modeling.prompt_encoder import PromptEncoder
from tests.parity.reference import (
    assert_close,
    perturbed_state_dict,
    reference_model,
    small_config,
)

ATOL = 1e-4
# one SAM 2.0 and two SAM 2.1 variants (base_plus has 2 trunk heads: another trunk shape)
VARIANTS = ["sam2_hiera_tiny", "sam2.1_hiera_small", "sam2.1_hiera_base_plus"]


def build_ours(cfg: ModelConfig) -> dict[str, torch.nn.Module]:
    """Our four heads, built from the config exactly as the model core builds them."""
    return {
        "sam_prompt_encoder": PromptEncoder(
            embed_dim=cfg.hidden_dim,
            image_embedding_size=(cfg.image_embedding_size,) * 2,
            input_image_size=(cfg.image_size,) * 2,
            mask_in_chans=cfg.mask_decoder.mask_in_chans,
        ),
        "sam_mask_decoder": MaskDecoder(
            cfg.mask_decoder,
            cfg.hidden_dim,
            use_high_res_features=cfg.use_high_res_features_in_sam,
            iou_prediction_use_sigmoid=cfg.iou_prediction_use_sigmoid,
            pred_obj_scores=cfg.pred_obj_scores,
            pred_obj_scores_mlp=cfg.pred_obj_scores_mlp,
            use_multimask_token_for_obj_ptr=cfg.use_multimask_token_for_obj_ptr,
        ),
        "memory_attention": MemoryAttention(cfg.memory_attention, cfg.hidden_dim, cfg.mem_dim),
        "memory_encoder": MemoryEncoder(cfg.memory_encoder, cfg.hidden_dim, cfg.backbone_stride),
    }


def paired(
    cfg: ModelConfig, seed: int = 0, overrides: dict | None = None
) -> tuple[torch.nn.Module, dict[str, torch.nn.Module]]:
    """Reference model and our heads, loaded with the same perturbed weights (strictly).
    `overrides`: flags flipped on purpose on both sides (reference YAML paths)."""
    ref = reference_model(cfg, overrides)
    state = perturbed_state_dict(ref, seed=seed)
    ref.load_state_dict(state)
    ours = build_ours(cfg)
    for prefix, module in ours.items():
        sub = {k[len(prefix) + 1 :]: v for k, v in state.items() if k.startswith(prefix + ".")}
        module.load_state_dict(sub, strict=True)
        module.eval()
    return ref, ours


@pytest.mark.parametrize("name", ModelConfig.names())
def test_state_dict_keys_and_shapes_equal_reference(name: str) -> None:
    cfg = ModelConfig.named(name)
    # the reference is built with a shrunk trunk (fast); everything the heads read is the
    # official variant's, which the next line checks
    ref_cfg = small_config(name, image_size=cfg.image_size)
    assert dataclasses.replace(ref_cfg, hiera=cfg.hiera, neck=cfg.neck) == cfg
    ref = reference_model(ref_cfg)
    for prefix, module in build_ours(cfg).items():
        ours = {k: tuple(v.shape) for k, v in module.state_dict().items()}
        theirs = {k: tuple(v.shape) for k, v in getattr(ref, prefix).state_dict().items()}
        assert ours == theirs, f"{prefix}: {set(ours) ^ set(theirs)}"


@pytest.fixture(scope="module", params=VARIANTS)
def pair(request: pytest.FixtureRequest) -> tuple[ModelConfig, torch.nn.Module, dict]:
    cfg = small_config(request.param)
    ref, ours = paired(cfg, seed=VARIANTS.index(request.param))
    return cfg, ref, ours


def _prompts(cfg: ModelConfig, case: str, batch: int, gen: torch.Generator) -> dict:
    size = cfg.image_size
    points = (torch.rand(batch, 3, 2, generator=gen) * size, torch.tensor([[1, 0, 1]] * batch))
    x0y0 = torch.rand(batch, 2, generator=gen) * size / 2
    boxes = torch.cat((x0y0, x0y0 + size / 4), dim=1)
    side = 4 * cfg.image_embedding_size
    masks = torch.randn(batch, 1, side, side, generator=gen) * 4
    if case == "points":
        return dict(points=points, boxes=None, masks=None)
    if case == "points_padding":
        labels = torch.tensor([[1, -1, 0]] * batch, dtype=torch.int32)
        return dict(points=(points[0], labels), boxes=None, masks=None)
    if case == "boxes":
        return dict(points=None, boxes=boxes, masks=None)
    if case == "boxes_points":
        return dict(points=points, boxes=boxes, masks=None)
    if case == "masks":
        return dict(points=None, boxes=None, masks=masks)
    if case == "points_masks":
        return dict(points=points, boxes=None, masks=masks)
    return dict(points=None, boxes=None, masks=None)


PROMPT_CASES = [
    "points",
    "points_padding",
    "boxes",
    "boxes_points",
    "masks",
    "points_masks",
    "none",
]


@pytest.mark.parametrize("case", PROMPT_CASES)
def test_prompt_encoder_matches_reference(pair: tuple, case: str) -> None:
    cfg, ref, ours = pair
    prompts = _prompts(cfg, case, batch=2, gen=torch.Generator().manual_seed(1))
    with torch.no_grad():
        sparse_ref, dense_ref = ref.sam_prompt_encoder(**prompts)
        sparse, dense = ours["sam_prompt_encoder"](**prompts)
    assert sparse.shape[1] > 0 or case in ("masks", "none")
    assert_close(sparse, sparse_ref, ATOL)
    assert_close(dense, dense_ref, ATOL)
    assert_close(ours["sam_prompt_encoder"].get_dense_pe(), ref.sam_prompt_encoder.get_dense_pe())


def _decoder_inputs(
    cfg: ModelConfig, ref: torch.nn.Module, batch: int, image_batch: int, seed: int
) -> dict:
    gen = torch.Generator().manual_seed(seed)
    c, s = cfg.hidden_dim, cfg.image_embedding_size
    with torch.no_grad():
        sparse, dense = ref.sam_prompt_encoder(**_prompts(cfg, "points", batch, gen))
        pe = ref.sam_prompt_encoder.get_dense_pe()
    inputs = dict(
        image_embeddings=torch.randn(image_batch, c, s, s, generator=gen),
        image_pe=pe,
        sparse_prompt_embeddings=sparse,
        dense_prompt_embeddings=dense,
    )
    if cfg.use_high_res_features_in_sam:
        inputs["high_res_features"] = [
            torch.randn(image_batch, c // 8, 4 * s, 4 * s, generator=gen),
            torch.randn(image_batch, c // 4, 2 * s, 2 * s, generator=gen),
        ]
    return inputs


def _compare_decoder(ref: torch.nn.Module, ours: dict, inputs: dict, **flags: bool) -> None:
    with torch.no_grad():
        expected = ref.sam_mask_decoder(**inputs, **flags)
        out = ours["sam_mask_decoder"](**inputs, **flags)
    actual = (out.masks, out.ious, out.tokens, out.object_score_logits)
    for name, a, e in zip(
        ("masks", "iou", "tokens", "object_score"), actual, expected, strict=True
    ):
        assert a.shape == e.shape, name
        assert_close(a, e, ATOL)


@pytest.mark.parametrize("multimask", [True, False])
@pytest.mark.parametrize("repeat_image", [True, False])
def test_mask_decoder_matches_reference(pair: tuple, multimask: bool, repeat_image: bool) -> None:
    cfg, ref, ours = pair
    batch = 3
    inputs = _decoder_inputs(cfg, ref, batch, 1 if repeat_image else batch, seed=2)
    _compare_decoder(ref, ours, inputs, multimask_output=multimask, repeat_image=repeat_image)


# every decoder flag the official variants keep fixed, flipped
FLAG_VARIANTS = {
    "no_high_res_linear_obj_head": dict(
        use_high_res_features_in_sam=False,
        pred_obj_scores_mlp=False,
        iou_prediction_use_sigmoid=False,
        use_multimask_token_for_obj_ptr=False,
    ),
    "no_obj_scores_no_dynamic": dict(pred_obj_scores=False, fixed_no_obj_ptr=False),
}


@pytest.mark.parametrize("flags", list(FLAG_VARIANTS))
def test_mask_decoder_flags_match_reference(flags: str) -> None:
    cfg = dataclasses.replace(small_config("sam2_hiera_tiny"), **FLAG_VARIANTS[flags])
    overrides: dict = dict(FLAG_VARIANTS[flags])
    if flags == "no_obj_scores_no_dynamic":
        md = dataclasses.replace(cfg.mask_decoder, dynamic_multimask_via_stability=False)
        cfg = dataclasses.replace(cfg, mask_decoder=md)
        overrides["sam_mask_decoder_extra_args.dynamic_multimask_via_stability"] = False
    ref, ours = paired(cfg, seed=5, overrides=overrides)
    inputs = _decoder_inputs(cfg, ref, batch=2, image_batch=2, seed=6)
    for multimask in (True, False):
        _compare_decoder(ref, ours, inputs, multimask_output=multimask, repeat_image=False)


def _check_fallback(decoder: MaskDecoder, inputs: dict) -> torch.Tensor:
    """Run the single-mask output and check each row took token 0 if stable, else the best
    multimask token. Returns the [B] stability flags."""
    md = decoder.config
    with torch.no_grad():
        every = decoder.predict_all(
            inputs["image_embeddings"],
            inputs["image_pe"],
            inputs["sparse_prompt_embeddings"],
            inputs["dense_prompt_embeddings"],
            repeat_image=False,
            high_res_features=inputs.get("high_res_features"),
        )
        out = decoder(**inputs, multimask_output=False, repeat_image=False)
    all_masks, all_iou, masks, iou = every.masks, every.ious, out.masks, out.ious
    scores = stability_score(all_masks[:, 0], md.dynamic_multimask_stability_delta)  # [B]
    stable = scores >= md.dynamic_multimask_stability_thresh
    best = all_iou[:, 1:].argmax(-1) + 1
    for b in range(masks.shape[0]):
        token = 0 if stable[b] else int(best[b])
        assert torch.equal(masks[b, 0], all_masks[b, token])
        assert torch.equal(iou[b, 0], all_iou[b, token])
    return scores


def test_dynamic_multimask_fallback_triggers_and_matches(pair: tuple) -> None:
    cfg, ref, ours = pair
    decoder = ours["sam_mask_decoder"]
    inputs = _decoder_inputs(cfg, ref, batch=4, image_batch=4, seed=3)
    # with the official threshold the random weights give unstable single masks
    scores = _check_fallback(decoder, inputs)
    assert (scores < cfg.mask_decoder.dynamic_multimask_stability_thresh).any()
    _compare_decoder(ref, ours, inputs, multimask_output=False, repeat_image=False)

    # a threshold between the scores makes one batch hold both stable and fallback rows
    thresh = float(scores.median())
    official = decoder.config
    decoder.config = dataclasses.replace(official, dynamic_multimask_stability_thresh=thresh)
    ref.sam_mask_decoder.dynamic_multimask_stability_thresh = thresh
    try:
        stable = _check_fallback(decoder, inputs) >= thresh
        assert stable.any() and (~stable).any()
        _compare_decoder(ref, ours, inputs, multimask_output=False, repeat_image=False)
    finally:
        decoder.config = official
        ref.sam_mask_decoder.dynamic_multimask_stability_thresh = (
            official.dynamic_multimask_stability_thresh
        )
