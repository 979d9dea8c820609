"""Attention layers and SAM's two-way transformer.

`Attention` is multi-head attention whose inner width may be smaller than the model width
(`downsample_rate`) and whose keys/values may come from a different width (`kv_in_dim`).
`RoPEAttention` adds axial rotary position encoding; the memory attention uses it.
`TwoWayTransformer` is the mask decoder's trunk: prompt tokens and image tokens attend to
each other in turn.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from masklet.errors import InvalidInputError
from masklet.modeling.common import MLP, sdpa
from masklet.modeling.position import (
    apply_rope,
    apply_rope_real,
    axial_rope,
    rope_cos_sin,
    rope_rotations,
)

# Queries per chunk in `RoPEAttention._late_values`: keeps the [chunk, Nk] scores in cache.
_QUERY_CHUNK = 256


class Attention(nn.Module):
    """Multi-head attention with projections to an inner width of `embedding_dim //
    downsample_rate` (the mask decoder's cross-attentions run at half width)."""

    def __init__(
        self,
        embedding_dim: int,
        num_heads: int,
        downsample_rate: int = 1,
        dropout: float = 0.0,
        kv_in_dim: int | None = None,
    ) -> None:
        super().__init__()
        self.embedding_dim = embedding_dim
        self.kv_in_dim = embedding_dim if kv_in_dim is None else kv_in_dim
        self.internal_dim = embedding_dim // downsample_rate
        self.num_heads = num_heads
        if self.internal_dim % num_heads:
            raise ValueError(
                f"num_heads ({num_heads}) must divide the inner width "
                f"embedding_dim // downsample_rate = {self.internal_dim}"
            )
        self.head_dim = self.internal_dim // num_heads
        self.dropout = dropout

        self.q_proj = nn.Linear(embedding_dim, self.internal_dim)
        self.k_proj = nn.Linear(self.kv_in_dim, self.internal_dim)
        self.v_proj = nn.Linear(self.kv_in_dim, self.internal_dim)
        self.out_proj = nn.Linear(self.internal_dim, embedding_dim)

    def _split_heads(self, x: Tensor) -> Tensor:
        b, n, _ = x.shape
        return x.reshape(b, n, self.num_heads, self.head_dim).transpose(1, 2)  # [B, h, N, d]

    def _project(self, q: Tensor, k: Tensor, v: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Input projections, split into heads: three [B, h, N, d] tensors."""
        return (
            self._split_heads(self.q_proj(q)),
            self._split_heads(self.k_proj(k)),
            self._split_heads(self.v_proj(v)),
        )

    def _attend(self, q: Tensor, k: Tensor, v: Tensor) -> Tensor:
        """[B, h, Nq, d] queries over [B, h, Nk, d] keys/values -> [B, Nq, C]."""
        out = sdpa(q, k, v, dropout_p=self.dropout if self.training else 0.0)
        b, _, n, _ = out.shape
        out = out.transpose(1, 2).reshape(b, n, self.internal_dim)  # [B, h, N, d] -> [B, N, hd]
        return self.out_proj(out)

    def forward(self, q: Tensor, k: Tensor, v: Tensor) -> Tensor:
        """q [B, Nq, C], k [B, Nk, Ckv], v [B, Nk, Ckv] -> [B, Nq, C]."""
        return self._attend(*self._project(q, k, v))


class RoPEAttention(Attention):
    """Attention with axial rotary position encoding on queries and keys.

    The queries are one square feature map (row-major tokens). The keys are either the same
    map (self-attention) or, with `rope_k_repeat`, the maps of several memory frames laid end
    to end, whose angles repeat frame after frame. Trailing keys that are not on any grid
    (the object pointers) are left unrotated via `num_k_exclude_rope`.

    The rotation is a complex product, as the reference computes it; with `real_rope` (set
    automatically during `torch.onnx.export`, which has no complex dtype) it is the same
    product written in real arithmetic with cos/sin tables.
    """

    def __init__(
        self,
        embedding_dim: int,
        num_heads: int,
        downsample_rate: int = 1,
        dropout: float = 0.0,
        kv_in_dim: int | None = None,
        rope_theta: float = 10000.0,
        rope_k_repeat: bool = False,
    ) -> None:
        super().__init__(embedding_dim, num_heads, downsample_rate, dropout, kv_in_dim)
        self.rope_theta = rope_theta
        self.rope_k_repeat = rope_k_repeat
        self.real_rope = False  # complex rotations unless asked (or exporting to ONNX)
        # angles depend only on the grid size: compute once per (tokens, device)
        self._angles: dict[tuple[int, str], Tensor] = {}
        self._cos_sin: dict[tuple[int, str], tuple[Tensor, Tensor]] = {}

    def _raw_angles(self, num_tokens: int) -> Tensor:
        """[N, d/2] real angles for a square grid of N tokens."""
        side = math.isqrt(num_tokens)
        if side * side != num_tokens:
            raise InvalidInputError(
                f"RoPE attention expects queries from a square feature map, got "
                f"{num_tokens} tokens; pass a H x W map with H == W"
            )
        return axial_rope(self.head_dim, side, side, self.rope_theta)

    def _grid_angles(self, num_tokens: int, device: torch.device) -> Tensor:
        """[N, d/2] complex rotations for a square grid of N tokens."""
        key = (int(num_tokens), str(device))  # int: a traced size would miss the cache
        if key not in self._angles:
            self._angles[key] = rope_rotations(self._raw_angles(num_tokens)).to(device)
        return self._angles[key]

    def _grid_cos_sin(self, num_tokens: int, device: torch.device) -> tuple[Tensor, Tensor]:
        """cos and sin tables [N, d/2] for a square grid of N tokens."""
        key = (int(num_tokens), str(device))  # int: a traced size would miss the cache
        if key not in self._cos_sin:
            cos, sin = rope_cos_sin(self._raw_angles(num_tokens))
            self._cos_sin[key] = (cos.to(device), sin.to(device))
        return self._cos_sin[key]

    def grid_cos_sin(self, num_tokens: int) -> tuple[Tensor, Tensor]:
        """New cos and sin tables [N, d/2] (CPU) for a square grid of N tokens."""
        return rope_cos_sin(self._raw_angles(num_tokens))

    def share_cos_sin(self, num_tokens: int, cos: Tensor, sin: Tensor) -> None:
        """Rotate by these tables (from `grid_cos_sin` of an attention with the same head
        size and theta) for grids of `num_tokens`: an exported graph then holds one copy of
        the tables for all layers instead of one per use."""
        expected = self.grid_cos_sin(num_tokens)
        if not (torch.equal(cos.cpu(), expected[0]) and torch.equal(sin.cpu(), expected[1])):
            raise InvalidInputError(
                "shared RoPE tables differ from this attention's own; share tables only "
                "between attentions with the same head size and rope_theta"
            )
        self._cos_sin[(num_tokens, str(cos.device))] = (cos, sin)

    def _rotate(self, x: Tensor, num_q: int) -> Tensor:
        """Rotates x [B, h, N, d] (N a multiple of the num_q grid tokens) by the grid's angles."""
        if self.real_rope or torch.onnx.is_in_onnx_export():
            return apply_rope_real(x, *self._grid_cos_sin(num_q, x.device))
        return apply_rope(x, self._grid_angles(num_q, x.device))

    def forward(self, q: Tensor, k: Tensor, v: Tensor, num_k_exclude_rope: int = 0) -> Tensor:
        """q [B, Nq, C], k/v [B, Nk, Ckv] -> [B, Nq, C]; the last `num_k_exclude_rope` keys
        are not rotated."""
        # exact shortcut when the raw values are narrower than a head and nothing drops out;
        # on CPU only: accelerators run the fused attention kernel, measured there or not at all
        late_values = (
            self.kv_in_dim < self.head_dim
            and not (self.training and self.dropout)
            and q.device.type == "cpu"
        )
        v_in = v
        if late_values:
            q, k = self._split_heads(self.q_proj(q)), self._split_heads(self.k_proj(k))
        else:
            q, k, v = self._project(q, k, v)
        num_q = q.shape[-2]
        num_k_rope = k.shape[-2] - num_k_exclude_rope
        if num_k_rope != num_q and not (self.rope_k_repeat and num_k_rope % num_q == 0):
            raise InvalidInputError(
                f"RoPE keys must cover the query grid ({num_q} tokens)"
                + (" a whole number of times" if self.rope_k_repeat else " exactly once")
                + f", got {num_k_rope} rotated keys"
            )
        q = self._rotate(q, num_q)
        # rotate the grid keys only; the rotation tiles the angles over several frames
        k = torch.cat((self._rotate(k[:, :, :num_k_rope], num_q), k[:, :, num_k_rope:]), dim=2)
        if late_values:
            return self.out_proj(self._late_values(q, k, v_in))
        return self._attend(q, k, v)

    def _late_values(self, q: Tensor, k: Tensor, v_in: Tensor) -> Tensor:
        """Attention with the value projection applied after the mixing: [B, h, Nq, d]
        queries, [B, h, Nk, d] keys, [B, Nk, Ckv] raw values -> [B, Nq, h * d].

        Softmax rows sum to one, so A (V W^T + b) = (A V) W^T + b. With values narrower than
        a head (the memory attention: 64-wide memories, 256-wide heads) mixing the raw values
        costs Ckv / d of mixing projected ones. Queries go in chunks so the score matrix
        stays small.
        """
        b, h, num_q, d = q.shape
        kt = k.transpose(-2, -1) * d**-0.5  # [B, h, d, Nk], scaled once
        values = v_in[:, None]  # [B, 1, Nk, Ckv], broadcast over heads
        mixed = torch.cat(
            [
                torch.matmul(torch.matmul(q[:, :, i : i + _QUERY_CHUNK], kt).softmax(-1), values)
                for i in range(0, num_q, _QUERY_CHUNK)
            ],
            dim=2,
        )  # [B, h, Nq, Ckv]
        weight = self.v_proj.weight.view(h, d, self.kv_in_dim)  # [h*d, Ckv] -> [h, d, Ckv]
        out = torch.matmul(mixed, weight.transpose(1, 2))  # [B, h, Nq, d]
        out = out + self.v_proj.bias.view(h, 1, d)
        return out.transpose(1, 2).reshape(b, num_q, h * d)  # [B, h, Nq, d] -> [B, Nq, hd]


class TwoWayAttentionBlock(nn.Module):
    """One decoder layer: token self-attention, tokens -> image, token MLP, image -> tokens.

    Every sub-layer is residual and post-normalised. The first layer's self-attention skips
    the positional encoding because the tokens still *are* their positional encoding.
    """

    def __init__(
        self,
        embedding_dim: int,
        num_heads: int,
        mlp_dim: int,
        attention_downsample_rate: int = 2,
        skip_first_layer_pe: bool = False,
    ) -> None:
        super().__init__()
        self.self_attn = Attention(embedding_dim, num_heads)
        self.norm1 = nn.LayerNorm(embedding_dim)
        self.cross_attn_token_to_image = Attention(
            embedding_dim, num_heads, downsample_rate=attention_downsample_rate
        )
        self.norm2 = nn.LayerNorm(embedding_dim)
        self.mlp = MLP(embedding_dim, mlp_dim, embedding_dim, num_layers=2, activation=nn.ReLU)
        self.norm3 = nn.LayerNorm(embedding_dim)
        self.norm4 = nn.LayerNorm(embedding_dim)
        self.cross_attn_image_to_token = Attention(
            embedding_dim, num_heads, downsample_rate=attention_downsample_rate
        )
        self.skip_first_layer_pe = skip_first_layer_pe

    def forward(
        self, queries: Tensor, keys: Tensor, query_pe: Tensor, key_pe: Tensor
    ) -> tuple[Tensor, Tensor]:
        """queries/query_pe [B, Nt, C], keys/key_pe [B, HW, C] -> updated (queries, keys)."""
        if self.skip_first_layer_pe:
            # the residual is dropped too: the tokens are replaced by their self-attention
            queries = self.self_attn(queries, queries, queries)
        else:
            q = queries + query_pe
            queries = queries + self.self_attn(q, q, queries)
        queries = self.norm1(queries)

        keys_with_pe = keys + key_pe
        q = queries + query_pe
        queries = self.norm2(queries + self.cross_attn_token_to_image(q, keys_with_pe, keys))
        queries = self.norm3(queries + self.mlp(queries))

        q = queries + query_pe
        keys = self.norm4(keys + self.cross_attn_image_to_token(keys_with_pe, q, queries))
        return queries, keys


class TwoWayTransformer(nn.Module):
    """`depth` two-way blocks, then a final token -> image attention and layer norm."""

    def __init__(
        self,
        depth: int,
        embedding_dim: int,
        num_heads: int,
        mlp_dim: int,
        attention_downsample_rate: int = 2,
    ) -> None:
        super().__init__()
        self.depth = depth
        self.embedding_dim = embedding_dim
        self.layers = nn.ModuleList(
            TwoWayAttentionBlock(
                embedding_dim,
                num_heads,
                mlp_dim,
                attention_downsample_rate=attention_downsample_rate,
                skip_first_layer_pe=(i == 0),
            )
            for i in range(depth)
        )
        self.final_attn_token_to_image = Attention(
            embedding_dim, num_heads, downsample_rate=attention_downsample_rate
        )
        self.norm_final_attn = nn.LayerNorm(embedding_dim)

    def forward(
        self, image_embedding: Tensor, image_pe: Tensor, point_embedding: Tensor
    ) -> tuple[Tensor, Tensor]:
        """image_embedding/image_pe [B, C, H, W], point_embedding [B, Nt, C] ->
        (tokens [B, Nt, C], image tokens [B, HW, C])."""
        keys = image_embedding.flatten(2).transpose(1, 2)  # [B, C, H, W] -> [B, HW, C]
        key_pe = image_pe.flatten(2).transpose(1, 2)  # [B, C, H, W] -> [B, HW, C]
        queries = point_embedding
        for layer in self.layers:
            queries, keys = layer(queries, keys, point_embedding, key_pe)

        q = queries + point_embedding
        queries = queries + self.final_attn_token_to_image(q, keys + key_pe, keys)
        return self.norm_final_attn(queries), keys
