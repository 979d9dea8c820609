"""Prompt encoder: points and boxes become sparse tokens, a mask becomes a dense map.

Point labels (the official convention, shared with the checkpoints):
  0 negative click, 1 positive click, 2 box top-left corner, 3 box bottom-right corner,
  -1 "not a point" (padding; its position is ignored).
"""

from __future__ import annotations

from typing import cast

import torch
from torch import Tensor, nn

from masklet.errors import InvalidInputError, InvalidPromptError
from masklet.modeling.common import LayerNorm2d
from masklet.modeling.labels import (  # noqa: F401  (re-exported: the encoder's labels)
    BOX_BOTTOM_RIGHT_LABEL,
    BOX_TOP_LEFT_LABEL,
    NEGATIVE_LABEL,
    NUM_POINT_LABELS,
    PADDING_LABEL,
    POSITIVE_LABEL,
)
from masklet.modeling.position import PositionEmbeddingRandom

# a mask prompt has 4x the side of the image embedding (two stride-2 convolutions)
MASK_INPUT_UPSCALE = 4
# coordinates name pixel corners; encode the pixel centre
PIXEL_CENTRE_OFFSET = 0.5


class PromptEncoder(nn.Module):
    """Embeds point, box and mask prompts for the mask decoder."""

    def __init__(
        self,
        embed_dim: int,
        image_embedding_size: tuple[int, int],
        input_image_size: tuple[int, int],
        mask_in_chans: int,
    ) -> None:
        """
        Args:
            embed_dim: width of the prompt tokens (the decoder width).
            image_embedding_size: (H, W) of the image embedding.
            input_image_size: (H, W) of the padded model input, in which points are given.
            mask_in_chans: hidden channels of the mask downscaler.
        """
        super().__init__()
        self.embed_dim = embed_dim
        self.image_embedding_size = image_embedding_size
        self.input_image_size = input_image_size
        self.pe_layer = PositionEmbeddingRandom(embed_dim // 2)

        # one learned offset per label, added to the positional encoding of the point
        self.point_embeddings = nn.ModuleList(
            nn.Embedding(1, embed_dim) for _ in range(NUM_POINT_LABELS)
        )
        self.not_a_point_embed = nn.Embedding(1, embed_dim)

        self.mask_input_size = (
            MASK_INPUT_UPSCALE * image_embedding_size[0],
            MASK_INPUT_UPSCALE * image_embedding_size[1],
        )
        hidden = mask_in_chans // 4
        self.mask_downscaling = nn.Sequential(
            nn.Conv2d(1, hidden, kernel_size=2, stride=2),
            LayerNorm2d(hidden),
            nn.GELU(),
            nn.Conv2d(hidden, mask_in_chans, kernel_size=2, stride=2),
            LayerNorm2d(mask_in_chans),
            nn.GELU(),
            nn.Conv2d(mask_in_chans, embed_dim, kernel_size=1),
        )
        self.no_mask_embed = nn.Embedding(1, embed_dim)
        self._dense_pe: Tensor | None = None
        self._dense_pe_key: tuple[object, ...] | None = None

    def get_dense_pe(self) -> Tensor:
        """Positional encoding of every image-embedding cell: [1, C, H, W].

        It depends only on the frozen Gaussian matrix, yet costs as much as the rest of a
        click's decoding at 1024 px; outside autograd it is cached, keyed on the matrix's
        storage and version so loading new weights or moving the module invalidates it.
        """
        if torch.is_grad_enabled() and self.training:
            return self.pe_layer(self.image_embedding_size).unsqueeze(0)
        matrix = self.pe_layer.positional_encoding_gaussian_matrix
        key = (matrix.data_ptr(), matrix._version, matrix.device, matrix.dtype)
        if self._dense_pe_key != key:
            with torch.no_grad():
                self._dense_pe = self.pe_layer(self.image_embedding_size).unsqueeze(0)
            self._dense_pe_key = key
        assert self._dense_pe is not None
        return self._dense_pe

    def _label_offsets(self) -> Tensor:
        """The learned per-label offsets stacked: [4, C]."""
        return torch.cat([cast(nn.Embedding, e).weight for e in self.point_embeddings])

    def _embed_points(self, coords: Tensor, labels: Tensor, pad: bool) -> Tensor:
        """coords [B, N, 2] (x, y) input pixels, labels [B, N] -> [B, N (+1 if pad), C]."""
        coords = coords + PIXEL_CENTRE_OFFSET
        if pad:
            # Without a box the decoder was trained with one extra padding token.
            coords = torch.cat((coords, coords.new_zeros(coords.shape[0], 1, 2)), dim=1)
            labels = torch.cat((labels, labels.new_full((labels.shape[0], 1), PADDING_LABEL)), 1)
        pe = self.pe_layer.forward_with_coords(coords, self.input_image_size)  # [B, N, C]

        labels = labels.long()
        with_offset = pe + self._label_offsets()[labels.clamp(min=0)]  # [B, N, C]
        is_padding = (labels == PADDING_LABEL).unsqueeze(-1)
        # padding tokens carry no position at all, only the learned "not a point" vector
        return torch.where(is_padding, self.not_a_point_embed.weight.to(pe.dtype), with_offset)

    def _embed_boxes(self, boxes: Tensor) -> Tensor:
        """boxes [B, 4] (x0, y0, x1, y1) -> two corner tokens [B, 2, C]."""
        corners = (boxes + PIXEL_CENTRE_OFFSET).reshape(-1, 2, 2)  # [B, 4] -> [B, 2, 2]
        pe = self.pe_layer.forward_with_coords(corners, self.input_image_size)  # [B, 2, C]
        corner_offsets = self._label_offsets()[BOX_TOP_LEFT_LABEL : BOX_BOTTOM_RIGHT_LABEL + 1]
        return pe + corner_offsets  # [B, 2, C] + [2, C]

    def _check(
        self, points: tuple[Tensor, Tensor] | None, boxes: Tensor | None, masks: Tensor | None
    ) -> int:
        """Validate the prompts and return their common batch size."""
        sizes: dict[str, int] = {}
        if points is not None:
            coords, labels = points
            if coords.ndim != 3 or coords.shape[-1] != 2 or labels.shape != coords.shape[:2]:
                raise InvalidPromptError(
                    f"points must be coords [B, N, 2] and labels [B, N], got "
                    f"{tuple(coords.shape)} and {tuple(labels.shape)}"
                )
            if labels.numel() and ((labels < PADDING_LABEL) | (labels >= NUM_POINT_LABELS)).any():
                raise InvalidPromptError(
                    f"point labels must be in -1..3 (padding, negative, positive, box corners), "
                    f"got {sorted(set(labels.unique().tolist()))}"
                )
            sizes["points"] = coords.shape[0]
        if boxes is not None:
            if boxes.shape[-1] != 4 or boxes.numel() % 4:
                raise InvalidPromptError(
                    f"boxes must be [B, 4] (x0, y0, x1, y1), got {tuple(boxes.shape)}"
                )
            sizes["boxes"] = boxes.numel() // 4
        if masks is not None:
            if masks.ndim != 4 or masks.shape[1] != 1 or masks.shape[-2:] != self.mask_input_size:
                raise InvalidPromptError(
                    f"mask prompts must be [B, 1, {self.mask_input_size[0]}, "
                    f"{self.mask_input_size[1]}] logits, got {tuple(masks.shape)}; resize them "
                    f"to the mask input size first"
                )
            sizes["masks"] = masks.shape[0]
        if len(set(sizes.values())) > 1:
            raise InvalidInputError(f"prompts disagree on the batch size: {sizes}")
        return next(iter(sizes.values()), 1)

    def forward(
        self, points: tuple[Tensor, Tensor] | None, boxes: Tensor | None, masks: Tensor | None
    ) -> tuple[Tensor, Tensor]:
        """Embed the prompts of a batch.

        Args:
            points: coords [B, N, 2] in input pixels (x, y) and labels [B, N], or None.
            boxes: [B, 4] in input pixels, or None.
            masks: [B, 1, 4H, 4W] mask logits, or None.

        Returns:
            sparse [B, N', C] (points, a padding token when there is no box, box corners) and
            dense [B, C, H, W] (the encoded mask, or the learned "no mask" vector everywhere).
            With no prompt at all, B is 1.
        """
        batch = self._check(points, boxes, masks)
        weight = self.not_a_point_embed.weight
        tokens = [weight.new_empty(batch, 0, self.embed_dim)]
        if points is not None:
            tokens.append(self._embed_points(points[0], points[1], pad=boxes is None))
        if boxes is not None:
            tokens.append(self._embed_boxes(boxes))
        sparse = torch.cat(tokens, dim=1)

        if masks is not None:
            dense = self.mask_downscaling(masks)
        else:
            h, w = self.image_embedding_size
            dense = self.no_mask_embed.weight.reshape(1, -1, 1, 1).expand(batch, -1, h, w)
        return sparse, dense
