"""The SAM 2 model: image encoder, SAM heads, memory attention and memory encoder.

`SAM2Model` is a pure module: every method takes what it needs and returns typed outputs; the
predictors own all state. Parameter names equal the official checkpoint keys, so an official
`.pt` loads with `load_state_dict(strict=True)` and no renaming.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from masklet.config import ModelConfig
from masklet.modeling.common import MLP
from masklet.modeling.logits import MASK_LOGIT, NO_OBJECT_SCORE
from masklet.modeling.mask_decoder import MaskDecoder
from masklet.modeling.memory_attention import MemoryAttention
from masklet.modeling.memory_bank import MemoryRule
from masklet.modeling.memory_encoder import MemoryEncoder
from masklet.modeling.neck import ImageEncoder
from masklet.modeling.outputs import FrameOutput, ImageFeatures, SamHeadOutput
from masklet.modeling.position import sine_1d
from masklet.modeling.prompt_encoder import PADDING_LABEL, PromptEncoder

# Mask prompts used directly as output become logits of +-MASK_LOGIT.
MASK_AS_OUTPUT_SCALE, MASK_AS_OUTPUT_BIAS = 2 * MASK_LOGIT, -MASK_LOGIT

PointInputs = tuple[Tensor, Tensor]  # coords [B, P, 2] in input-image pixels, labels [B, P]


class SAM2Model(nn.Module):
    """SAM 2 (Ravi et al. 2024) for images and videos."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        c = config
        hidden, mem_dim = c.hidden_dim, c.mem_dim
        self.image_encoder = ImageEncoder(c.hiera, c.neck)
        self.memory_attention = MemoryAttention(c.memory_attention, hidden, mem_dim)
        self.memory_encoder = MemoryEncoder(c.memory_encoder, hidden, c.backbone_stride)
        self.num_feature_levels = 3 if c.use_high_res_features_in_sam else 1
        if c.use_obj_ptrs_in_encoder:
            # turns a mask prompt into a low-res mask input for the decoder's pointer
            self.mask_downsample = nn.Conv2d(1, 1, kernel_size=4, stride=4)
        # temporal encoding of the spatial memories, index 0 = the most recent frame
        self.maskmem_tpos_enc = nn.Parameter(torch.zeros(c.num_maskmem, 1, 1, mem_dim))
        self.no_mem_embed = nn.Parameter(torch.zeros(1, 1, hidden))
        self.no_mem_pos_enc = nn.Parameter(torch.zeros(1, 1, hidden))
        if c.fixed_no_obj_ptr and not (c.pred_obj_scores and c.use_obj_ptrs_in_encoder):
            raise ValueError("fixed_no_obj_ptr needs pred_obj_scores and use_obj_ptrs_in_encoder")
        if c.pred_obj_scores and c.use_obj_ptrs_in_encoder:
            self.no_obj_ptr = nn.Parameter(torch.zeros(1, hidden))
        self.no_obj_embed_spatial: nn.Parameter | None = None
        if c.no_obj_embed_spatial:
            self.no_obj_embed_spatial = nn.Parameter(torch.zeros(1, mem_dim))

        side = c.image_embedding_size
        self.sam_prompt_encoder = PromptEncoder(
            embed_dim=hidden,
            image_embedding_size=(side, side),
            input_image_size=(c.image_size, c.image_size),
            mask_in_chans=c.mask_decoder.mask_in_chans,
        )
        self.sam_mask_decoder = MaskDecoder(
            c.mask_decoder,
            hidden,
            use_high_res_features=c.use_high_res_features_in_sam,
            iou_prediction_use_sigmoid=c.iou_prediction_use_sigmoid,
            pred_obj_scores=c.pred_obj_scores,
            pred_obj_scores_mlp=c.pred_obj_scores_mlp,
            use_multimask_token_for_obj_ptr=c.use_multimask_token_for_obj_ptr,
        )
        self.obj_ptr_proj: nn.Module = nn.Identity()
        if c.use_obj_ptrs_in_encoder:
            self.obj_ptr_proj = (
                MLP(hidden, hidden, hidden, 3)
                if c.use_mlp_for_obj_ptr_proj
                else nn.Linear(hidden, hidden)
            )
        # keeps the temporal encoding of pointers apart from the spatial one
        self.obj_ptr_tpos_proj: nn.Module = (
            nn.Linear(hidden, mem_dim) if c.proj_tpos_enc_in_obj_ptrs else nn.Identity()
        )
        self._init_embeddings()

    def _init_embeddings(self) -> None:
        for p in (self.maskmem_tpos_enc, self.no_mem_embed, self.no_mem_pos_enc):
            nn.init.trunc_normal_(p, std=0.02)
        for name in ("no_obj_ptr", "no_obj_embed_spatial"):
            optional = getattr(self, name, None)
            if isinstance(optional, nn.Parameter):
                nn.init.trunc_normal_(optional, std=0.02)

    @property
    def device(self) -> torch.device:
        return self.maskmem_tpos_enc.device

    @property
    def image_size(self) -> int:
        return self.config.image_size

    def memory_rule(self) -> MemoryRule:
        """Which stored frames a frame attends to, in the current (train / eval) mode."""
        return MemoryRule.from_config(self.config, training=self.training)

    # ---- image features -------------------------------------------------------------------

    def forward_image(self, images: Tensor) -> ImageFeatures:
        """[B, 3, S, S] normalised images -> features for the SAM heads and the memory."""
        out = self.image_encoder(images)
        fpn = list(out.backbone_fpn)
        if self.config.use_high_res_features_in_sam:
            # project the two high-res levels once here rather than on every click
            fpn[0] = self.sam_mask_decoder.conv_s0(fpn[0])
            fpn[1] = self.sam_mask_decoder.conv_s1(fpn[1])
        levels = self.num_feature_levels
        maps, pos = fpn[-levels:], list(out.vision_pos_enc)[-levels:]
        return ImageFeatures(
            vision_feats=[
                x.flatten(2).permute(2, 0, 1) for x in maps
            ],  # [B, C, H, W] -> [HW, B, C]
            vision_pos=[x.flatten(2).permute(2, 0, 1) for x in pos],
            feat_sizes=[(x.shape[-2], x.shape[-1]) for x in pos],
        )

    def image_embeddings(self, features: ImageFeatures) -> tuple[Tensor, list[Tensor]]:
        """Image-mode embeddings (no memory): ([B, C, h, w], high-res maps), as SAM 2's image
        predictor uses them: the no-memory embedding is added to the lowest level."""
        maps = features.maps()
        if self.config.directly_add_no_mem_embed:
            h, w = features.feat_sizes[-1]
            last = features.vision_feats[-1] + self.no_mem_embed  # [HW, B, C]
            maps[-1] = last.permute(1, 2, 0).reshape(last.shape[1], -1, h, w)
        return maps[-1], maps[:-1]

    # ---- SAM heads --------------------------------------------------------------------------

    def forward_sam_heads(
        self,
        backbone_features: Tensor,
        *,
        point_inputs: PointInputs | None = None,
        mask_inputs: Tensor | None = None,
        high_res_features: list[Tensor] | None = None,
        multimask_output: bool = False,
    ) -> SamHeadOutput:
        """Prompt encoder + mask decoder on memory-conditioned features [B, C, h, w].

        mask_inputs: [B, 1, H, W] logits or binary masks at any size (resized to the decoder's
        mask input size).
        """
        b = backbone_features.shape[0]
        device = backbone_features.device
        if point_inputs is None:
            # an empty prompt is one padding point
            point_inputs = (
                torch.zeros(b, 1, 2, device=device),
                torch.full((b, 1), PADDING_LABEL, dtype=torch.int32, device=device),
            )
        mask_prompt = None
        if mask_inputs is not None:
            mask_prompt = mask_inputs
            if mask_inputs.shape[-2:] != self.sam_prompt_encoder.mask_input_size:
                mask_prompt = F.interpolate(
                    mask_inputs.float(),
                    size=self.sam_prompt_encoder.mask_input_size,
                    mode="bilinear",
                    align_corners=False,
                    antialias=True,
                )
        sparse, dense = self.sam_prompt_encoder(points=point_inputs, boxes=None, masks=mask_prompt)
        decoded = self.sam_mask_decoder(
            image_embeddings=backbone_features,
            image_pe=self.sam_prompt_encoder.get_dense_pe(),
            sparse_prompt_embeddings=sparse,
            dense_prompt_embeddings=dense,
            multimask_output=multimask_output,
            repeat_image=False,
            high_res_features=high_res_features,
        )
        low_res_multi, ious = decoded.masks, decoded.ious
        tokens, object_scores = decoded.tokens, decoded.object_score_logits
        visible = object_scores > 0  # [B, 1]
        if self.config.pred_obj_scores:
            # a hard choice, so spatial memories agree with the shown mask
            low_res_multi = torch.where(visible[:, None, None], low_res_multi, NO_OBJECT_SCORE)
        low_res_multi = low_res_multi.float()
        size = (self.image_size, self.image_size)
        high_res_multi = F.interpolate(
            low_res_multi, size=size, mode="bilinear", align_corners=False
        )

        token = tokens[:, 0]
        if multimask_output:
            best = torch.argmax(ious, dim=-1)  # [B]
            rows = torch.arange(b, device=device)
            low_res, high_res = low_res_multi[rows, best, None], high_res_multi[rows, best, None]
            if tokens.shape[1] > 1:
                token = tokens[rows, best]
        else:
            low_res, high_res = low_res_multi, high_res_multi
        pointer = self._gate_pointer(self.obj_ptr_proj(token), object_scores, soft=True)
        return SamHeadOutput(
            low_res_multimasks=low_res_multi,
            high_res_multimasks=high_res_multi,
            ious=ious,
            low_res_masks=low_res,
            high_res_masks=high_res,
            object_pointer=pointer,
            object_score_logits=object_scores,
        )

    def _gate_pointer(self, pointer: Tensor, object_scores: Tensor, soft: bool) -> Tensor:
        """Blend the pointer [B, C] with the learned no-object pointer when the object is absent."""
        if not self.config.pred_obj_scores:
            return pointer
        if soft and self.config.soft_no_obj_ptr:
            weight = object_scores.sigmoid()
        else:
            weight = (object_scores > 0).float()
        if self.config.fixed_no_obj_ptr:
            pointer = weight * pointer
        return pointer + (1 - weight) * self.no_obj_ptr

    def mask_as_output(
        self, backbone_features: Tensor, high_res_features: list[Tensor] | None, mask_inputs: Tensor
    ) -> SamHeadOutput:
        """Use a binary mask prompt [B, 1, S, S] directly as the output (no decoding), with a
        pointer still made by the decoder from the downsampled mask."""
        high_res = mask_inputs.float() * MASK_AS_OUTPUT_SCALE + MASK_AS_OUTPUT_BIAS
        low_res = F.interpolate(
            high_res,
            size=(high_res.shape[-2] // 4, high_res.shape[-1] // 4),
            mode="bilinear",
            align_corners=False,
            antialias=True,
        )
        b = mask_inputs.shape[0]
        ious = mask_inputs.new_ones(b, 1).float()
        if self.config.use_obj_ptrs_in_encoder:
            pointer = self.forward_sam_heads(
                backbone_features,
                mask_inputs=self.mask_downsample(mask_inputs.float()),
                high_res_features=high_res_features,
            ).object_pointer
        else:
            pointer = torch.zeros(b, self.config.hidden_dim, device=mask_inputs.device)
        # whether the object is present follows the given mask, not the decoder's score
        present = (mask_inputs.flatten(1).float() > 0).any(dim=1, keepdim=True).float()  # [B, 1]
        object_scores = MASK_AS_OUTPUT_SCALE * present + MASK_AS_OUTPUT_BIAS
        if self.config.pred_obj_scores:
            if self.config.fixed_no_obj_ptr:
                pointer = present * pointer
            pointer = pointer + (1 - present) * self.no_obj_ptr
        return SamHeadOutput(
            low_res_multimasks=low_res,
            high_res_multimasks=high_res,
            ious=ious,
            low_res_masks=low_res,
            high_res_masks=high_res,
            object_pointer=pointer,
            object_score_logits=object_scores,
        )

    # ---- memory -----------------------------------------------------------------------------

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

    def use_multimask(self, is_init_cond_frame: bool, point_inputs: PointInputs | None) -> bool:
        """Whether the decoder returns 3 candidates: only for ambiguous prompts (few clicks)."""
        c = self.config
        num_points = 0 if point_inputs is None else point_inputs[1].shape[1]
        return (
            c.multimask_output_in_sam
            and (is_init_cond_frame or c.multimask_output_for_tracking)
            and c.multimask_min_pt_num <= num_points <= c.multimask_max_pt_num
        )

    def track_step(
        self,
        frame_idx: int,
        features: ImageFeatures,
        *,
        is_init_cond_frame: bool,
        cond_outputs: Mapping[int, FrameOutput],
        non_cond_outputs: Mapping[int, FrameOutput],
        num_frames: int | None,
        point_inputs: PointInputs | None = None,
        mask_inputs: Tensor | None = None,
        reverse: bool = False,
        run_memory_encoder: bool = True,
        prev_mask_logits: Tensor | None = None,
    ) -> tuple[FrameOutput, SamHeadOutput]:
        """One frame of tracking for a batch of objects: memory conditioning, SAM heads, and
        (optionally) the memory encoder on the predicted mask."""
        maps = features.maps()
        high_res = maps[:-1] if len(maps) > 1 else None
        if mask_inputs is not None and self.config.use_mask_input_as_output_without_sam:
            sam = self.mask_as_output(maps[-1], high_res, mask_inputs)
        else:
            pix = self.condition_on_memory(
                frame_idx,
                features,
                is_init_cond_frame=is_init_cond_frame,
                cond_outputs=cond_outputs,
                non_cond_outputs=non_cond_outputs,
                num_frames=num_frames,
                reverse=reverse,
            )
            if prev_mask_logits is not None:
                # earlier logits of this frame refine the new clicks (interactive demo)
                mask_inputs = prev_mask_logits
            sam = self.forward_sam_heads(
                pix,
                point_inputs=point_inputs,
                mask_inputs=mask_inputs,
                high_res_features=high_res,
                multimask_output=self.use_multimask(is_init_cond_frame, point_inputs),
            )
        out = FrameOutput(
            pred_masks=sam.low_res_masks,
            object_pointer=sam.object_pointer,
            object_score_logits=sam.object_score_logits,
            ious=sam.ious,
        )
        if run_memory_encoder and self.config.num_maskmem > 0:
            out.memory_features, out.memory_pos = self.encode_memory(
                features,
                sam.high_res_masks,
                sam.object_score_logits,
                is_mask_from_points=point_inputs is not None,
            )
        return out, sam


def non_overlapping(masks: Tensor) -> Tensor:
    """Keep at each pixel only the highest-scoring object of masks [B, 1, H, W]; others are
    clamped to at most -MASK_LOGIT so foregrounds never overlap."""
    if masks.shape[0] == 1:
        return masks
    winner = torch.argmax(masks, dim=0, keepdim=True)  # [1, 1, H, W]
    index = torch.arange(masks.shape[0], device=masks.device)[:, None, None, None]
    return torch.where(winner == index, masks, masks.clamp(max=-MASK_LOGIT))


def build_model(config: ModelConfig) -> SAM2Model:
    """A randomly initialised model for `config`, in eval mode."""
    return SAM2Model(config).eval()
