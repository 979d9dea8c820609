"""Memory encoder: fuses a frame's features with its predicted mask into a memory.

The mask (image resolution) is downsampled to the feature map by strided convolutions, added
to the projected features, mixed by a few ConvNeXt blocks and projected to the memory width.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from masklet.config import MemoryEncoderConfig
from masklet.modeling.common import LayerNorm2d
from masklet.modeling.position import PositionEmbeddingSine

CONVNEXT_MLP_RATIO = 4


class MaskDownSampler(nn.Module):
    """Strided conv + layer norm + GELU, repeated until the mask reaches the feature stride.

    Each step multiplies the channels by stride**2 so no information is squeezed out, then a
    1x1 convolution maps to the feature width.
    """

    def __init__(
        self, embed_dim: int, kernel_size: int, stride: int, padding: int, total_stride: int
    ) -> None:
        super().__init__()
        num_steps = round(math.log(total_stride, stride))
        if stride**num_steps != total_stride:
            raise ValueError(
                f"total_stride {total_stride} must be a power of the mask stride {stride}"
            )
        layers: list[nn.Module] = []
        channels = 1
        for _ in range(num_steps):
            out = channels * stride**2
            layers += [
                nn.Conv2d(channels, out, kernel_size, stride=stride, padding=padding),
                LayerNorm2d(out),
                nn.GELU(),
            ]
            channels = out
        layers.append(nn.Conv2d(channels, embed_dim, kernel_size=1))
        self.encoder = nn.Sequential(*layers)

    def forward(self, masks: Tensor) -> Tensor:
        """[B, 1, sH, sW] -> [B, embed_dim, H, W] with s = total_stride."""
        return self.encoder(masks)


class CXBlock(nn.Module):
    """ConvNeXt block: depthwise conv, layer norm, pointwise MLP, layer scale, residual."""

    def __init__(
        self, dim: int, kernel_size: int, padding: int, layer_scale_init_value: float
    ) -> None:
        super().__init__()
        self.dwconv = nn.Conv2d(dim, dim, kernel_size, padding=padding, groups=dim)
        self.norm = LayerNorm2d(dim)
        # the pointwise convolutions are linear layers on channels-last tensors
        self.pwconv1 = nn.Linear(dim, CONVNEXT_MLP_RATIO * dim)
        self.act = nn.GELU()
        self.pwconv2 = nn.Linear(CONVNEXT_MLP_RATIO * dim, dim)
        self.gamma = (
            nn.Parameter(torch.full((dim,), layer_scale_init_value))
            if layer_scale_init_value > 0
            else None
        )

    def forward(self, x: Tensor) -> Tensor:
        """[B, C, H, W] -> [B, C, H, W]"""
        y = self.norm(self.dwconv(x)).permute(0, 2, 3, 1)  # [B, C, H, W] -> [B, H, W, C]
        y = self.pwconv2(self.act(self.pwconv1(y)))
        if self.gamma is not None:
            y = self.gamma * y
        return x + y.permute(0, 3, 1, 2)  # [B, H, W, C] -> [B, C, H, W]


class Fuser(nn.Module):
    """A stack of ConvNeXt blocks (kept as a module for the checkpoint's `fuser.layers.*`)."""

    def __init__(self, config: MemoryEncoderConfig, dim: int) -> None:
        super().__init__()
        self.layers = nn.ModuleList(
            CXBlock(
                dim, config.fuser_kernel_size, config.fuser_padding, config.layer_scale_init_value
            )
            for _ in range(config.fuser_num_layers)
        )

    def forward(self, x: Tensor) -> Tensor:
        for layer in self.layers:
            x = layer(x)
        return x


class MemoryEncoder(nn.Module):
    """Encodes (features, mask) of one frame into a memory and its positional encoding."""

    def __init__(self, config: MemoryEncoderConfig, in_dim: int, total_stride: int) -> None:
        """
        Args:
            config: memory encoder settings (out_dim is the memory width).
            in_dim: width of the frame features (the model's hidden dim).
            total_stride: image pixels per feature cell (the backbone stride).
        """
        super().__init__()
        self.mask_downsampler = MaskDownSampler(
            in_dim, config.mask_kernel_size, config.mask_stride, config.mask_padding, total_stride
        )
        self.pix_feat_proj = nn.Conv2d(in_dim, in_dim, kernel_size=1)
        self.fuser = Fuser(config, in_dim)
        self.position_encoding = PositionEmbeddingSine(config.out_dim)
        self.out_proj: nn.Module = (
            nn.Conv2d(in_dim, config.out_dim, kernel_size=1)
            if config.out_dim != in_dim
            else nn.Identity()
        )

    def forward(
        self, pix_feat: Tensor, masks: Tensor, skip_mask_sigmoid: bool = False
    ) -> tuple[Tensor, Tensor]:
        """Encode one memory per batch element.

        Args:
            pix_feat: [B, C, H, W] frame features.
            masks: [B, 1, sH, sW] mask logits, or probabilities if `skip_mask_sigmoid`
                (the model core applies its own scaled sigmoid and passes True).
            skip_mask_sigmoid: do not squash `masks` through a sigmoid.

        Returns:
            memory features [B, out_dim, H, W] and their positional encoding, same shape.
        """
        if not skip_mask_sigmoid:
            # probabilities, so predicted masks look like the binary masks seen in training
            masks = torch.sigmoid(masks)
        mask_feat = self.mask_downsampler(masks)
        x = self.pix_feat_proj(pix_feat.to(mask_feat.device)) + mask_feat
        x = self.out_proj(self.fuser(x))
        return x, self.position_encoding(x)
