"""The memory path as plain tensor-in, tensor-out modules for ONNX: the memory attention
(any number of memory frames and object pointers) and the memory encoder.

Like `graphs.py`, the wrappers only call the model's own methods.
"""

from __future__ import annotations

import torch
from torch import Tensor

from masklet.export.graphs import PartGraph
from masklet.modeling.sam2 import SAM2Model
from masklet.modeling.transformer import RoPEAttention


def _sequence(x: Tensor) -> Tensor:
    return x.flatten(2).permute(2, 0, 1)  # [B, C, h, w] -> [hw, B, C]


class MemoryAttentionGraph(PartGraph):
    """Conditions the current frame on its memories; the memory lengths are graph inputs'
    dynamic axes, so one graph takes any number of memory frames and object pointers."""

    input_names = ["vision_features", "vision_pos", "memory", "memory_pos", "object_pointers",
                   "object_pointers_pos"]  # fmt: skip
    output_names = ["conditioned_features"]

    def __init__(self, model: SAM2Model) -> None:
        super().__init__(model)
        # The tracer copies a plain tensor into the graph at every use: the RoPE tables of
        # one 64 x 64 grid would be stored 64 times (134 MB for hiera_tiny). As buffers of
        # this module they are graph initializers, stored once and shared by every layer.
        cfg = model.config
        side = cfg.image_size // cfg.backbone_stride
        attentions = [m for m in model.memory_attention.modules() if isinstance(m, RoPEAttention)]
        cos, sin = attentions[0].grid_cos_sin(side * side)
        self.register_buffer("rope_cos", cos)
        self.register_buffer("rope_sin", sin)
        for attention in attentions:
            attention.share_cos_sin(side * side, cos, sin)  # the buffers themselves

    def forward(
        self,
        vision_features: Tensor,
        vision_pos: Tensor,
        memory: Tensor,
        memory_pos: Tensor,
        object_pointers: Tensor,
        object_pointers_pos: Tensor,
    ) -> Tensor:
        """vision_features / vision_pos [B, C, h, w]; memory / memory_pos [M, B, C_mem]
        (spatial memories of F frames, M = F * h * w, temporal encodings already added);
        object_pointers / object_pointers_pos [P, B, C_mem] -> [B, C, h, w]."""
        b, c, h, w = vision_features.shape
        fused = self.model.memory_attention(
            curr=_sequence(vision_features),
            curr_pos=_sequence(vision_pos),
            memory=torch.cat((memory, object_pointers), dim=0),
            memory_pos=torch.cat((memory_pos, object_pointers_pos), dim=0),
            num_obj_ptr_tokens=object_pointers.shape[0],
        )
        return fused.permute(1, 2, 0).reshape(b, c, h, w)  # [hw, B, C] -> [B, C, h, w]


class MemoryEncoderGraph(PartGraph):
    """Encodes a frame and its prepared mask into a spatial memory (the memory encoder
    module itself, run once per frame).

    The mask is prepared by the caller, as `SAM2Model.encode_memory` does: overlaps removed
    between objects, thresholded on clicked frames or squashed with a sigmoid elsewhere, then
    scaled and shifted by the config's `sigmoid_scale_for_mem_enc` / `sigmoid_bias_for_mem_enc`;
    the no-object embedding (`no_obj_embed_spatial`) is added to absent objects' memories
    afterwards. These are elementwise steps; the encoder's convolutions are the work.
    """

    input_names = ["vision_features", "mask_for_memory"]
    output_names = ["memory_features", "memory_pos"]

    def forward(self, vision_features: Tensor, mask_for_memory: Tensor) -> tuple[Tensor, Tensor]:
        """vision_features [B, C, h, w], mask_for_memory [B, 1, S, S] prepared mask ->
        memory_features [B, C_mem, h, w], memory_pos [B, C_mem, h, w]."""
        return self.model.memory_encoder(vision_features, mask_for_memory, skip_mask_sigmoid=True)


def memory_example_inputs(
    model: SAM2Model, *, batch: int = 1, frames: int = 2, pointers: int = 4
) -> dict[str, Tensor]:
    """Seeded tracing inputs for the memory graphs, named as the graphs name them."""
    cfg = model.config
    h = cfg.image_size // cfg.backbone_stride
    g = torch.Generator().manual_seed(1)

    def rand(*shape: int) -> Tensor:
        return torch.randn(*shape, generator=g)

    return {
        "vision_features": rand(batch, cfg.hidden_dim, h, h),
        "vision_pos": rand(batch, cfg.hidden_dim, h, h),
        "memory": rand(frames * h * h, batch, cfg.mem_dim),
        "memory_pos": rand(frames * h * h, batch, cfg.mem_dim),
        "object_pointers": rand(pointers, batch, cfg.mem_dim),
        "object_pointers_pos": rand(pointers, batch, cfg.mem_dim),
        "mask_for_memory": rand(batch, 1, cfg.image_size, cfg.image_size).sigmoid() * 20 - 10,
    }
