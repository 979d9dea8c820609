"""Configs: the 8 official variants as deltas, round trips through plain dicts."""

from __future__ import annotations

import dataclasses
import json

import pytest

from masklet.config import ModelConfig
from masklet.errors import InvalidInputError


def test_named_variants_differ_where_the_official_configs_differ() -> None:
    tiny, large = ModelConfig.named("sam2.1_hiera_tiny"), ModelConfig.named("sam2.1_hiera_large")
    assert (tiny.hiera.embed_dim, large.hiera.embed_dim) == (96, 144)
    assert large.hiera.window_spec == (8, 4, 16, 8)
    assert large.neck.backbone_channel_list == (1152, 576, 288, 144)
    v20 = ModelConfig.named("sam2_hiera_tiny")
    assert not v20.no_obj_embed_spatial and not v20.add_tpos_enc_to_obj_ptrs
    assert ModelConfig.named("sam2.1-hiera-b+") == ModelConfig.named("sam2.1_hiera_base_plus")
    with pytest.raises(InvalidInputError, match="sam2.1_hiera_tiny"):
        ModelConfig.named("sam3")


@pytest.mark.parametrize("name", ModelConfig.names())
def test_dict_round_trip_through_json(name: str) -> None:
    cfg = dataclasses.replace(ModelConfig.named(name), image_size=256)
    again = ModelConfig.from_dict(json.loads(json.dumps(cfg.to_dict())))
    assert again == cfg


def test_from_dict_rejects_unknown_fields() -> None:
    data = ModelConfig().to_dict()
    data["hiera"]["nonsense"] = 1  # type: ignore[index]
    with pytest.raises(TypeError):
        ModelConfig.from_dict(data)


def test_with_trunk_keeps_the_neck_in_step() -> None:
    cfg = ModelConfig().with_trunk(embed_dim=32)
    assert cfg.neck.backbone_channel_list == (256, 128, 64, 32)
