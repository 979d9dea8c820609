"""RoPE attention's late-value shortcut: same result as the reference's RoPE attention, which projects
the values first."""

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


def _reference(attn: RoPEAttention) -> torch.nn.Module:
    """The reference's RoPE attention (textbook order: project q, k and v, rotate, attend)
    with the same weights: an expectation computed by independent code."""
    from sam2.modeling.sam.transformer import RoPEAttention as ReferenceRoPEAttention

    ref = ReferenceRoPEAttention(
        embedding_dim=64, num_heads=2, downsample_rate=1, dropout=attn.dropout,
        kv_in_dim=16, rope_k_repeat=True, feat_sizes=(4, 4), rope_theta=10000.0,
    )  # fmt: skip
    ref.load_state_dict(attn.state_dict(), strict=True)
    return ref.train(attn.training)


def test_late_values_equal_projected_values() -> None:
    attn = _attention().eval()
    q, k, v = _inputs()
    assert attn.kv_in_dim < attn.head_dim  # the shortcut's condition holds here
    out = attn(q, k, v, num_k_exclude_rope=5)
    with torch.no_grad():
        expected = _reference(attn)(q, k, v, num_k_exclude_rope=5)
    assert out.shape == expected.shape == (2, 16, 64)
    assert expected.abs().max() > 0.1
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-5)


def test_late_values_carry_gradients() -> None:
    attn = _attention().train()  # no dropout: the shortcut is used in training too
    q, k, v = (x.requires_grad_() for x in _inputs())
    attn(q, k, v, num_k_exclude_rope=5).square().sum().backward()
    grads = [attn.v_proj.weight.grad, attn.v_proj.bias.grad, v.grad, k.grad, q.grad]
    assert all(g is not None and g.abs().sum() > 0 for g in grads)


def _seeded_dropout_sdpa(q, k, v, dropout_p: float = 0.0, **_: object) -> torch.Tensor:  # type: ignore[no-untyped-def]
    """Attention with a dropout mask drawn from a fixed seed: the same on both sides."""
    weights = (q @ k.transpose(-2, -1) / q.shape[-1] ** 0.5).softmax(-1)  # [B, h, Nq, Nk]
    if dropout_p:
        gen = torch.Generator().manual_seed(3)
        keep = torch.rand(weights.shape, generator=gen) >= dropout_p
        weights = weights * keep / (1 - dropout_p)
    return weights @ v


def test_dropout_keeps_the_projected_order(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """Under attention dropout rows no longer sum to one: the shortcut must not be taken."""
    monkeypatch.setattr(torch.nn.functional, "scaled_dot_product_attention", _seeded_dropout_sdpa)
    attn = _attention(dropout=0.5).train()
    q, k, v = _inputs()
    out = attn(q, k, v, num_k_exclude_rope=5)
    expected = _reference(attn)(q, k, v, num_k_exclude_rope=5)
    assert not torch.allclose(out, attn.eval()(q, k, v, num_k_exclude_rope=5))  # dropout acted
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-5)
