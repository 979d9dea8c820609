"""RoPE attention's late-value shortcut: same result as projecting the values first."""

from __future__ import annotations

import torch

from masklet.modeling.transformer import RoPEAttention


def _attention(dropout: float = 0.0) -> RoPEAttention:
    torch.manual_seed(0)
    attn = RoPEAttention(64, num_heads=2, dropout=dropout, kv_in_dim=16, rope_k_repeat=True)
    with torch.no_grad():
        for p in attn.parameters():
            p.add_(torch.randn_like(p) * 0.2)  # biases too: the shortcut must carry v's bias
    return attn


def _inputs() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    q = torch.randn(2, 16, 64, generator=g)  # a 4x4 query grid
    k = torch.randn(2, 3 * 16 + 5, 16, generator=g)  # 3 memory frames + 5 pointer tokens
    v = torch.randn(2, 3 * 16 + 5, 16, generator=g)
    return q, k, v


def _projected_first(attn: RoPEAttention, q, k, v, exclude: int) -> torch.Tensor:
    """The textbook order: project q, k and v, rotate, attend."""
    from masklet.modeling.position import apply_rope

    qh, kh, vh = attn._project(q, k, v)
    angles = attn._grid_angles(qh.shape[-2], qh.device)
    n = kh.shape[-2] - exclude
    kh = torch.cat((apply_rope(kh[:, :, :n], angles), kh[:, :, n:]), dim=2)
    return attn._attend(apply_rope(qh, angles), kh, vh)


def test_late_values_equal_projected_values() -> None:
    attn = _attention().eval()
    q, k, v = _inputs()
    assert attn.kv_in_dim < attn.head_dim  # the shortcut's condition holds here
    out = attn(q, k, v, num_k_exclude_rope=5)
    expected = _projected_first(attn, q, k, v, exclude=5)
    assert out.shape == (2, 16, 64)
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-5)


def test_late_values_carry_gradients() -> None:
    attn = _attention().train()  # no dropout: the shortcut is used in training too
    q, k, v = (x.requires_grad_() for x in _inputs())
    attn(q, k, v, num_k_exclude_rope=5).square().sum().backward()
    grads = [attn.v_proj.weight.grad, attn.v_proj.bias.grad, v.grad, k.grad, q.grad]
    assert all(g is not None and g.abs().sum() > 0 for g in grads)


def test_dropout_keeps_the_projected_order() -> None:
    """Under attention dropout rows no longer sum to one: the shortcut must not be taken."""
    attn = _attention(dropout=0.5).train()
    q, k, v = _inputs()
    torch.manual_seed(3)
    out = attn(q, k, v, num_k_exclude_rope=5)
    torch.manual_seed(3)
    expected = _projected_first(attn, q, k, v, exclude=5)
    torch.testing.assert_close(out, expected)
