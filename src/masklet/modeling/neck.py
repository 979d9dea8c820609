"""FPN neck on top of the Hiera trunk, and the image encoder that chains the two.

The neck projects every trunk stage to `d_model` channels with a 1x1 convolution and, on the
levels listed in `fpn_top_down_levels`, adds the upsampled result of the next coarser level
(a feature pyramid without output convolutions). Each level gets a 2-D sine position encoding.
The image encoder then drops the `scalp` coarsest levels: SAM 2 never reads the stride-32 map.

Parameter names match the official checkpoints (`trunk.*`, `neck.convs.N.conv.*`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch.nn.functional as F
from torch import Tensor, nn

from masklet.config import HieraConfig, NeckConfig
from masklet.errors import InvalidInputError
from masklet.modeling.hiera import Hiera
from masklet.modeling.position import PositionEmbeddingSine

# interpolation modes that take an `align_corners` argument
_ALIGNABLE_MODES = {"linear", "bilinear", "bicubic", "trilinear"}


@dataclass
class BackboneOutput:
    """What the image encoder hands to the SAM heads and the memory attention.

    Attributes:
        vision_features: [B, C, H/16, W/16] the lowest-resolution kept level.
        vision_pos_enc: one [B, C, h, w] sine encoding per kept level, highest resolution first.
        backbone_fpn: one [B, C, h, w] feature map per kept level, highest resolution first.
    """

    vision_features: Tensor
    vision_pos_enc: list[Tensor]
    backbone_fpn: list[Tensor]


class _Lateral(nn.Module):
    """A 1x1 projection of one trunk level (a module of its own for the key `convs.N.conv`)."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size=1)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(x)


class FpnNeck(nn.Module):
    """Feature pyramid over the trunk stages: lateral 1x1 convs plus top-down sums."""

    def __init__(self, config: NeckConfig) -> None:
        super().__init__()
        self.config = config
        self.backbone_channel_list = tuple(config.backbone_channel_list)
        self.position_encoding = PositionEmbeddingSine(config.d_model)
        # convs[k] projects the k-th deepest level (the order of `backbone_channel_list`)
        self.convs = nn.ModuleList(
            _Lateral(channels, config.d_model) for channels in config.backbone_channel_list
        )
        self.top_down_levels = frozenset(config.fpn_top_down_levels)
        self.interp_mode = config.fpn_interp_model
        # "nearest" rejects align_corners; the smooth modes use the half-pixel convention
        self._align_corners = False if self.interp_mode in _ALIGNABLE_MODES else None

    def forward(self, xs: list[Tensor]) -> tuple[list[Tensor], list[Tensor]]:
        """Trunk maps, highest resolution first -> (features, position encodings), same order.

        Args:
            xs: one [B, C_i, H_i, W_i] map per level, level 0 = highest resolution.
        Returns:
            features and position encodings, each one [B, d_model, H_i, W_i] per level.
        """
        num_levels = len(self.convs)
        if len(xs) != num_levels:
            raise InvalidInputError(
                f"the neck expects {num_levels} trunk levels, got {len(xs)}; "
                "the trunk and neck configs do not match"
            )
        features: list[Tensor] = [xs[0]] * num_levels  # placeholders, all overwritten below
        pos: list[Tensor] = [xs[0]] * num_levels
        coarser: Tensor | None = None
        # Top-down: from the coarsest level to the finest, so each level can add the one above.
        for level in reversed(range(num_levels)):
            lateral = self.convs[num_levels - 1 - level](xs[level])  # [B, d_model, H_i, W_i]
            if coarser is not None and level in self.top_down_levels:
                upsampled = F.interpolate(
                    coarser,
                    size=lateral.shape[-2:],
                    mode=self.interp_mode,
                    align_corners=self._align_corners,
                )  # [B, d_model, H_{i+1}, W_{i+1}] -> [B, d_model, H_i, W_i]
                lateral = lateral + upsampled
            coarser = lateral
            features[level] = lateral
            pos[level] = self.position_encoding(lateral)
        return features, pos


class ImageEncoder(nn.Module):
    """Hiera trunk + FPN neck: [B, 3, S, S] image -> `BackboneOutput`."""

    def __init__(self, hiera: HieraConfig, neck: NeckConfig) -> None:
        super().__init__()
        self.trunk = Hiera(hiera)
        self.neck = FpnNeck(neck)
        self.scalp = neck.scalp
        if self.trunk.channel_list != self.neck.backbone_channel_list:
            raise InvalidInputError(
                f"trunk output channels {self.trunk.channel_list} do not match the neck's "
                f"backbone_channel_list {self.neck.backbone_channel_list}; build the config "
                "with ModelConfig.with_trunk(...) to keep them in step"
            )
        if not 0 <= self.scalp < len(self.neck.convs):
            raise InvalidInputError(
                f"NeckConfig.scalp must keep at least one level: expected 0 <= scalp < "
                f"{len(self.neck.convs)}, got {self.scalp}"
            )

    def forward(self, sample: Tensor) -> BackboneOutput:
        """[B, 3, S, S] normalised image -> features at strides 4, 8, 16 (with scalp=1)."""
        features, pos = self.neck(self.trunk(sample))
        if self.scalp > 0:
            # the coarsest levels feed the top-down path but are not used downstream
            features, pos = features[: -self.scalp], pos[: -self.scalp]
        return BackboneOutput(
            vision_features=features[-1], vision_pos_enc=pos, backbone_fpn=features
        )
