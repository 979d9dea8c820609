"""Memory attention: conditions the current frame's features on the memory bank.

Each layer is pre-norm: RoPE self-attention over the current frame, RoPE cross-attention
from the current frame to the memories (spatial memories of several frames, then object
pointer tokens that are not rotated), and an MLP.

Tensors are sequence-first at the module boundary, like the model core that assembles the
memory: current frame [HW, B, C], memories [M, B, C_mem].
"""

from __future__ import annotations

from torch import Tensor, nn

from masklet.config import MemoryAttentionConfig
from masklet.errors import InvalidInputError
from masklet.modeling.transformer import RoPEAttention

# The current frame's positional encoding is added at the input, scaled down so that it
# nudges rather than dominates the features (value fixed by the checkpoints' training).
INPUT_POS_ENC_SCALE = 0.1


class MemoryAttentionLayer(nn.Module):
    """Self-attention, cross-attention to memories, MLP; each pre-norm and residual."""

    def __init__(self, config: MemoryAttentionConfig, d_model: int, kv_dim: int) -> None:
        super().__init__()
        self.self_attn = RoPEAttention(
            d_model, config.num_heads, dropout=config.dropout, rope_theta=config.rope_theta
        )
        self.cross_attn_image = RoPEAttention(
            d_model,
            config.num_heads,
            dropout=config.dropout,
            kv_in_dim=kv_dim,
            rope_theta=config.rope_theta,
            rope_k_repeat=config.rope_k_repeat,
        )
        self.linear1 = nn.Linear(d_model, config.dim_feedforward)
        self.linear2 = nn.Linear(config.dim_feedforward, d_model)
        # in place: the [B, HW, dim_feedforward] hidden tensor is the largest one here
        self.activation = nn.ReLU(inplace=True)
        self.norm1 = nn.LayerNorm(d_model)
        self.norm2 = nn.LayerNorm(d_model)
        self.norm3 = nn.LayerNorm(d_model)
        self.dropout = nn.Dropout(config.dropout)
        self.dropout1 = nn.Dropout(config.dropout)
        self.dropout2 = nn.Dropout(config.dropout)
        self.dropout3 = nn.Dropout(config.dropout)
        self.pos_enc_at_attn = config.pos_enc_at_attn
        self.pos_enc_at_cross_attn_queries = config.pos_enc_at_cross_attn_queries
        self.pos_enc_at_cross_attn_keys = config.pos_enc_at_cross_attn_keys

    def forward(
        self,
        tgt: Tensor,
        memory: Tensor,
        memory_pos: Tensor | None,
        tgt_pos: Tensor | None,
        num_k_exclude_rope: int = 0,
    ) -> Tensor:
        """tgt/tgt_pos [B, HW, C], memory/memory_pos [B, M, C_mem] -> [B, HW, C]."""
        x = self.norm1(tgt)
        qk = x + tgt_pos if self.pos_enc_at_attn and tgt_pos is not None else x
        tgt = tgt + self.dropout1(self.self_attn(qk, qk, x))

        x = self.norm2(tgt)
        q = x + tgt_pos if self.pos_enc_at_cross_attn_queries and tgt_pos is not None else x
        k = (
            memory + memory_pos
            if self.pos_enc_at_cross_attn_keys and memory_pos is not None
            else memory
        )
        attn = self.cross_attn_image(q, k, memory, num_k_exclude_rope=num_k_exclude_rope)
        tgt = tgt + self.dropout2(attn)

        x = self.norm3(tgt)
        x = self.linear2(self.dropout(self.activation(self.linear1(x))))
        return tgt + self.dropout3(x)


class MemoryAttention(nn.Module):
    """A stack of `MemoryAttentionLayer`s and a final layer norm."""

    def __init__(self, config: MemoryAttentionConfig, d_model: int, kv_dim: int) -> None:
        super().__init__()
        self.d_model = d_model
        self.pos_enc_at_input = config.pos_enc_at_input
        self.layers = nn.ModuleList(
            MemoryAttentionLayer(config, d_model, kv_dim) for _ in range(config.num_layers)
        )
        self.num_layers = config.num_layers
        self.norm = nn.LayerNorm(d_model)

    def forward(
        self,
        curr: Tensor,
        memory: Tensor,
        curr_pos: Tensor | None,
        memory_pos: Tensor | None,
        num_obj_ptr_tokens: int = 0,
    ) -> Tensor:
        """Condition the current frame on the memories.

        Args:
            curr: [HW, B, C] current-frame features (a square map, row-major).
            memory: [M, B, C_mem] spatial memories of one or more frames (HW tokens each),
                followed by `num_obj_ptr_tokens` object-pointer tokens.
            curr_pos, memory_pos: positional encodings of the same shapes, or None.
            num_obj_ptr_tokens: trailing memory tokens that get no rotary encoding.

        Returns:
            [HW, B, C] features, in curr's dtype.

        `memory` and `memory_pos` may be stored in a lower precision than `curr` (e.g. a
        bfloat16 memory bank with float32 features): they are cast to curr's dtype here, so
        the projections run in one dtype. The reference implementation raises in that case.
        """
        if curr.shape[1] != memory.shape[1]:
            raise InvalidInputError(
                f"current features [HW, B, C] and memory [M, B, C] must share the batch size, "
                f"got {tuple(curr.shape)} and {tuple(memory.shape)}"
            )
        memory = memory.to(curr.dtype)
        memory_pos = None if memory_pos is None else memory_pos.to(curr.dtype)

        out = curr
        if self.pos_enc_at_input and curr_pos is not None:
            out = out + INPUT_POS_ENC_SCALE * curr_pos

        out = out.transpose(0, 1)  # [HW, B, C] -> [B, HW, C]
        pos = None if curr_pos is None else curr_pos.transpose(0, 1)  # [B, HW, C]
        mem = memory.transpose(0, 1)  # [M, B, C_mem] -> [B, M, C_mem]
        mem_pos = None if memory_pos is None else memory_pos.transpose(0, 1)  # [B, M, C_mem]
        for layer in self.layers:
            out = layer(out, mem, mem_pos, pos, num_k_exclude_rope=num_obj_ptr_tokens)
        return self.norm(out).transpose(0, 1)  # [B, HW, C] -> [HW, B, C]
