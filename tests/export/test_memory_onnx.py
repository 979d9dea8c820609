"""ONNX memory attention and memory encoder: onnxruntime (fp32, real-arithmetic RoPE) gives
what the PyTorch modules (fp32, complex RoPE) give, for any number of memories."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from masklet.modeling.sam2 import SAM2Model
from tests.parity.reference import assert_close

ort = pytest.importorskip("onnxruntime")

ATOL = 1e-4


def _rand(g: torch.Generator, *shape: int) -> torch.Tensor:
    return torch.randn(*shape, generator=g)


@pytest.mark.parametrize(
    ("batch", "frames", "pointers"), [(1, 1, 0), (1, 7, 16), (2, 3, 8)]
)  # memory lengths and pointer counts other than the traced ones (2 frames, 4 pointers)
def test_memory_attention_matches_pytorch(
    exported: tuple[SAM2Model, Path], batch: int, frames: int, pointers: int
) -> None:
    model, out = exported
    cfg = model.config
    h = cfg.image_size // cfg.backbone_stride
    g = torch.Generator().manual_seed(100 * frames + pointers)
    feeds = {
        "vision_features": _rand(g, batch, cfg.hidden_dim, h, h),
        "vision_pos": _rand(g, batch, cfg.hidden_dim, h, h),
        "memory": _rand(g, frames * h * h, batch, cfg.mem_dim),
        "memory_pos": _rand(g, frames * h * h, batch, cfg.mem_dim),
        "object_pointers": _rand(g, pointers, batch, cfg.mem_dim),
        "object_pointers_pos": _rand(g, pointers, batch, cfg.mem_dim),
    }
    session = ort.InferenceSession(str(out / "memory_attention.onnx"))
    (got,) = session.run(None, {k: v.numpy() for k, v in feeds.items()})

    def seq(x: torch.Tensor) -> torch.Tensor:
        return x.flatten(2).permute(2, 0, 1)  # [B, C, h, w] -> [hw, B, C]

    with torch.no_grad():  # the module as the tracker calls it
        fused = model.memory_attention(
            curr=seq(feeds["vision_features"]),
            curr_pos=seq(feeds["vision_pos"]),
            memory=torch.cat((feeds["memory"], feeds["object_pointers"])),
            memory_pos=torch.cat((feeds["memory_pos"], feeds["object_pointers_pos"])),
            num_obj_ptr_tokens=pointers,
        )
        without_memory = model.memory_attention(
            curr=seq(feeds["vision_features"]),
            curr_pos=seq(feeds["vision_pos"]),
            memory=feeds["memory"][: h * h] * 0,
            memory_pos=feeds["memory_pos"][: h * h] * 0,
        )
    expected = fused.permute(1, 2, 0).reshape(batch, -1, h, h)  # [hw, B, C] -> [B, C, h, w]
    assert expected.std() > 0.1
    assert (fused - without_memory).abs().max() > 0.1  # the memories matter
    assert_close(torch.from_numpy(got), expected, atol=ATOL)


@pytest.mark.parametrize(("batch", "from_points"), [(1, True), (3, False)])
def test_memory_encoder_matches_pytorch(
    exported: tuple[SAM2Model, Path], batch: int, from_points: bool
) -> None:
    """The graph and the memory encoder module agree on a mask prepared either way (the
    preparation is `encode_memory`'s, in PyTorch, on both sides)."""
    model, out = exported
    cfg = model.config
    h = cfg.image_size // cfg.backbone_stride
    g = torch.Generator().manual_seed(batch)
    features = _rand(g, batch, cfg.hidden_dim, h, h)
    logits = _rand(g, batch, 1, cfg.image_size, cfg.image_size) * 5
    prepared = (logits > 0).float() if from_points else logits.sigmoid()
    prepared = prepared * cfg.sigmoid_scale_for_mem_enc + cfg.sigmoid_bias_for_mem_enc
    session = ort.InferenceSession(str(out / "memory_encoder.onnx"))
    memory, pos = session.run(
        None, {"vision_features": features.numpy(), "mask_for_memory": prepared.numpy()}
    )
    with torch.no_grad():
        expected, expected_pos = model.memory_encoder(features, prepared, skip_mask_sigmoid=True)
        other, _ = model.memory_encoder(features, prepared.flip(-1), skip_mask_sigmoid=True)
    assert expected.std() > 0.1
    assert (expected - other).abs().max() > 1e-3  # the mask matters
    assert_close(torch.from_numpy(memory), expected, atol=ATOL)
    assert_close(torch.from_numpy(pos), expected_pos, atol=ATOL)


def test_memory_attention_stores_the_rope_tables_once(exported: tuple[SAM2Model, Path]) -> None:
    onnx = pytest.importorskip("onnx")
    model, out = exported
    graph = onnx.load(str(out / "memory_attention.onnx")).graph
    side = model.config.image_size // model.config.backbone_stride
    attention = model.memory_attention.layers[0].self_attn
    table = (side * side, attention.head_dim // 2)  # [N, d/2]
    constants = [n.attribute[0].t for n in graph.node if n.op_type == "Constant"]
    shapes = [tuple(t.dims) for t in [*graph.initializer, *constants]]
    assert shapes.count(table) == 2  # one cos and one sin table for every layer
