"""Shapes and behaviour of the prompt encoder, mask decoder, memory attention and encoder."""

from __future__ import annotations

import dataclasses

import pytest
import torch
import torch.nn.functional as F

from masklet.config import MaskDecoderConfig, MemoryAttentionConfig, MemoryEncoderConfig
from masklet.errors import InvalidInputError, InvalidPromptError
from masklet.modeling.mask_decoder import MaskDecoder, stability_score
from masklet.modeling.memory_attention import MemoryAttention
from masklet.modeling.memory_encoder import MemoryEncoder
from masklet.modeling.position import apply_rope, axial_rope
from masklet.modeling.prompt_encoder import PromptEncoder
from masklet.modeling.transformer import Attention, RoPEAttention, TwoWayTransformer

C = 32  # small widths keep these tests fast
SIDE = 8  # image-embedding side
IMAGE = 128  # input image side (stride 16)
MEM = 16


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


def prompt_encoder() -> PromptEncoder:
    return PromptEncoder(C, (SIDE, SIDE), (IMAGE, IMAGE), mask_in_chans=16).eval()


def mask_decoder(**overrides: object) -> MaskDecoder:
    cfg = MaskDecoderConfig(mlp_dim=64, num_heads=2, iou_head_hidden_dim=C)
    flags: dict = dict(
        use_high_res_features=True,
        iou_prediction_use_sigmoid=True,
        pred_obj_scores=True,
        pred_obj_scores_mlp=True,
        use_multimask_token_for_obj_ptr=True,
    )
    flags.update(overrides)
    return MaskDecoder(cfg, C, **flags).eval()


def memory_attention() -> MemoryAttention:
    cfg = MemoryAttentionConfig(num_layers=2, dim_feedforward=64)
    return MemoryAttention(cfg, C, MEM).eval()


# ---------------------------------------------------------------- prompt encoder


def test_prompt_encoder_shapes_and_padding() -> None:
    enc = prompt_encoder()
    coords = torch.rand(3, 2, 2) * IMAGE
    labels = torch.tensor([[1, 0]] * 3)
    sparse, dense = enc((coords, labels), None, None)
    assert sparse.shape == (3, 3, C)  # 2 points + 1 padding token (no box)
    assert dense.shape == (3, C, SIDE, SIDE)
    # the padding token is exactly the learned "not a point" vector
    assert torch.equal(sparse[:, 2], enc.not_a_point_embed.weight.expand(3, -1))
    # without a mask, every cell holds the "no mask" vector
    assert torch.equal(dense[1, :, 4, 5], enc.no_mask_embed.weight[0])

    boxes = torch.tensor([[10.0, 20.0, 60.0, 90.0]] * 3)
    sparse, _ = enc((coords, labels), boxes, None)
    assert sparse.shape == (3, 4, C)  # 2 points + 2 corners, no padding
    assert enc.get_dense_pe().shape == (1, C, SIDE, SIDE)


def test_prompt_encoder_padding_ignores_position_and_labels_shift_embedding() -> None:
    enc = prompt_encoder()
    a = torch.tensor([[[5.0, 5.0]]])
    b = torch.tensor([[[100.0, 70.0]]])
    pad = torch.tensor([[-1]])
    assert torch.equal(enc((a, pad), None, None)[0], enc((b, pad), None, None)[0])
    pos = enc((a, torch.tensor([[1]])), None, None)[0][:, 0]
    neg = enc((a, torch.tensor([[0]])), None, None)[0][:, 0]
    diff = enc.point_embeddings[1].weight - enc.point_embeddings[0].weight
    torch.testing.assert_close(pos - neg, diff)


def test_prompt_encoder_mask_and_empty_prompts() -> None:
    enc = prompt_encoder()
    assert enc.mask_input_size == (4 * SIDE, 4 * SIDE)
    _, dense = enc(None, None, torch.randn(2, 1, 4 * SIDE, 4 * SIDE))
    assert dense.shape == (2, C, SIDE, SIDE)
    sparse, dense = enc(None, None, None)
    assert sparse.shape == (1, 0, C) and dense.shape == (1, C, SIDE, SIDE)


def test_prompt_encoder_rejects_bad_prompts() -> None:
    enc = prompt_encoder()
    coords = torch.zeros(1, 2, 2)
    with pytest.raises(InvalidPromptError, match="-1..3"):
        enc((coords, torch.tensor([[1, 7]])), None, None)
    with pytest.raises(InvalidPromptError, match=r"\[B, N, 2\]"):
        enc((torch.zeros(1, 2, 3), torch.tensor([[1, 0]])), None, None)
    with pytest.raises(InvalidPromptError, match="mask input size"):
        enc(None, None, torch.zeros(1, 1, 10, 10))
    with pytest.raises(InvalidInputError, match="batch size"):
        enc((coords, torch.tensor([[1, 0]])), torch.zeros(2, 4), None)


