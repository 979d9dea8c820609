"""Behaviour of the Hiera trunk and the FPN neck: shapes, channels, windows, padding, errors."""

from __future__ import annotations

import dataclasses

import pytest
import torch
import torch.nn.functional as F

from masklet.config import HieraConfig, ModelConfig, NeckConfig
from masklet.errors import InvalidInputError
from masklet.modeling.hiera import Hiera, HieraBlock, window_partition, window_unpartition
from masklet.modeling.neck import FpnNeck, ImageEncoder

# a narrow tiny trunk: same stages, windows and global blocks as sam2.1_hiera_tiny
TINY = ModelConfig.named("sam2.1_hiera_tiny").with_trunk(embed_dim=16)


def _encoder(cfg: ModelConfig = TINY, seed: int = 0) -> ImageEncoder:
    torch.manual_seed(seed)
    return ImageEncoder(cfg.hiera, cfg.neck).eval()


@pytest.mark.parametrize("size", [256, 320])
def test_output_shapes_follow_the_image_size(size: int) -> None:
    encoder = _encoder()
    image = torch.randn(2, 3, size, size)
    with torch.inference_mode():
        trunk_maps = encoder.trunk(image)
        out = encoder(image)

    # trunk: strides 4, 8, 16, 32 with channels 16, 32, 64, 128 (highest resolution first)
    assert [tuple(t.shape) for t in trunk_maps] == [
        (2, 16 * 2**i, size // (4 * 2**i), size // (4 * 2**i)) for i in range(4)
    ]
    # neck + scalp=1: three levels of d_model channels at strides 4, 8, 16
    d = TINY.neck.d_model
    expected = [(2, d, size // s, size // s) for s in (4, 8, 16)]
    assert [tuple(t.shape) for t in out.backbone_fpn] == expected
    assert [tuple(t.shape) for t in out.vision_pos_enc] == expected
    assert out.vision_features is out.backbone_fpn[-1]
    assert all(torch.isfinite(t).all() for t in out.backbone_fpn)


def test_channel_list_matches_config_for_every_variant() -> None:
    for name in ModelConfig.names():
        cfg = ModelConfig.named(name)
        # width does not change the channel multipliers; shrink it to keep the test fast
        small = cfg.with_trunk(embed_dim=8 * cfg.hiera.num_heads, stages=(1, 1, 1, 1))
        trunk = Hiera(small.hiera)
        assert trunk.channel_list == small.hiera.channel_list
        assert trunk.channel_list == tuple(8 * cfg.hiera.num_heads * 2**i for i in (3, 2, 1, 0))
    assert Hiera(ModelConfig.named("sam2.1_hiera_tiny").hiera).channel_list == (768, 384, 192, 96)


def test_stage_transitions_change_dims_heads_and_windows() -> None:
    trunk = Hiera(ModelConfig.named("sam2.1_hiera_base_plus").hiera)  # stages (2, 3, 16, 3)
    blocks = list(trunk.blocks)
    # block 2 opens stage 2: pooled queries, widened to 224, 4 heads, previous window (8)
    assert blocks[2].q_stride == (2, 2) and blocks[2].window == 8
    assert blocks[2].attn.num_heads == 4 and blocks[2].proj is not None
    assert blocks[2].proj.out_features == 224
    assert blocks[3].q_stride is None and blocks[3].window == 4 and blocks[3].proj is None
    # block 5 opens stage 3 (window 4 -> 14), block 21 opens stage 4 (window 14 -> 7)
    assert blocks[5].window == 4 and blocks[6].window == 14
    assert blocks[21].window == 14 and blocks[22].window == 7
    assert blocks[21].attn.num_heads == 16
    # global attention blocks
    assert [i for i, b in enumerate(blocks) if b.window == 0] == [12, 16, 20]
    assert trunk.stage_ends == (1, 4, 20, 23)


def test_window_partition_pads_with_zeros_and_round_trips() -> None:
    x = torch.randn(2, 10, 13, 5)
    windows, grid = window_partition(x, 4)
    assert grid == (3, 4)
    assert windows.shape == (2 * 3 * 4, 4, 4, 5)
    # the first window is the top-left tile, unchanged
    torch.testing.assert_close(windows[0], x[0, :4, :4])
    # the last window of the first image covers rows 8..11 and columns 12..15: mostly padding
    last = windows[11]
    torch.testing.assert_close(last[:2, :1], x[0, 8:10, 12:13])
    assert (last[2:] == 0).all() and (last[:, 1:] == 0).all()
    torch.testing.assert_close(window_unpartition(windows, grid, (10, 13)), x)


def test_windowed_attention_stays_inside_its_window_on_a_padded_map() -> None:
    torch.manual_seed(0)
    block = HieraBlock(dim=8, dim_out=8, num_heads=2, window=4).eval()
    x = torch.randn(1, 10, 10, 8)  # 10 is not a multiple of 4: the map is padded to 12
    x_changed = x.clone()
    # a token in the bottom-right, partly padded window (random, so the layer norm keeps it)
    x_changed[0, 9, 9] = torch.randn(8)
    with torch.inference_mode():
        changed = (block(x) - block(x_changed)).abs().amax(-1) > 0  # [1, 10, 10]
    expected = torch.zeros(1, 10, 10, dtype=torch.bool)
    expected[0, 8:, 8:] = True
    assert torch.equal(changed, expected)

    global_block = HieraBlock(dim=8, dim_out=8, num_heads=2, window=0).eval()
    with torch.inference_mode():
        assert ((global_block(x) - global_block(x_changed)).abs().amax(-1) > 0).all()


def test_windowed_attention_on_padded_map_equals_attention_per_zero_padded_window() -> None:
    torch.manual_seed(0)
    block = HieraBlock(dim=8, dim_out=8, num_heads=2, window=4).eval()
    x = torch.randn(1, 6, 6, 8)
    with torch.inference_mode():
        out = block(x)
        # the bottom-right window by hand: tokens 4..5 plus zero padding up to 8, as keys too
        tile = F.pad(block.norm1(x)[:, 4:, 4:], (0, 0, 0, 2, 0, 2))  # [1, 4, 4, 8]
        attn = block.attn(tile)[:, :2, :2]
        y = x[:, 4:, 4:] + attn
        y = y + block.mlp(block.norm2(y))
    torch.testing.assert_close(out[:, 4:, 4:], y)


def test_pooling_block_halves_a_padded_map() -> None:
    torch.manual_seed(0)
    block = HieraBlock(dim=8, dim_out=16, num_heads=2, window=4, q_stride=(2, 2)).eval()
    x = torch.randn(2, 10, 10, 8)  # windows of 4 pad to 12; pooled windows of 2 tile 6 -> 5
    with torch.inference_mode():
        out = block(x)
    assert out.shape == (2, 5, 5, 16)
    assert torch.isfinite(out).all()


def test_window_position_embedding_tiles_the_window_pattern() -> None:
    trunk = Hiera(TINY.hiera)
    with torch.no_grad():
        trunk.pos_embed.zero_()  # leave only the tiled window pattern
        trunk.pos_embed_window.normal_()
    pos = trunk.window_pos_embed(20, 12)  # not a multiple of the window (8): cropped tiles
    assert pos.shape == (1, 20, 12, 16)
    win = trunk.pos_embed_window[0].permute(1, 2, 0)  # [8, 8, C]
    torch.testing.assert_close(pos[0, :8, :8], win)
    torch.testing.assert_close(pos[0, 16:20, 8:12], win[:4, :4])


def test_neck_adds_top_down_features_only_on_listed_levels() -> None:
    torch.manual_seed(0)
    neck = FpnNeck(NeckConfig(d_model=8, backbone_channel_list=(32, 16, 8, 4))).eval()
    xs = [torch.randn(1, c, s, s) for c, s in ((4, 16), (8, 8), (16, 4), (32, 2))]
    with torch.inference_mode():
        features, pos = neck(xs)
        lateral = [neck.convs[3 - i](xs[i]) for i in range(4)]  # convs run deepest first
    up = lambda t: F.interpolate(t, scale_factor=2.0, mode="nearest")  # noqa: E731
    torch.testing.assert_close(features[3], lateral[3])
    torch.testing.assert_close(features[2], lateral[2] + up(lateral[3]))
    # levels 0 and 1 are not in fpn_top_down_levels (2, 3): lateral features only
    torch.testing.assert_close(features[1], lateral[1])
    torch.testing.assert_close(features[0], lateral[0])
    assert [tuple(p.shape) for p in pos] == [(1, 8, s, s) for s in (16, 8, 4, 2)]
    # the sine encoding depends on the grid only, not on the features
    torch.testing.assert_close(pos[0], neck.position_encoding(torch.zeros(1, 1, 16, 16)))


def test_scalp_zero_keeps_every_level() -> None:
    cfg = dataclasses.replace(TINY, neck=dataclasses.replace(TINY.neck, scalp=0))
    with torch.inference_mode():
        out = _encoder(cfg)(torch.randn(1, 3, 128, 128))
    assert [t.shape[-1] for t in out.backbone_fpn] == [32, 16, 8, 4]
    assert out.vision_features.shape == (1, 256, 4, 4)


@pytest.mark.parametrize(
    "shape, message",
    [
        ((1, 3, 250, 256), "multiples of 32"),
        ((1, 1, 256, 256), "[B, 3, H, W]"),
        ((3, 256, 256), "[B, 3, H, W]"),
    ],
)
def test_bad_images_raise_typed_errors(shape: tuple[int, ...], message: str) -> None:
    encoder = _encoder()
    with pytest.raises(InvalidInputError, match=message.replace("[", r"\[").replace("]", r"\]")):
        encoder(torch.randn(shape))


def test_inconsistent_configs_raise_typed_errors() -> None:
    with pytest.raises(InvalidInputError, match="backbone_channel_list"):
        ImageEncoder(HieraConfig(embed_dim=16), NeckConfig())
    with pytest.raises(InvalidInputError, match="window_spec"):
        Hiera(HieraConfig(window_spec=(8, 4, 14)))
    with pytest.raises(InvalidInputError, match="q_pool"):
        Hiera(HieraConfig(q_pool=4))
