"""Hiera trunk (Ryali et al. 2023, "hieradet" in SAM 2): a four-stage hierarchical ViT.

Reads top-down: windowing helpers -> attention with query pooling -> block -> trunk.

Tokens flow through the trunk channels-last, `[B, H, W, C]`. Every stage after the first opens
with a block that max-pools its queries by `q_stride`, halving the map and (with `dim_mul`,
`head_mul`) doubling channels and heads. Most blocks attend inside square windows; the blocks in
`global_att_blocks` attend over the whole map. Positions enter once, after the patch embedding,
as a "windowed" embedding (Bolya et al. 2023): a coarse background grid interpolated to the map
plus one window-sized pattern tiled over it.

Parameter names match the official checkpoints (`patch_embed.proj`, `pos_embed`,
`pos_embed_window`, `blocks.N.{norm1,attn.qkv,attn.proj,norm2,mlp.layers.K,proj}`).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from masklet.config import HieraConfig
from masklet.errors import InvalidInputError
from masklet.modeling.common import MLP, DropPath

# Patch embedding: a 7x7 convolution with stride 4 (overlapping patches, "same" padding).
PATCH_KERNEL = 7
PATCH_STRIDE = 4
PATCH_PADDING = 3
IMAGE_CHANNELS = 3
MLP_RATIO = 4.0
NORM_EPS = 1e-6


# --------------------------------------------------------------------------- windowing helpers


def window_partition(x: Tensor, window: int) -> tuple[Tensor, tuple[int, int]]:
    """Cut a map into non-overlapping `window` x `window` tiles, zero-padding the bottom/right.

    Args:
        x: [B, H, W, C] tokens.
        window: side of a window.
    Returns:
        [B * nh * nw, window, window, C] windows and the window grid (nh, nw).
    """
    b, h, w, c = x.shape
    nh, nw = math.ceil(h / window), math.ceil(w / window)
    pad_h, pad_w = nh * window - h, nw * window - w
    if pad_h or pad_w:
        # Padded tokens are zeros and stay visible as keys: the reference does not mask them,
        # and the checkpoints were trained that way.
        x = F.pad(x, (0, 0, 0, pad_w, 0, pad_h))
    x = x.view(b, nh, window, nw, window, c)  # [B, H, W, C] -> [B, nh, wy, nw, wx, C]
    x = x.permute(0, 1, 3, 2, 4, 5)  # -> [B, nh, nw, wy, wx, C]
    return x.reshape(b * nh * nw, window, window, c), (nh, nw)


def window_unpartition(windows: Tensor, grid: tuple[int, int], size: tuple[int, int]) -> Tensor:
    """Stitch windows back into a map and crop the padding away.

    Args:
        windows: [B * nh * nw, w, w, C] windows (w may be smaller than at partition time when
            the queries were pooled inside each window).
        grid: the window grid (nh, nw) returned by `window_partition`.
        size: (H, W) of the map to keep (top-left crop).
    Returns:
        [B, H, W, C] tokens.
    """
    nh, nw = grid
    _, wy, wx, c = windows.shape
    b = windows.shape[0] // (nh * nw)
    x = windows.view(b, nh, nw, wy, wx, c).permute(0, 1, 3, 2, 4, 5)  # [B, nh, wy, nw, wx, C]
    x = x.reshape(b, nh * wy, nw * wx, c)  # -> [B, Hp, Wp, C]
    h, w = size
    if x.shape[1] != h or x.shape[2] != w:
        x = x[:, :h, :w, :]
    return x


def max_pool_bhwc(x: Tensor, stride: tuple[int, int]) -> Tensor:
    """Max-pool a channels-last map with kernel == stride (floor): [B, H, W, C] -> [B, H', W', C]."""
    x = F.max_pool2d(x.permute(0, 3, 1, 2), kernel_size=stride, stride=stride)  # [B, C, H', W']
    return x.permute(0, 2, 3, 1)  # -> [B, H', W', C]


# --------------------------------------------------------------------------- blocks


class PooledAttention(nn.Module):
    """Multi-head self-attention whose queries may be max-pooled (keys and values are not).

    Pooling the queries is how a stage transition halves the map: each output token attends
    from a pooled position to every token of the full-resolution input.
    """

    def __init__(
        self, dim: int, dim_out: int, num_heads: int, q_stride: tuple[int, int] | None
    ) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.q_stride = q_stride
        self.qkv = nn.Linear(dim, dim_out * 3)
        self.proj = nn.Linear(dim_out, dim_out)

    def forward(self, x: Tensor) -> Tensor:
        """[B, H, W, dim] -> [B, H', W', dim_out] (H' = H // q_stride when pooling)."""
        b, h, w, _ = x.shape
        heads = self.num_heads
        qkv = self.qkv(x).reshape(b, h * w, 3, heads, -1)  # [B, HW, 3, heads, d]
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # 3 x [B, heads, HW, d]
        if self.q_stride is not None:
            d = q.shape[-1]
            q = q.transpose(1, 2).reshape(b, h, w, heads * d)  # -> [B, H, W, heads * d]
            q = max_pool_bhwc(q, self.q_stride)  # -> [B, H', W', heads * d]
            h, w = q.shape[1], q.shape[2]
            q = q.reshape(b, h * w, heads, d).transpose(1, 2)  # -> [B, heads, H'W', d]
        out = F.scaled_dot_product_attention(q, k, v)  # [B, heads, H'W', d]
        out = out.transpose(1, 2).reshape(b, h, w, -1)  # -> [B, H', W', dim_out]
        return self.proj(out)


class HieraBlock(nn.Module):
    """Pre-norm transformer block: (windowed or global) attention, then an MLP.

    A block that opens a stage changes the width (`dim` -> `dim_out`) and, with `q_stride`,
    halves the map; its shortcut then goes through a linear projection and the same pooling.
    """

    def __init__(
        self,
        dim: int,
        dim_out: int,
        num_heads: int,
        window: int,
        q_stride: tuple[int, int] | None = None,
        drop_path: float = 0.0,
    ) -> None:
        super().__init__()
        self.window = window  # 0 means global attention
        self.q_stride = q_stride
        self.norm1 = nn.LayerNorm(dim, eps=NORM_EPS)
        self.attn = PooledAttention(dim, dim_out, num_heads, q_stride)
        self.drop_path = DropPath(drop_path) if drop_path > 0.0 else nn.Identity()
        self.norm2 = nn.LayerNorm(dim_out, eps=NORM_EPS)
        self.mlp = MLP(dim_out, int(dim_out * MLP_RATIO), dim_out, num_layers=2, activation=nn.GELU)
        # Only blocks that change the width own a shortcut projection (checkpoint key `proj`).
        self.proj = nn.Linear(dim, dim_out) if dim != dim_out else None

    def forward(self, x: Tensor) -> Tensor:
        """[B, H, W, dim] -> [B, H', W', dim_out]"""
        shortcut = x
        x = self.norm1(x)
        if self.proj is not None:
            # The widened shortcut is taken from the normalised tokens, as in the checkpoints.
            shortcut = self.proj(x)
        if self.q_stride is not None:
            shortcut = max_pool_bhwc(shortcut, self.q_stride)

        if self.window > 0:
            windows, grid = window_partition(x, self.window)  # [B * nW, w, w, dim]
            windows = self.attn(windows)  # [B * nW, w', w', dim_out]
            # Pooled windows tile the pooled map; crop to the shortcut's (pooled) size.
            x = window_unpartition(windows, grid, (shortcut.shape[1], shortcut.shape[2]))
        else:
            x = self.attn(x)

        x = shortcut + self.drop_path(x)
        return x + self.drop_path(self.mlp(self.norm2(x)))


class PatchEmbed(nn.Module):
    """Overlapping patch embedding: [B, 3, H, W] -> [B, H/4, W/4, C]."""

    def __init__(self, embed_dim: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(
            IMAGE_CHANNELS,
            embed_dim,
            kernel_size=PATCH_KERNEL,
            stride=PATCH_STRIDE,
            padding=PATCH_PADDING,
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.proj(x).permute(0, 2, 3, 1)  # [B, C, h, w] -> [B, h, w, C]


# --------------------------------------------------------------------------- trunk


class Hiera(nn.Module):
    """The Hiera trunk. `forward` returns one feature map per stage, highest resolution first."""

    def __init__(self, config: HieraConfig) -> None:
        super().__init__()
        _check_config(config)
        self.config = config
        num_stages = len(config.stages)
        depth = sum(config.stages)
        stage_starts = [sum(config.stages[:s]) for s in range(num_stages)]
        # indices of the last block of every stage: their outputs are the feature maps
        self.stage_ends = tuple(
            start + n - 1 for start, n in zip(stage_starts, config.stages, strict=True)
        )
        pooled_starts = set(stage_starts[1 : 1 + config.q_pool])
        # query pooling halves the map at each of the first `q_pool` transitions
        self.total_stride = PATCH_STRIDE * config.q_stride[0] ** config.q_pool

        self.patch_embed = PatchEmbed(config.embed_dim)
        bkg_h, bkg_w = config.window_pos_embed_bkg_spatial_size
        first_window = config.window_spec[0]
        self.pos_embed = nn.Parameter(torch.zeros(1, config.embed_dim, bkg_h, bkg_w))
        self.pos_embed_window = nn.Parameter(
            torch.zeros(1, config.embed_dim, first_window, first_window)
        )

        # stochastic depth grows linearly with depth
        # (on the CPU even inside `torch.device("meta")`, where the backends build models)
        drop_rates = torch.linspace(0, config.drop_path_rate, depth, device="cpu").tolist()
        dim, heads = config.embed_dim, config.num_heads
        stage_dims: list[int] = []
        self.blocks = nn.ModuleList()
        for stage, num_blocks in enumerate(config.stages):
            for j in range(num_blocks):
                i = stage_starts[stage] + j
                dim_out = dim
                # The first block of a stage still sees the previous stage's map, so it uses the
                # previous stage's window size (its pooled queries make the current one).
                window = config.window_spec[stage - 1 if (j == 0 and stage > 0) else stage]
                if j == 0 and stage > 0:
                    dim_out = int(dim * config.dim_mul)
                    heads = int(heads * config.head_mul)
                self.blocks.append(
                    HieraBlock(
                        dim=dim,
                        dim_out=dim_out,
                        num_heads=heads,
                        window=0 if i in config.global_att_blocks else window,
                        q_stride=config.q_stride if i in pooled_starts else None,
                        drop_path=drop_rates[i],
                    )
                )
                dim = dim_out
            stage_dims.append(dim)
        self.channel_list: tuple[int, ...] = tuple(reversed(stage_dims))

    def window_pos_embed(self, height: int, width: int) -> Tensor:
        """[1, H, W, C] positional embedding for an H x W patch grid.

        The background is resized bicubically to the grid; the window pattern is repeated so
        every `window_spec[0]` tile of the first stage sees the same offsets.
        """
        bkg = F.interpolate(self.pos_embed, size=(height, width), mode="bicubic")  # [1, C, H, W]
        win = self.pos_embed_window  # [1, C, w, w]
        reps_h = math.ceil(height / win.shape[-2])
        reps_w = math.ceil(width / win.shape[-1])
        tiled = win.tile(1, 1, reps_h, reps_w)[..., :height, :width]  # [1, C, H, W]
        return (bkg + tiled).permute(0, 2, 3, 1)  # -> [1, H, W, C]

    def forward(self, x: Tensor) -> list[Tensor]:
        """[B, 3, H, W] image -> one [B, C_i, H_i, W_i] map per stage, highest resolution first.

        H and W must be multiples of `total_stride` (32 for the official variants).
        """
        _check_image(x, self.total_stride)
        x = self.patch_embed(x)  # [B, H/4, W/4, C]
        x = x + self.window_pos_embed(x.shape[1], x.shape[2])
        outputs: list[Tensor] = []
        for i, block in enumerate(self.blocks):
            x = block(x)
            if i in self.stage_ends:
                outputs.append(x.permute(0, 3, 1, 2))  # [B, H_i, W_i, C_i] -> [B, C_i, H_i, W_i]
        return outputs


def _check_config(config: HieraConfig) -> None:
    num_stages = len(config.stages)
    if len(config.window_spec) != num_stages:
        raise InvalidInputError(
            f"HieraConfig.window_spec needs one window size per stage ({num_stages}), "
            f"got {config.window_spec}; give as many entries as `stages` has"
        )
    if not 0 <= config.q_pool <= num_stages - 1:
        raise InvalidInputError(
            f"HieraConfig.q_pool must be between 0 and the number of stage transitions "
            f"({num_stages - 1}), got {config.q_pool}"
        )
    if config.q_stride[0] != config.q_stride[1]:
        raise InvalidInputError(
            f"HieraConfig.q_stride must be square (windows are square), got {config.q_stride}"
        )


def _check_image(x: Tensor, stride: int) -> None:
    if x.ndim != 4 or x.shape[1] != IMAGE_CHANNELS:
        raise InvalidInputError(
            f"expected an image batch of shape [B, 3, H, W], got {tuple(x.shape)}; "
            "add a batch dimension or convert the image to RGB"
        )
    h, w = x.shape[-2:]
    if h % stride or w % stride:
        raise InvalidInputError(
            f"image height and width must be multiples of {stride}, got {h}x{w}; "
            f"resize the image (e.g. to the model's image_size) first"
        )
