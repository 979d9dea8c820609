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
from masklet.modeling.memory_encoder import MemoryEncoder
from masklet.modeling.neck import ImageEncoder
from masklet.modeling.outputs import FrameOutput, ImageFeatures, SamHeadOutput
from masklet.modeling.prompt_encoder import PADDING_LABEL, PromptEncoder
from masklet.modeling.sam_memory import MemoryMixin

# Mask prompts used directly as output become logits of +-MASK_LOGIT.
MASK_AS_OUTPUT_SCALE, MASK_AS_OUTPUT_BIAS = 2 * MASK_LOGIT, -MASK_LOGIT

PointInputs = tuple[Tensor, Tensor]  # coords [B, P, 2] in input-image pixels, labels [B, P]


class SAM2Model(MemoryMixin, nn.Module):
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


def build_model(config: ModelConfig) -> SAM2Model:
    """A randomly initialised model for `config`, in eval mode."""
    return SAM2Model(config).eval()
