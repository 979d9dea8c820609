"""Typed outputs of the model's steps (instead of dicts with string keys)."""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor


@dataclass
class ImageFeatures:
    """Backbone features of a batch of images, sequence-first as the memory attention wants.

    vision_feats: per level [HW, B, C], highest resolution first; the two high-resolution
        levels already went through the mask decoder's conv_s0 / conv_s1 projections.
    vision_pos: per level [HW, B, C] position encodings.
    feat_sizes: per level (H, W).
    """

    vision_feats: list[Tensor]
    vision_pos: list[Tensor]
    feat_sizes: list[tuple[int, int]]

    @property
    def batch_size(self) -> int:
        return self.vision_feats[-1].shape[1]

    def maps(self) -> list[Tensor]:
        """Every level as a [B, C, H, W] map."""
        return [
            x.permute(1, 2, 0).reshape(x.shape[1], x.shape[2], h, w)  # [HW, B, C] -> [B, C, H, W]
            for x, (h, w) in zip(self.vision_feats, self.feat_sizes)
        ]

    def select(self, index: Tensor) -> ImageFeatures:
        """Features of the batch entries in `index` ([K] long), e.g. one image per object."""
        return ImageFeatures(
            vision_feats=[x[:, index] for x in self.vision_feats],
            vision_pos=[x[:, index] for x in self.vision_pos],
            feat_sizes=list(self.feat_sizes),
        )


@dataclass
class DecoderOutput:
    """Output of the mask decoder for a batch of B prompts.

    masks: [B, M, 4h, 4w] mask logits.
    ious: [B, M] predicted IoU.
    tokens: [B, M', C] mask tokens (the object pointer is made from token 0 or the chosen one).
    object_score_logits: [B, 1] "is the object visible" logit.
    M and M' depend on the call: every token (`MaskDecoder.predict_all`), 3 with multimask
    output, else 1.
    """

    masks: Tensor
    ious: Tensor
    tokens: Tensor
    object_score_logits: Tensor


@dataclass
class SamHeadOutput:
    """Output of the prompt encoder + mask decoder for a batch of B prompts.

    low_res_multimasks: [B, M, 4h, 4w] logits (M = 3 with multimask output, else 1).
    high_res_multimasks: [B, M, S, S] logits at the model's input size.
    ious: [B, M] predicted IoU.
    low_res_masks / high_res_masks: [B, 1, ...] the best of the M masks.
    object_pointer: [B, C] pointer token for the memory.
    object_score_logits: [B, 1] "is the object visible" logit.
    """

    low_res_multimasks: Tensor
    high_res_multimasks: Tensor
    ious: Tensor
    low_res_masks: Tensor
    high_res_masks: Tensor
    object_pointer: Tensor
    object_score_logits: Tensor


@dataclass
class FrameOutput:
    """What tracking keeps of one frame for a batch of objects (the memory bank's entries).

    pred_masks: [B, 1, 4h, 4w] low-resolution mask logits.
    object_pointer: [B, C].
    object_score_logits: [B, 1].
    memory_features: [B, mem_dim, h, w] or None before the memory encoder ran.
    memory_pos: [B, mem_dim, h, w] or None.
    ious: [B, M] IoU predictions of the chosen output (for callers; not read by the memory).
    """

    pred_masks: Tensor
    object_pointer: Tensor
    object_score_logits: Tensor
    memory_features: Tensor | None = None
    memory_pos: Tensor | None = None
    ious: Tensor | None = None
