"""The model's parts as plain tensor-in, tensor-out modules, the shape ONNX graphs need.

Each wrapper computes what the image predictor computes with the same modules (no new math):
the exported graphs and the PyTorch predictor therefore agree up to float rounding.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from masklet.modeling.sam2 import SAM2Model


class PartGraph(nn.Module):
    """A wrapper around one part of `model` (the model's own modules, shared, not copied)."""

    def __init__(self, model: SAM2Model) -> None:
        super().__init__()
        self.model = model
        # a new module starts in training mode, and torch.onnx.export restores the wrapper's
        # mode on the whole tree afterwards: follow the model's mode so it is left unchanged
        self.train(model.training)

    def high_res_names(self) -> list[str]:
        """The two projected high-resolution maps, when the decoder uses them."""
        return (
            ["high_res_0", "high_res_1"] if self.model.config.use_high_res_features_in_sam else []
        )


class ImageEncoderGraph(PartGraph):
    """[B, 3, S, S] normalised images -> image-mode embedding, high-res maps and the raw
    lowest-resolution features and position encoding the memory path needs."""

    def output_names(self) -> list[str]:
        return ["image_embed", *self.high_res_names(), "vision_features", "vision_pos"]

    def forward(self, images: Tensor) -> tuple[Tensor, ...]:
        """images [B, 3, S, S] -> image_embed [B, C, h, w], (high_res_0 [B, C/8, 4h, 4w],
        high_res_1 [B, C/4, 2h, 2w],) vision_features [B, C, h, w], vision_pos [B, C, h, w]."""
        features = self.model.forward_image(images)
        image_embed, high_res = self.model.image_embeddings(features)
        h, w = features.feat_sizes[-1]
        b = images.shape[0]
        # [HW, B, C] -> [B, C, h, w]
        raw = features.vision_feats[-1].permute(1, 2, 0).reshape(b, -1, h, w)
        pos = features.vision_pos[-1].permute(1, 2, 0).reshape(b, -1, h, w)
        return (image_embed, *high_res, raw, pos)


class PromptDecoderGraph(PartGraph):
    """Prompt encoder + mask decoder for one image embedding per prompt set.

    Points carry boxes too (corners labelled 2 and 3, as the image predictor sends them); a
    mask prompt is switched on by `has_mask_input` (1.0) or off (0.0), so one graph serves
    both. All mask tokens are returned: token 0 is the single-mask output, 1.. the multimask
    outputs.
    """

    def input_names(self) -> list[str]:
        return ["image_embed", *self.high_res_names(), "point_coords", "point_labels",
                "mask_input", "has_mask_input"]  # fmt: skip

    def output_names(self) -> list[str]:
        return ["masks", "iou_predictions", "object_score_logits", "mask_tokens"]

    def forward(self, image_embed: Tensor, *rest: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """image_embed [B, C, h, w], (high_res_0, high_res_1,) point_coords [B, N, 2] input
        pixels, point_labels [B, N] int32, mask_input [B, 1, 4h, 4w], has_mask_input [1]
        -> masks [B, T, 4h, 4w], iou_predictions [B, T], object_score_logits [B, 1],
        mask_tokens [B, T, C] (T = multimask outputs + 1)."""
        high_res: list[Tensor] | None = None
        if self.high_res_names():
            high_res, rest = list(rest[:2]), rest[2:]
        coords, labels, mask_input, has_mask = rest
        encoder = self.model.sam_prompt_encoder
        sparse, no_mask = encoder(points=(coords, labels), boxes=None, masks=None)
        # a weighted sum with weights 0/1 is exact: x * 1 + y * 0 == x
        dense = has_mask * encoder.mask_downscaling(mask_input) + (1 - has_mask) * no_mask
        decoded = self.model.sam_mask_decoder.predict_all(
            image_embed,
            encoder.get_dense_pe(),
            sparse,
            dense,
            repeat_image=False,
            high_res_features=high_res,
        )
        return decoded.masks, decoded.ious, decoded.object_score_logits, decoded.tokens


class MaskDecoderGraph(PartGraph):
    """The mask decoder alone, on prompt embeddings the (PyTorch) prompt encoder made: the
    part the onnxruntime backend runs for every click and every tracked frame. All mask
    tokens are returned (`MaskDecoder.predict_all`); the caller chooses among them."""

    def input_names(self) -> list[str]:
        names = ["image_embed", "image_pe", "sparse_embeddings", "dense_embeddings"]
        return names + self.high_res_names()

    def output_names(self) -> list[str]:
        return ["masks", "iou_predictions", "mask_tokens", "object_score_logits"]

    def forward(self, image_embed: Tensor, image_pe: Tensor, *rest: Tensor) -> tuple[Tensor, ...]:
        """image_embed [B, C, h, w], image_pe [1, C, h, w], sparse_embeddings [B, N, C],
        dense_embeddings [B, C, h, w], (high_res_0, high_res_1,) -> masks [B, T, 4h, 4w],
        iou_predictions [B, T], mask_tokens [B, T, C], object_score_logits [B, 1]."""
        sparse, dense, *high_res = rest
        decoded = self.model.sam_mask_decoder.predict_all(
            image_embed,
            image_pe,
            sparse,
            dense,
            repeat_image=False,
            high_res_features=high_res or None,
        )
        return decoded.masks, decoded.ious, decoded.tokens, decoded.object_score_logits


class ObjectPointerGraph(PartGraph):
    """The projection of the decoder's chosen mask token into the object pointer (the
    no-object mixing after it is elementwise and stays with the caller)."""

    input_names = ["mask_token"]
    output_names = ["object_pointer"]

    def forward(self, mask_token: Tensor) -> Tensor:
        """mask_token [B, C] -> object_pointer [B, C]."""
        return self.model.obj_ptr_proj(mask_token)


def example_inputs(model: SAM2Model, *, batch: int = 1, points: int = 2) -> dict[str, Tensor]:
    """Inputs for both graphs, named as the graphs name them: seeded random images, their
    real encoder outputs, and clicks and a mask prompt on them."""
    s = model.config.image_size
    g = torch.Generator().manual_seed(0)
    images = torch.randn(batch, 3, s, s, generator=g)
    encoder = ImageEncoderGraph(model)
    with torch.no_grad():
        encoded = dict(zip(encoder.output_names(), encoder(images), strict=True))
    low = model.sam_prompt_encoder.mask_input_size
    return {
        "images": images,
        **encoded,
        "point_coords": torch.rand(batch, points, 2, generator=g) * s,
        "point_labels": torch.randint(0, 2, (batch, points), generator=g, dtype=torch.int32),
        "mask_input": torch.randn(batch, 1, *low, generator=g),
        "has_mask_input": torch.ones(1),
        "image_pe": model.sam_prompt_encoder.get_dense_pe(),
        "sparse_embeddings": torch.randn(batch, points + 1, model.config.hidden_dim, generator=g),
        "dense_embeddings": torch.randn(batch, *encoded["image_embed"].shape[1:], generator=g),
        "mask_token": torch.randn(batch, model.config.hidden_dim, generator=g),
    }
