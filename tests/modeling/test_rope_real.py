"""RoPE in real arithmetic (for ONNX export) equals the complex product it replaces."""

from __future__ import annotations

import pytest
import torch

from masklet.modeling.position import apply_rope, apply_rope_real, axial_rope, rope_cos_sin
from masklet.modeling.transformer import RoPEAttention


@pytest.mark.parametrize(
    ("batch", "heads", "side", "head_dim", "frames"),
    [(1, 1, 4, 8, 1), (2, 2, 8, 16, 3), (3, 1, 16, 64, 2), (1, 4, 2, 256, 7)],
)
def test_real_rope_equals_complex_rope(
    batch: int, heads: int, side: int, head_dim: int, frames: int
) -> None:
    g = torch.Generator().manual_seed(side * head_dim + frames)
    angles = axial_rope(head_dim, side, side)  # [N, d/2]
    x = torch.randn(batch, heads, frames * side * side, head_dim, generator=g)  # unit scale
    expected = apply_rope(x, angles)
    actual = apply_rope_real(x, *rope_cos_sin(angles))
    assert expected.shape == actual.shape == x.shape
    assert (expected - x).abs().max() > 0.1  # the rotation moved something
    torch.testing.assert_close(actual, expected, atol=1e-6, rtol=0)


def test_real_rope_keeps_empty_inputs() -> None:
    cos, sin = rope_cos_sin(axial_rope(8, 2, 2))
    x = torch.zeros(1, 1, 0, 8)
    assert apply_rope_real(x, cos, sin).shape == (1, 1, 0, 8)


@pytest.mark.parametrize("kv_in_dim", [16, 128])  # late values (CPU shortcut) and projected ones
def test_attention_with_real_rope_equals_complex(kv_in_dim: int) -> None:
    torch.manual_seed(0)
    attn = RoPEAttention(64, num_heads=2, kv_in_dim=kv_in_dim, rope_k_repeat=True).eval()
    g = torch.Generator().manual_seed(1)
    q = torch.randn(2, 16, 64, generator=g)  # a 4x4 query grid
    k = torch.randn(2, 3 * 16 + 5, kv_in_dim, generator=g)  # 3 memory frames + 5 pointers
    v = torch.randn(2, 3 * 16 + 5, kv_in_dim, generator=g)
    with torch.no_grad():
        expected = attn(q, k, v, num_k_exclude_rope=5)
        attn.real_rope = True
        actual = attn(q, k, v, num_k_exclude_rope=5)
    assert expected.abs().max() > 0.1
    torch.testing.assert_close(actual, expected, atol=1e-6, rtol=0)