# ---------------------------------------------------------------- mask decoder


def _decoder_inputs(batch: int, image_batch: int) -> dict:
    enc = prompt_encoder()
    sparse, dense = enc((torch.rand(batch, 2, 2) * IMAGE, torch.ones(batch, 2)), None, None)
    return dict(
        image_embeddings=torch.randn(image_batch, C, SIDE, SIDE),
        image_pe=enc.get_dense_pe(),
        sparse_prompt_embeddings=sparse,
        dense_prompt_embeddings=dense,
        high_res_features=[
            torch.randn(image_batch, C // 8, 4 * SIDE, 4 * SIDE),
            torch.randn(image_batch, C // 4, 2 * SIDE, 2 * SIDE),
        ],
    )


@pytest.mark.parametrize("multimask", [True, False])
def test_mask_decoder_shapes(multimask: bool) -> None:
    dec = mask_decoder()
    with torch.no_grad():
        out = dec(**_decoder_inputs(3, 1), multimask_output=multimask, repeat_image=True)
    masks, iou, tokens, obj = out.masks, out.ious, out.tokens, out.object_score_logits
    m = 3 if multimask else 1
    assert masks.shape == (3, m, 4 * SIDE, 4 * SIDE)
    assert iou.shape == (3, m) and ((iou >= 0) & (iou <= 1)).all()  # sigmoid output
    assert tokens.shape == (3, m, C)
    assert obj.shape == (3, 1)


def test_mask_decoder_pointer_token_choice_and_constant_object_score() -> None:
    dec = mask_decoder(pred_obj_scores=False, use_multimask_token_for_obj_ptr=False)
    with torch.no_grad():
        out = dec(**_decoder_inputs(2, 2), multimask_output=True, repeat_image=False)
    tokens, obj = out.tokens, out.object_score_logits
    assert tokens.shape == (2, 1, C)  # the single-mask token even with multimask output
    assert torch.equal(obj, torch.full((2, 1), 10.0))


def test_mask_decoder_rejects_missing_high_res_and_batch_mismatch() -> None:
    dec = mask_decoder()
    inputs = _decoder_inputs(2, 2)
    with pytest.raises(InvalidInputError, match="high_res_features"):
        dec(**{**inputs, "high_res_features": None}, multimask_output=True, repeat_image=False)
    inputs = _decoder_inputs(2, 3)
    with pytest.raises(InvalidInputError, match="repeat_image"):
        dec(**inputs, multimask_output=True, repeat_image=False)


def test_stability_score() -> None:
    logits = torch.tensor(
        [
            [[5.0, 5.0], [-5.0, -5.0]],  # far from 0: stable
            [[5.0, 0.01], [0.02, -5.0]],  # 1 above +delta, 3 above -delta
            [[-5.0, -5.0], [-5.0, -5.0]],  # empty mask counts as stable
        ]
    )
    torch.testing.assert_close(stability_score(logits, 0.05), torch.tensor([1.0, 1 / 3, 1.0]))


def test_dynamic_fallback_off_while_training() -> None:
    dec = mask_decoder()
    inputs = _decoder_inputs(2, 2)
    dec.config = dataclasses.replace(dec.config, dynamic_multimask_stability_thresh=2.0)
    with torch.no_grad():
        all_masks = dec.predict_all(
            inputs["image_embeddings"],
            inputs["image_pe"],
            inputs["sparse_prompt_embeddings"],
            inputs["dense_prompt_embeddings"],
            repeat_image=False,
            high_res_features=inputs["high_res_features"],
        ).masks
        eval_masks = dec(**inputs, multimask_output=False, repeat_image=False).masks
        dec.train()
        train_masks = dec(**inputs, multimask_output=False, repeat_image=False).masks
    # an unreachable threshold: eval always falls back, training keeps token 0
    assert not torch.equal(eval_masks, all_masks[:, :1])
    assert torch.equal(train_masks, all_masks[:, :1])


# ---------------------------------------------------------------- attention


def test_two_way_transformer_shapes() -> None:
    t = TwoWayTransformer(depth=2, embedding_dim=C, num_heads=2, mlp_dim=64)
    tokens, image = t(torch.randn(2, C, 4, 5), torch.randn(2, C, 4, 5), torch.randn(2, 7, C))
    assert tokens.shape == (2, 7, C) and image.shape == (2, 20, C)


def test_attention_kv_dim_and_downsample() -> None:
    attn = Attention(C, 2, downsample_rate=2, kv_in_dim=MEM)
    assert attn.q_proj.out_features == C // 2
    kv = torch.randn(2, 9, MEM)
    assert attn(torch.randn(2, 5, C), kv, kv).shape == (2, 5, C)


def test_rope_attention_tiles_angles_over_frames() -> None:
    """Keys of two identical frames attend exactly like one frame: the angles repeat."""
    attn = RoPEAttention(C, 1, kv_in_dim=MEM, rope_k_repeat=True).eval()
    q = torch.randn(1, 16, C)
    k, v = torch.randn(1, 16, MEM), torch.randn(1, 16, MEM)
    one = attn(q, k, v)
    two = attn(q, torch.cat((k, k), 1), torch.cat((v, v), 1))
    torch.testing.assert_close(one, two, atol=1e-5, rtol=1e-5)


def test_rope_attention_leaves_trailing_pointer_keys_unrotated() -> None:
    attn = RoPEAttention(C, 2, kv_in_dim=MEM, rope_k_repeat=True).eval()
    q, k, v = torch.randn(1, 16, C), torch.randn(1, 16 + 3, MEM), torch.randn(1, 16 + 3, MEM)
    out = attn(q, k, v, num_k_exclude_rope=3)

    # by hand: rotate the 16 grid keys and the queries, keep the 3 pointer keys as projected
    def heads(x: torch.Tensor) -> torch.Tensor:
        return x.reshape(1, -1, 2, C // 2).transpose(1, 2)  # [1, N, C] -> [1, 2, N, C/2]

    angles = axial_rope(C // 2, 4, 4)
    qh = apply_rope(heads(attn.q_proj(q)), angles)
    kh = heads(attn.k_proj(k))
    kh = torch.cat((apply_rope(kh[:, :, :16], angles), kh[:, :, 16:]), dim=2)
    ctx = F.scaled_dot_product_attention(qh, kh, heads(attn.v_proj(v)))
    expected = attn.out_proj(ctx.transpose(1, 2).reshape(1, 16, C))
    torch.testing.assert_close(out, expected)


def test_rope_attention_rejects_bad_grids() -> None:
    attn = RoPEAttention(C, 1)
    with pytest.raises(InvalidInputError, match="square"):
        attn(torch.randn(1, 15, C), torch.randn(1, 15, C), torch.randn(1, 15, C))
    with pytest.raises(InvalidInputError, match="exactly once"):
        attn(torch.randn(1, 16, C), torch.randn(1, 32, C), torch.randn(1, 32, C))


# ---------------------------------------------------------------- memory


def test_memory_attention_shapes_and_bf16_memory() -> None:
    ma = memory_attention()
    hw, batch = SIDE * SIDE, 2
    curr, curr_pos = torch.randn(hw, batch, C), torch.randn(hw, batch, C)
    memory = torch.randn(2 * hw + 4, batch, MEM).bfloat16()
    memory_pos = torch.randn(2 * hw + 4, batch, MEM).bfloat16()
    with torch.no_grad():
        out = ma(curr, memory, curr_pos, memory_pos, num_obj_ptr_tokens=4)
        # bf16 memory is the same as its float32 upcast: the cast happens once at entry
        ref = ma(curr, memory.float(), curr_pos, memory_pos.float(), num_obj_ptr_tokens=4)
        no_pos = ma(curr, memory, None, None, num_obj_ptr_tokens=4)
    assert out.shape == (hw, batch, C) and out.dtype == torch.float32
    assert torch.equal(out, ref)
    assert no_pos.shape == out.shape and not torch.allclose(no_pos, out)


def test_memory_attention_rejects_batch_mismatch() -> None:
    ma = memory_attention()
    with pytest.raises(InvalidInputError, match="batch size"):
        ma(torch.randn(64, 2, C), torch.randn(64, 3, MEM), None, None)


def test_memory_encoder_shapes_and_sigmoid_flag() -> None:
    enc = MemoryEncoder(MemoryEncoderConfig(out_dim=MEM), in_dim=C, total_stride=16).eval()
    pix, masks = torch.randn(2, C, SIDE, SIDE), 4 * torch.randn(2, 1, 16 * SIDE, 16 * SIDE)
    with torch.no_grad():
        feats, pos = enc(pix, masks)
        # the caller may apply the sigmoid itself and skip it here
        from_probs, _ = enc(pix, masks.sigmoid(), skip_mask_sigmoid=True)
        from_raw, _ = enc(pix, masks, skip_mask_sigmoid=True)
    assert feats.shape == pos.shape == (2, MEM, SIDE, SIDE)
    torch.testing.assert_close(from_probs, feats)
    assert not torch.allclose(from_raw, feats)
    # the positional encoding depends on the grid only
    assert torch.equal(pos[0], pos[1])


def test_memory_encoder_rejects_incompatible_stride() -> None:
    with pytest.raises(ValueError, match="power"):
        MemoryEncoder(MemoryEncoderConfig(out_dim=MEM), in_dim=C, total_stride=12)
