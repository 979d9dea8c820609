"""Mask decoder: a two-way transformer over output tokens + prompt tokens and the image,
then hypernetwork heads that turn each mask token into a mask.

Output tokens, in order: [object score (if predicted)], IoU, mask 0 (single-mask output),
masks 1..3 (multimask outputs).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from masklet.config import MaskDecoderConfig
from masklet.errors import InvalidInputError
from masklet.modeling.common import MLP, LayerNorm2d
from masklet.modeling.logits import MASK_LOGIT
from masklet.modeling.outputs import DecoderOutput
from masklet.modeling.transformer import TwoWayTransformer

# Without an object-score head every frame is taken to hold the object: sigmoid(10) ~ 1.
OBJECT_PRESENT_LOGIT = MASK_LOGIT
HYPERNETWORK_DEPTH = 3
OBJECT_SCORE_MLP_DEPTH = 3


def stability_score(mask_logits: Tensor, delta: float) -> Tensor:
    """IoU between the masks thresholded at +delta and at -delta: [..., H, W] -> [...].

    A mask whose logits hover around 0 changes a lot with the threshold and scores low.
    An empty mask (nothing above -delta) counts as perfectly stable.
    """
    flat = mask_logits.flatten(-2)
    inner = (flat > delta).sum(-1).float()
    outer = (flat > -delta).sum(-1).float()
    return torch.where(outer > 0, inner / outer, 1.0)


class MaskDecoder(nn.Module):
    """Predicts masks, IoU estimates, object scores and the tokens used as object pointers."""

    def __init__(
        self,
        config: MaskDecoderConfig,
        transformer_dim: int,
        *,
        use_high_res_features: bool,
        iou_prediction_use_sigmoid: bool,
        pred_obj_scores: bool,
        pred_obj_scores_mlp: bool,
        use_multimask_token_for_obj_ptr: bool,
    ) -> None:
        super().__init__()
        self.config = config
        self.transformer_dim = transformer_dim
        self.transformer = TwoWayTransformer(
            depth=config.transformer_depth,
            embedding_dim=transformer_dim,
            num_heads=config.num_heads,
            mlp_dim=config.mlp_dim,
        )
        self.num_multimask_outputs = config.num_multimask_outputs
        self.num_mask_tokens = config.num_multimask_outputs + 1  # + the single-mask token
        self.iou_token = nn.Embedding(1, transformer_dim)
        self.mask_tokens = nn.Embedding(self.num_mask_tokens, transformer_dim)

        self.pred_obj_scores = pred_obj_scores
        if pred_obj_scores:
            self.obj_score_token = nn.Embedding(1, transformer_dim)
        # Which token becomes the object pointer when several masks are output: the trained
        # checkpoints set this, and the video memory then sees the multimask tokens.
        self.use_multimask_token_for_obj_ptr = use_multimask_token_for_obj_ptr

        # two stride-2 transposed convolutions: image embedding -> 4x side, C/8 channels
        self.output_upscaling = nn.Sequential(
            nn.ConvTranspose2d(transformer_dim, transformer_dim // 4, kernel_size=2, stride=2),
            LayerNorm2d(transformer_dim // 4),
            nn.GELU(),
            nn.ConvTranspose2d(transformer_dim // 4, transformer_dim // 8, kernel_size=2, stride=2),
            nn.GELU(),
        )
        self.use_high_res_features = use_high_res_features
        if use_high_res_features:
            # Applied by the model to the stride-4 and stride-8 backbone levels (once per
            # image); their outputs are added inside the upscaling path here.
            self.conv_s0 = nn.Conv2d(transformer_dim, transformer_dim // 8, kernel_size=1)
            self.conv_s1 = nn.Conv2d(transformer_dim, transformer_dim // 4, kernel_size=1)

        self.output_hypernetworks_mlps = nn.ModuleList(
            MLP(transformer_dim, transformer_dim, transformer_dim // 8, HYPERNETWORK_DEPTH)
            for _ in range(self.num_mask_tokens)
        )
        self.iou_prediction_head = MLP(
            transformer_dim,
            config.iou_head_hidden_dim,
            self.num_mask_tokens,
            config.iou_head_depth,
            sigmoid_output=iou_prediction_use_sigmoid,
        )
        if pred_obj_scores:
            self.pred_obj_score_head: nn.Module = (
                MLP(transformer_dim, transformer_dim, 1, OBJECT_SCORE_MLP_DEPTH)
                if pred_obj_scores_mlp
                else nn.Linear(transformer_dim, 1)
            )

    def predict_all(
        self,
        image_embeddings: Tensor,
        image_pe: Tensor,
        sparse_prompt_embeddings: Tensor,
        dense_prompt_embeddings: Tensor,
        *,
        repeat_image: bool,
        high_res_features: list[Tensor] | None = None,
    ) -> DecoderOutput:
        """Outputs of every mask token, before choosing single or multimask output.

        Returns masks [B, T, 4h, 4w], ious [B, T], mask tokens [B, T, C] and object score
        logits [B, 1], with T = num_multimask_outputs + 1 (token 0 is the single mask).
        """
        batch = sparse_prompt_embeddings.shape[0]
        learned = [self.iou_token.weight, self.mask_tokens.weight]
        if self.pred_obj_scores:
            learned.insert(0, self.obj_score_token.weight)
        first_iou = len(learned) - 2  # index of the IoU token
        output_tokens = torch.cat(learned).unsqueeze(0).expand(batch, -1, -1)  # [B, T', C]
        tokens = torch.cat((output_tokens, sparse_prompt_embeddings), dim=1)

        if repeat_image:
            # one image, a batch of prompts on it
            src = image_embeddings.repeat_interleave(batch, dim=0)
        elif image_embeddings.shape[0] != batch:
            raise InvalidInputError(
                f"image embeddings have batch {image_embeddings.shape[0]} but the prompts "
                f"have batch {batch}; pass repeat_image=True to share one image"
            )
        else:
            src = image_embeddings
        src = src + dense_prompt_embeddings
        if image_pe.shape[0] != 1:
            raise InvalidInputError(
                f"image_pe must have batch 1 (from PromptEncoder.get_dense_pe()), "
                f"got {tuple(image_pe.shape)}"
            )
        pos_src = image_pe.expand(batch, -1, -1, -1)
        b, c, h, w = src.shape

        hs, src_tokens = self.transformer(src, pos_src, tokens)
        iou_token_out = hs[:, first_iou]  # [B, C]
        mask_tokens_out = hs[:, first_iou + 1 : first_iou + 1 + self.num_mask_tokens]  # [B, T, C]

        src = src_tokens.transpose(1, 2).reshape(b, c, h, w)  # [B, HW, C] -> [B, C, H, W]
        upscaled = self._upscale(src, high_res_features)  # [B, C/8, 4H, 4W]

        hyper_in = torch.stack(
            [mlp(mask_tokens_out[:, i]) for i, mlp in enumerate(self.output_hypernetworks_mlps)],
            dim=1,
        )  # [B, T, C/8]
        b, c8, uh, uw = upscaled.shape
        masks = (hyper_in @ upscaled.reshape(b, c8, uh * uw)).reshape(b, -1, uh, uw)

        iou_pred = self.iou_prediction_head(iou_token_out)  # [B, T]
        if self.pred_obj_scores:
            object_score_logits = self.pred_obj_score_head(hs[:, 0])  # [B, 1]
        else:
            object_score_logits = iou_pred.new_full((b, 1), OBJECT_PRESENT_LOGIT)
        return DecoderOutput(
            masks=masks,
            ious=iou_pred,
            tokens=mask_tokens_out,
            object_score_logits=object_score_logits,
        )

    def _upscale(self, src: Tensor, high_res_features: list[Tensor] | None) -> Tensor:
        """[B, C, H, W] -> [B, C/8, 4H, 4W], adding the projected stride-8 and stride-4
        backbone features after each transposed convolution when the model uses them."""
        deconv1, norm1, act1, deconv2, act2 = self.output_upscaling
        x = deconv1(src)
        if self.use_high_res_features:
            if high_res_features is None or len(high_res_features) != 2:
                raise InvalidInputError(
                    "this decoder uses high-resolution features: pass high_res_features = "
                    "[stride-4 map [B, C/8, 4H, 4W], stride-8 map [B, C/4, 2H, 2W]]"
                )
            feat_s0, feat_s1 = high_res_features
            x = act1(norm1(x + feat_s1))
            return act2(deconv2(x) + feat_s0)
        return act2(deconv2(act1(norm1(x))))

    def forward(
        self,
        image_embeddings: Tensor,
        image_pe: Tensor,
        sparse_prompt_embeddings: Tensor,
        dense_prompt_embeddings: Tensor,
        *,
        multimask_output: bool,
        repeat_image: bool,
        high_res_features: list[Tensor] | None = None,
    ) -> DecoderOutput:
        """Predict masks for a batch of prompts.

        Args:
            image_embeddings: [B or 1, C, H, W] (1 with repeat_image).
            image_pe: [1, C, H, W] from `PromptEncoder.get_dense_pe()`.
            sparse_prompt_embeddings: [B, N, C]; dense_prompt_embeddings: [B, C, H, W].
            multimask_output: return the 3 multimask outputs instead of one mask.
            repeat_image: share one image embedding across the B prompts.
            high_res_features: [stride-4 [B, C/8, 4H, 4W], stride-8 [B, C/4, 2H, 2W]] maps
                already projected by conv_s0 / conv_s1; required when the decoder uses them.

        Returns:
            masks [B, M, 4H, 4W] logits, ious [B, M], SAM output tokens [B, M', C] and object
            score logits [B, 1]; M is 3 with multimask output, else 1.
        """
        every = self.predict_all(
            image_embeddings,
            image_pe,
            sparse_prompt_embeddings,
            dense_prompt_embeddings,
            repeat_image=repeat_image,
            high_res_features=high_res_features,
        )
        return choose_outputs(
            every,
            multimask_output=multimask_output,
            config=self.config,
            use_multimask_token_for_obj_ptr=self.use_multimask_token_for_obj_ptr,
            training=self.training,
        )


def choose_outputs(
    every: DecoderOutput,
    *,
    multimask_output: bool,
    config: MaskDecoderConfig,
    use_multimask_token_for_obj_ptr: bool,
    training: bool,
) -> DecoderOutput:
    """The outputs `MaskDecoder.forward` returns, chosen among every token's outputs
    (`MaskDecoder.predict_all`); shared with decoders run elsewhere (onnxruntime)."""
    masks, iou_pred, mask_tokens = every.masks, every.ious, every.tokens
    if multimask_output:
        masks, iou_pred = masks[:, 1:], iou_pred[:, 1:]
    elif config.dynamic_multimask_via_stability and not training:
        masks, iou_pred = _dynamic_single_mask(masks, iou_pred, config)
    else:
        masks, iou_pred = masks[:, :1], iou_pred[:, :1]

    if multimask_output and use_multimask_token_for_obj_ptr:
        sam_tokens = mask_tokens[:, 1:]  # [B, 3, C]
    else:
        # The single-mask token, even when several masks are output: training tracked
        # after multiple clicks, so past object pointers were always this token.
        sam_tokens = mask_tokens[:, :1]  # [B, 1, C]
    return DecoderOutput(
        masks=masks,
        ious=iou_pred,
        tokens=sam_tokens,
        object_score_logits=every.object_score_logits,
    )


def _dynamic_single_mask(
    masks: Tensor, iou_pred: Tensor, cfg: MaskDecoderConfig
) -> tuple[Tensor, Tensor]:
    """Single-mask output that falls back to the best multimask output (by predicted
    IoU) where the single mask is unstable: masks [B, T, H, W], iou [B, T] ->
    [B, 1, H, W], [B, 1]. Ensures a usable mask after one ambiguous click."""
    multi_masks, multi_iou = masks[:, 1:], iou_pred[:, 1:]
    best = multi_iou.argmax(dim=-1)  # [B]
    rows = torch.arange(masks.shape[0], device=masks.device)
    best_masks = multi_masks[rows, best].unsqueeze(1)  # [B, 1, H, W]
    best_iou = multi_iou[rows, best].unsqueeze(1)  # [B, 1]

    single_masks, single_iou = masks[:, :1], iou_pred[:, :1]
    stable = stability_score(single_masks, cfg.dynamic_multimask_stability_delta) >= (
        cfg.dynamic_multimask_stability_thresh
    )  # [B, 1]
    out_masks = torch.where(stable[..., None, None], single_masks, best_masks)
    out_iou = torch.where(stable, single_iou, best_iou)
    return out_masks, out_iou
