"""Position encodings: 2-D sine, random Fourier features, 1-D sine, and axial rotary (RoPE)."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn


class PositionEmbeddingSine(nn.Module):
    """DETR-style 2-D sine encoding of a feature map's grid, normalised to [0, 2*pi].

    The first half of the channels encodes y, the second half x.
    """

    def __init__(self, num_pos_feats: int, temperature: float = 10000.0) -> None:
        super().__init__()
        if num_pos_feats % 2:
            raise ValueError(f"num_pos_feats must be even, got {num_pos_feats}")
        self.num_pos_feats = num_pos_feats // 2
        self.temperature = temperature
        self.scale = 2 * math.pi
        self._cache: dict[tuple[int, int, str], torch.Tensor] = {}

    @torch.no_grad()
    def grid(self, height: int, width: int, device: torch.device) -> torch.Tensor:
        """[C, H, W] encoding of an H x W grid (cached per size and device)."""
        key = (height, width, str(device))
        if key not in self._cache:
            eps = 1e-6
            y = torch.arange(1, height + 1, dtype=torch.float32, device=device)
            x = torch.arange(1, width + 1, dtype=torch.float32, device=device)
            y = y / (y[-1] + eps) * self.scale
            x = x / (x[-1] + eps) * self.scale
            pos_y = _sine_cos_interleaved(y, self.num_pos_feats, self.temperature)  # [H, C/2]
            pos_x = _sine_cos_interleaved(x, self.num_pos_feats, self.temperature)  # [W, C/2]
            pe = torch.cat(
                (
                    pos_y[:, None, :].expand(height, width, -1),
                    pos_x[None, :, :].expand(height, width, -1),
                ),
                dim=-1,
            )  # [H, W, C]
            self._cache[key] = pe.permute(2, 0, 1).contiguous()  # [C, H, W]
        return self._cache[key]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """[B, *, H, W] feature map -> [B, C, H, W] encoding."""
        pe = self.grid(x.shape[-2], x.shape[-1], x.device)
        return pe[None].expand(x.shape[0], -1, -1, -1).to(x.dtype)


def _sine_cos_interleaved(pos: torch.Tensor, dim: int, temperature: float) -> torch.Tensor:
    """[N] positions -> [N, dim] with sin on even and cos on odd channels."""
    dim_t = torch.arange(dim, dtype=torch.float32, device=pos.device)
    dim_t = temperature ** (2 * (dim_t // 2) / dim)
    angles = pos[:, None] / dim_t  # [N, dim]
    return torch.stack((angles[:, 0::2].sin(), angles[:, 1::2].cos()), dim=2).flatten(1)


class PositionEmbeddingRandom(nn.Module):
    """Random Fourier features of normalised (x, y) coordinates (SAM's prompt encoding)."""

    def __init__(self, num_pos_feats: int = 64, scale: float | None = None) -> None:
        super().__init__()
        scale = 1.0 if scale is None or scale <= 0.0 else scale
        self.register_buffer(
            "positional_encoding_gaussian_matrix", scale * torch.randn((2, num_pos_feats))
        )
        self.positional_encoding_gaussian_matrix: torch.Tensor

    def _encode(self, coords: torch.Tensor) -> torch.Tensor:
        """[..., 2] coordinates in [0, 1] -> [..., 2 * num_pos_feats]."""
        coords = (2 * coords - 1) @ self.positional_encoding_gaussian_matrix
        coords = 2 * math.pi * coords
        return torch.cat([torch.sin(coords), torch.cos(coords)], dim=-1)

    def forward(self, size: tuple[int, int]) -> torch.Tensor:
        """Encoding of the centres of an H x W grid: [C, H, W]."""
        h, w = size
        device = self.positional_encoding_gaussian_matrix.device
        y = (torch.arange(h, device=device, dtype=torch.float32) + 0.5) / h
        x = (torch.arange(w, device=device, dtype=torch.float32) + 0.5) / w
        grid = torch.stack((x[None, :].expand(h, w), y[:, None].expand(h, w)), dim=-1)  # [H, W, 2]
        return self._encode(grid).permute(2, 0, 1)  # [C, H, W]

    def forward_with_coords(
        self, coords: torch.Tensor, image_size: tuple[int, int]
    ) -> torch.Tensor:
        """[B, N, 2] pixel (x, y) in an image of (H, W) -> [B, N, C]."""
        size_xy = coords.new_tensor([float(image_size[1]), float(image_size[0])])
        return self._encode((coords / size_xy).float())


def sine_1d(positions: torch.Tensor, dim: int, temperature: float = 10000.0) -> torch.Tensor:
    """1-D sine encoding (sin half, then cos half) of [N] positions -> [N, dim]."""
    half = dim // 2
    dim_t = torch.arange(half, dtype=torch.float32, device=positions.device)
    dim_t = temperature ** (2 * (dim_t // 2) / half)
    angles = positions.unsqueeze(-1) / dim_t
    return torch.cat([angles.sin(), angles.cos()], dim=-1)


def axial_rope(dim: int, width: int, height: int, theta: float = 10000.0) -> torch.Tensor:
    """Axial 2-D rotary angles for a width x height grid (row-major tokens).

    Returns [width * height, dim // 2] angles: the first dim // 4 rotate with x, the rest
    with y. Pairs of channels (2i, 2i+1) are rotated together by one angle.
    """
    freqs = 1.0 / (theta ** (torch.arange(0, dim, 4)[: dim // 4].float() / dim))  # [dim/4]
    t = torch.arange(width * height, dtype=torch.float32)
    t_x = t % width
    t_y = torch.div(t, width, rounding_mode="floor")
    return torch.cat([torch.outer(t_x, freqs), torch.outer(t_y, freqs)], dim=-1)


def rope_rotations(angles: Tensor) -> Tensor:
    """Unit complex numbers e^(i * angle) for [N, d/2] angles: what `apply_rope` multiplies
    by. Compute once per grid and reuse."""
    return torch.polar(torch.ones_like(angles), angles)


def apply_rope(x: Tensor, angles: Tensor) -> Tensor:
    """Rotate channel pairs of x [B, heads, N, d] by angles [N', d/2] (real angles, or the
    complex rotations of `rope_rotations`). N may be a multiple of N' (memories of several
    frames): the rotations are broadcast over the frames, never copied."""
    n = x.shape[-2]
    if n == 0:
        return x
    rot = angles if angles.is_complex() else rope_rotations(angles)
    rot = rot.to(x.device)
    frames = n // rot.shape[0]
    b, h, _, d = x.shape
    pairs = x.float().reshape(b, h, frames, rot.shape[0], d // 2, 2)  # [B, h, F, N', d/2, 2]
    rotated = torch.view_as_complex(pairs) * rot  # complex product, as the reference computes it
    return torch.view_as_real(rotated).reshape(b, h, n, d).type_as(x)


def rope_cos_sin(angles: Tensor) -> tuple[Tensor, Tensor]:
    """cos and sin tables [N, d/2] of [N, d/2] angles: what `apply_rope_real` rotates by."""
    return angles.cos(), angles.sin()


def apply_rope_real(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    """`apply_rope` in real arithmetic: x [B, heads, N, d] rotated by cos/sin [N', d/2].

    The same complex product written out, (a + ib)(c + is) = (ac - bs) + i(as + bc), for
    exporters that have no complex dtype (ONNX). N may be a multiple of N', as in `apply_rope`.
    """
    n = x.shape[-2]
    if n == 0:
        return x
    cos, sin = cos.to(x.device), sin.to(x.device)
    frames = n // cos.shape[0]
    b, h, _, d = x.shape
    pairs = x.float().reshape(b, h, frames, cos.shape[0], d // 2, 2)  # [B, h, F, N', d/2, 2]
    real, imag = pairs[..., 0], pairs[..., 1]  # [B, h, F, N', d/2] each
    rotated = torch.stack((real * cos - imag * sin, real * sin + imag * cos), dim=-1)
    return rotated.reshape(b, h, n, d).type_as(x)  # [B, h, F, N', d/2, 2] -> [B, h, N, d]
