"""What a state dict is: which official variant it matches, and why it does not fit a model."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from torch import Tensor, nn

from masklet.config import ModelConfig
from masklet.errors import CheckpointError

_MAX_KEYS_SHOWN = 10


_TRUNK = "image_encoder.trunk."
_V21_ONLY_KEYS = ("no_obj_embed_spatial", "obj_ptr_tpos_proj.weight", "obj_ptr_tpos_proj.bias")


def detect_config(state_dict: Mapping[str, Tensor]) -> ModelConfig:
    """Which of the 8 official variants `state_dict` (official layout) belongs to.

    Reads the trunk width (patch embedding), the blocks per stage (a block with its own `proj`
    opens each new stage, where the width doubles), the background size of the positional
    embedding, and 2.0 vs 2.1 (only 2.1 has the spatial no-object embedding and the temporal
    projection of object pointers). Heads and attention windows follow from the variant. No
    tensor encodes the image size, so the official 1024 is assumed.
    """
    patch = state_dict.get(_TRUNK + "patch_embed.proj.weight")
    pos_embed = state_dict.get(_TRUNK + "pos_embed")
    if patch is None or pos_embed is None:
        raise CheckpointError(
            "not a SAM 2 checkpoint: no Hiera trunk weights (image_encoder.trunk.patch_embed / "
            "pos_embed) found; pass a SAM 2 .pt or transformers Sam2 .safetensors file"
        )
    block_prefix = _TRUNK + "blocks."
    blocks = sorted(
        {
            int(k[len(block_prefix) :].split(".")[0])
            for k in state_dict
            if k.startswith(block_prefix)
        }
    )
    # the first block of every stage after the first projects to the wider dimension
    starts = [0] + [i for i in blocks if f"{_TRUNK}blocks.{i}.proj.weight" in state_dict]
    ends = starts[1:] + [len(blocks)]
    stages = tuple(end - start for start, end in zip(starts, ends, strict=True))
    background = (int(pos_embed.shape[-2]), int(pos_embed.shape[-1]))
    v21 = all(key in state_dict for key in _V21_ONLY_KEYS)
    width = int(patch.shape[0])
    for name in ModelConfig.names():
        cfg = ModelConfig.named(name)
        h = cfg.hiera
        official = (h.embed_dim, h.stages, h.window_pos_embed_bkg_spatial_size, _is_v21(cfg))
        if official == (width, stages, background, v21):
            return cfg
    raise CheckpointError(
        f"the checkpoint does not match any official SAM 2 variant (trunk width {width}, "
        f"blocks per stage {stages}, positional background {background}, "
        f"{'2.1' if v21 else '2.0'} heads); pass its ModelConfig explicitly"
    )


def _is_v21(cfg: ModelConfig) -> bool:
    return cfg.no_obj_embed_spatial and cfg.proj_tpos_enc_in_obj_ptrs


# ---------------------------------------------------------------------------------------------
# loading


def check_compatible(
    model: nn.Module, state_dict: Mapping[str, Tensor], config: ModelConfig, path: Path
) -> None:
    """Raise a CheckpointError naming the differing keys before `load_state_dict` would."""
    expected = model.state_dict()
    missing = [k for k in expected if k not in state_dict]
    unexpected = [k for k in state_dict if k not in expected]
    mismatched = [
        f"{k} {tuple(state_dict[k].shape)} vs {tuple(v.shape)}"
        for k, v in expected.items()
        if k in state_dict and state_dict[k].shape != v.shape
    ]
    if not (missing or unexpected or mismatched):
        return
    parts = []
    for label, keys in (
        ("missing", missing),
        ("unexpected", unexpected),
        ("with the wrong shape (checkpoint vs model)", mismatched),
    ):
        if keys:
            shown = ", ".join(keys[:_MAX_KEYS_SHOWN]) + (
                ", ..." if len(keys) > _MAX_KEYS_SHOWN else ""
            )
            parts.append(f"{len(keys)} {label} keys: {shown}")
    raise CheckpointError(
        f"checkpoint {path} does not fit model {config.name!r}: {'; '.join(parts)}; "
        f"{_likely_cause(missing, unexpected, mismatched, len(expected), config)}"
    )


def _likely_cause(
    missing: list[str], unexpected: list[str], mismatched: list[str], total: int, cfg: ModelConfig
) -> str:
    if len(missing) > total // 2:
        return "this is probably not a SAM 2 checkpoint"
    if missing and set(missing) <= set(_V21_ONLY_KEYS) and not unexpected:
        return "this looks like a SAM 2.0 checkpoint loaded as 2.1: use the matching sam2_* variant"
    if unexpected and set(unexpected) <= set(_V21_ONLY_KEYS) and not missing:
        return (
            "this looks like a SAM 2.1 checkpoint loaded as 2.0: use the matching sam2.1_* variant"
        )
    video_parts = ("memory_", "mask_downsample", "obj_ptr", "maskmem", "no_mem_pos", "no_obj")
    if missing and all(k.startswith(video_parts) for k in missing) and not unexpected:
        return (
            "only part of the video weights are there (an image-only file, with none of them, "
            "would load for images): the file was probably cut short or saved from another model"
        )
    if mismatched or any(_TRUNK in k for k in missing + unexpected):
        return f"the checkpoint is probably another model size than {cfg.name!r}: omit the variant to detect it, or pass the right one"
    return "the checkpoint was probably saved from a different model; pass the matching variant"
