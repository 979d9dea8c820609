"""The memory half of SAM 2: conditioning a frame on the memory bank, and encoding a frame's
mask into a new memory. A mixin of `SAM2Model` (modeling/sam2.py), which owns the modules."""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor, nn

from masklet.config import ModelConfig
from masklet.modeling.logits import MASK_LOGIT
from masklet.modeling.memory_attention import MemoryAttention
from masklet.modeling.memory_bank import MemoryRule
from masklet.modeling.memory_encoder import MemoryEncoder
from masklet.modeling.outputs import FrameOutput, ImageFeatures
from masklet.modeling.position import sine_1d


class MemoryMixin:
    """`condition_on_memory` and `encode_memory` for `SAM2Model`, which defines the modules
    and parameters named below."""

    config: ModelConfig
    training: bool
    memory_attention: MemoryAttention
    memory_encoder: MemoryEncoder
    obj_ptr_tpos_proj: nn.Module
    maskmem_tpos_enc: nn.Parameter
    no_mem_embed: nn.Parameter
    no_mem_pos_enc: nn.Parameter
    no_obj_embed_spatial: nn.Parameter | None

    def memory_rule(self) -> MemoryRule:
        """Which stored frames a frame attends to, in the current (train / eval) mode."""
        return MemoryRule.from_config(self.config, training=self.training)

    def condition_on_memory(
        self,
        frame_idx: int,
        features: ImageFeatures,
        *,
        is_init_cond_frame: bool,
        cond_outputs: Mapping[int, FrameOutput],
        non_cond_outputs: Mapping[int, FrameOutput],
        num_frames: int | None,
        reverse: bool = False,
    ) -> Tensor:
        """Fuse the current frame's lowest-level features with the memory bank: [B, C, h, w]."""
        c = self.config
        feats, pos = features.vision_feats[-1], features.vision_pos[-1]  # [HW, B, C]
        b, hidden = feats.shape[1], c.hidden_dim
        h, w = features.feat_sizes[-1]

        def to_map(x: Tensor) -> Tensor:
            return x.permute(1, 2, 0).reshape(b, hidden, h, w)  # [HW, B, C] -> [B, C, H, W]

        if c.num_maskmem == 0:
            return to_map(feats)
        if is_init_cond_frame and c.directly_add_no_mem_embed:
            return to_map(feats + self.no_mem_embed)

        memory: list[Tensor] = []
        memory_pos: list[Tensor] = []
        num_pointer_tokens = 0
        if is_init_cond_frame:
            # a dummy memory token so attention never sees an empty memory
            memory.append(self.no_mem_embed.expand(1, b, c.mem_dim))
            memory_pos.append(self.no_mem_pos_enc.expand(1, b, c.mem_dim))
        else:
            if not cond_outputs:
                raise ValueError("a non-initial frame needs at least one conditioning frame")
            chosen = self.memory_rule().select(
                frame_idx, cond_outputs, non_cond_outputs, num_frames=num_frames, reverse=reverse
            )
            for t_pos, out in chosen.spatial:
                assert out.memory_features is not None and out.memory_pos is not None
                mem = out.memory_features.to(feats.device, feats.dtype)
                memory.append(mem.flatten(2).permute(2, 0, 1))  # [B, C, h, w] -> [hw, B, C]
                enc = out.memory_pos.to(feats.device, feats.dtype).flatten(2).permute(2, 0, 1)
                memory_pos.append(enc + self.maskmem_tpos_enc[c.num_maskmem - t_pos - 1])
            if c.use_obj_ptrs_in_encoder and chosen.pointers:
                pointers, pointers_pos = self._pointer_tokens(chosen.pointers, b, num_frames)
                memory.append(pointers)
                memory_pos.append(pointers_pos)
                num_pointer_tokens = pointers.shape[0]

        fused = self.memory_attention(
            curr=feats,
            curr_pos=pos,
            memory=torch.cat(memory, dim=0),
            memory_pos=torch.cat(memory_pos, dim=0),
            num_obj_ptr_tokens=num_pointer_tokens,
        )
        return to_map(fused)

    def _pointer_tokens(
        self, pointers: list[tuple[int, FrameOutput]], b: int, num_frames: int | None
    ) -> tuple[Tensor, Tensor]:
        """Object pointers as memory tokens [P, B, mem_dim] with their temporal encodings."""
        c = self.config
        hidden, mem_dim = c.hidden_dim, c.mem_dim
        distances = [d for d, _ in pointers]
        ptrs = torch.stack([out.object_pointer for _, out in pointers], dim=0)  # [P, B, C]
        if c.add_tpos_enc_to_obj_ptrs:
            t_diff_max = self.memory_rule().max_pointers(num_frames) - 1
            enc_dim = hidden if c.proj_tpos_enc_in_obj_ptrs else mem_dim
            rel = torch.tensor(distances, device=ptrs.device) / t_diff_max
            pos = self.obj_ptr_tpos_proj(sine_1d(rel, enc_dim))  # [P, mem_dim]
            pos = pos.unsqueeze(1).expand(-1, b, mem_dim)  # [P, B, mem_dim]
        else:
            pos = ptrs.new_zeros(len(distances), b, mem_dim)
        if mem_dim < hidden:
            # one pointer becomes hidden // mem_dim tokens of width mem_dim
            split = hidden // mem_dim
            ptrs = ptrs.reshape(-1, b, split, mem_dim).permute(0, 2, 1, 3).flatten(0, 1)
            pos = pos.repeat_interleave(split, dim=0)  # [P * split, B, mem_dim]
        return ptrs, pos

    def encode_memory(
        self,
        features: ImageFeatures,
        high_res_masks: Tensor,
        object_score_logits: Tensor,
        *,
        is_mask_from_points: bool,
    ) -> tuple[Tensor, Tensor]:
        """Encode a frame and its mask [B, 1, S, S] into (memory [B, mem_dim, h, w], pos)."""
        c = self.config
        b = features.batch_size
        h, w = features.feat_sizes[-1]
        pix = features.vision_feats[-1].permute(1, 2, 0).reshape(b, c.hidden_dim, h, w)
        masks = high_res_masks
        if c.non_overlap_masks_for_mem_enc and not self.training:
            masks = non_overlapping(masks)
        if c.binarize_mask_from_pts_for_mem_enc and is_mask_from_points and not self.training:
            # clicked frames store exactly the mask the user saw
            mask_for_mem = (masks > 0).float()
        else:
            mask_for_mem = torch.sigmoid(masks)
        mask_for_mem = mask_for_mem * c.sigmoid_scale_for_mem_enc + c.sigmoid_bias_for_mem_enc
        features_out, pos = self.memory_encoder(pix, mask_for_mem, skip_mask_sigmoid=True)
        if self.no_obj_embed_spatial is not None:
            # mark memories of frames where the object is predicted absent
            absent = (object_score_logits <= 0).float()[..., None, None]  # [B, 1, 1, 1]
            features_out = features_out + absent * self.no_obj_embed_spatial[..., None, None]
        return features_out, pos


def non_overlapping(masks: Tensor) -> Tensor:
    """Keep at each pixel only the highest-scoring object of masks [B, 1, H, W]; others are
    clamped to at most -MASK_LOGIT so foregrounds never overlap."""
    if masks.shape[0] == 1:
        return masks
    winner = torch.argmax(masks, dim=0, keepdim=True)  # [1, 1, H, W]
    index = torch.arange(masks.shape[0], device=masks.device)[:, None, None, None]
    return torch.where(winner == index, masks, masks.clamp(max=-MASK_LOGIT))
