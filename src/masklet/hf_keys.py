"""Map Hugging Face transformers SAM 2 weights (`Sam2Model`, `Sam2VideoModel`) to official keys.

transformers renames almost every module of the official checkpoints (`image_encoder.trunk` ->
`vision_encoder.backbone`, `norm1` -> `layer_norm1`, `out_proj` -> `o_proj`, MLP `layers.i` ->
`proj_in` / `layers.i-1` / `proj_out`, ...), stores the four point embeddings as one `[4, C]`
table, and keeps two copies of the random-Fourier positional matrix. Every other tensor is
identical: attention projections are fused (`qkv`) or separate in the same places in both.

`hf_to_official` undoes all of that in one pure function. It refuses keys it does not know, so a
future transformers layout change fails loudly instead of loading half a model.
"""

from __future__ import annotations

import json
import re
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from masklet.errors import CheckpointError

# Top-level module names that exist only in the transformers layout.
HF_TOP_LEVEL = frozenset(
    {
        "vision_encoder",
        "prompt_encoder",
        "mask_decoder",
        "memory_attention",
        "memory_encoder",
        "shared_image_embedding",
        "object_pointer_proj",
        "temporal_positional_encoding_projection_layer",
        "mask_downsample",
        "memory_temporal_positional_encoding",
        "no_memory_embedding",
        "no_memory_positional_encoding",
        "no_object_pointer",
        "occlusion_spatial_embedding_parameter",
    }
)
# Keys whose presence alone proves the transformers layout (the official names differ).
_HF_MARKERS = ("vision_encoder.", "prompt_encoder.", "mask_decoder.")

_POINT_TABLE = "prompt_encoder.point_embed.weight"  # [4, C]: background, foreground, box x2
_POSITIONAL = "prompt_encoder.shared_embedding.positional_embedding"  # [2, C/2]
_POSITIONAL_COPY = "shared_image_embedding.positional_embedding"  # same matrix, used for images
_OFFICIAL_POSITIONAL = "sam_prompt_encoder.pe_layer.positional_encoding_gaussian_matrix"

# Downsampler stage i in transformers = (conv, layer norm) at official Sequential indices
# (3i, 3i+1); index 3i+2 is a parameter-free GELU and the final 1x1 conv comes last.
_SEQUENTIAL_STRIDE = 3

# Plain renames, applied in this order after the MLP and downsampler indices are fixed.
# Specific rules come before the generic `layer_norm` / `o_proj` ones that would clash.
_RENAMES: tuple[tuple[str, str], ...] = (
    # image encoder: transformers drops the `trunk` level and the neck convs' `conv` wrapper
    (r"^vision_encoder\.backbone\.", "image_encoder.trunk."),
    (r"^vision_encoder\.neck\.convs\.(\d+)\.", r"image_encoder.neck.convs.\1.conv."),
    (r"\.patch_embed\.projection\.", ".patch_embed.proj."),
    # prompt encoder: named layers instead of the official nn.Sequential indices
    (r"^prompt_encoder\.", "sam_prompt_encoder."),
    (r"\.mask_embed\.conv1\.", ".mask_downscaling.0."),
    (r"\.mask_embed\.layer_norm1\.", ".mask_downscaling.1."),
    (r"\.mask_embed\.conv2\.", ".mask_downscaling.3."),
    (r"\.mask_embed\.layer_norm2\.", ".mask_downscaling.4."),
    (r"\.mask_embed\.conv3\.", ".mask_downscaling.6."),
    # mask decoder: same story for the upscaling Sequential (index 2 is the activation)
    (r"^mask_decoder\.", "sam_mask_decoder."),
    (r"\.upscale_conv1\.", ".output_upscaling.0."),
    (r"\.upscale_layer_norm\.", ".output_upscaling.1."),
    (r"\.upscale_conv2\.", ".output_upscaling.3."),
    (r"\.layer_norm_final_attn\.", ".norm_final_attn."),
    # memory encoder
    (r"^memory_encoder\.feature_projection\.", "memory_encoder.pix_feat_proj."),
    (r"^memory_encoder\.projection\.", "memory_encoder.out_proj."),
    (r"^memory_encoder\.memory_fuser\.", "memory_encoder.fuser."),
    (r"\.depthwise_conv\.", ".dwconv."),
    (r"\.pointwise_conv(\d)\.", r".pwconv\1."),
    (r"\.scale$", ".gamma"),
    # top-level parameters and heads
    (r"^memory_temporal_positional_encoding$", "maskmem_tpos_enc"),
    (r"^no_memory_embedding$", "no_mem_embed"),
    (r"^no_memory_positional_encoding$", "no_mem_pos_enc"),
    (r"^no_object_pointer$", "no_obj_ptr"),
    (r"^occlusion_spatial_embedding_parameter$", "no_obj_embed_spatial"),
    (r"^temporal_positional_encoding_projection_layer\.", "obj_ptr_tpos_proj."),
    (r"^object_pointer_proj\.", "obj_ptr_proj."),
    # generic names last
    (r"\.layer_norm(\d*)\.", r".norm\1."),
    (r"\.o_proj\.", ".out_proj."),
)
_COMPILED = tuple((re.compile(pattern), repl) for pattern, repl in _RENAMES)

# Words that only the transformers layout uses; one left in a mapped key means a missed rule.
_HF_ONLY_WORDS = (
    "vision_encoder",
    "backbone",
    "proj_in",
    "proj_out",
    "layer_norm",
    "o_proj",
    "projection",
    ".mask_embed.",
    "upscale_",
    "memory_fuser",
    "depthwise",
    "pointwise",
    "final_conv",
    "shared_embedding",
    ".point_embed.",
    "temporal_positional",
    "object_pointer",
    "no_memory",
    "occlusion",
)

_MLP_INPUT = re.compile(r"^(?P<mlp>.+)\.proj_in\.(weight|bias)$")
_DOWNSAMPLER = "memory_encoder.mask_downsampler."


def is_hf_layout(state_dict: Mapping[str, Tensor]) -> bool:
    """True when `state_dict` uses the transformers key names rather than the official ones."""
    return any(key.startswith(_HF_MARKERS) for key in state_dict)


def hf_to_official(state_dict: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Rename (and split where needed) a transformers SAM 2 state dict into the official layout.

    Works for both `Sam2Model` (image only: the result lacks the memory modules) and
    `Sam2VideoModel`. Raises `CheckpointError` on any key it does not recognise.
    """
    mlp_depths = _mlp_hidden_counts(state_dict)
    downsampler_stages = _count_children(state_dict, _DOWNSAMPLER + "layers.")
    out: dict[str, Tensor] = {}
    for key, value in state_dict.items():
        if key.split(".", 1)[0] not in HF_TOP_LEVEL:
            raise CheckpointError(
                f"unrecognised key {key!r} in a Hugging Face SAM 2 state dict; expected keys "
                f"under {', '.join(sorted(HF_TOP_LEVEL))}; is this a transformers Sam2Model?"
            )
        if key in (_POSITIONAL, _POSITIONAL_COPY):
            continue  # handled once below
        if key == _POINT_TABLE:
            # [4, C] -> four [1, C] embeddings, one per point label
            for index, row in enumerate(value.split(1, dim=0)):
                _put(out, f"sam_prompt_encoder.point_embeddings.{index}.weight", row.clone())
            continue
        _put(out, _rename(key, mlp_depths, downsampler_stages), value)

    positional = _positional_matrix(state_dict)
    if positional is not None:
        _put(out, _OFFICIAL_POSITIONAL, positional)
    return out


def _rename(key: str, mlp_depths: Mapping[str, int], downsampler_stages: int) -> str:
    new = _official_mlp_index(key, mlp_depths)
    if new.startswith(_DOWNSAMPLER):
        new = _official_downsampler_index(new, downsampler_stages)
    for pattern, repl in _COMPILED:
        new = pattern.sub(repl, new)
    leftover = [word for word in _HF_ONLY_WORDS if word in new]
    if leftover:
        raise CheckpointError(
            f"cannot map Hugging Face key {key!r} to the official layout (got {new!r}, which "
            f"still contains {leftover[0]!r}); this transformers layout is not supported"
        )
    return new


def _mlp_hidden_counts(state_dict: Mapping[str, Tensor]) -> dict[str, int]:
    """Every transformers MLP (recognised by its `proj_in`) -> number of hidden `layers.i`."""
    prefixes = {m["mlp"] for key in state_dict if (m := _MLP_INPUT.match(key))}
    return {p: _count_children(state_dict, p + ".layers.") for p in prefixes}


def _count_children(state_dict: Mapping[str, Tensor], prefix: str) -> int:
    """Number of distinct integer children `prefix<i>.` among the keys."""
    indices = {key[len(prefix) :].split(".", 1)[0] for key in state_dict if key.startswith(prefix)}
    return len(indices)


def _official_mlp_index(key: str, mlp_depths: Mapping[str, int]) -> str:
    """transformers MLP `proj_in` / `layers.i` / `proj_out` -> official `layers.0 / i+1 / n-1`."""
    for prefix, hidden in mlp_depths.items():
        if not key.startswith(prefix + "."):
            continue
        rest = key[len(prefix) + 1 :]
        if rest.startswith("proj_in."):
            return f"{prefix}.layers.0.{rest[len('proj_in.') :]}"
        if rest.startswith("proj_out."):
            return f"{prefix}.layers.{hidden + 1}.{rest[len('proj_out.') :]}"
        match = re.match(r"layers\.(\d+)\.(.+)$", rest)
        if match:
            return f"{prefix}.layers.{int(match[1]) + 1}.{match[2]}"
    return key


def _official_downsampler_index(key: str, stages: int) -> str:
    """Named downsampler stages -> the official `encoder.<Sequential index>` keys."""
    rest = key[len(_DOWNSAMPLER) :]
    match = re.match(r"layers\.(\d+)\.(conv|layer_norm)\.(.+)$", rest)
    if match:
        offset = 0 if match[2] == "conv" else 1
        index = _SEQUENTIAL_STRIDE * int(match[1]) + offset
        return f"{_DOWNSAMPLER}encoder.{index}.{match[3]}"
    if rest.startswith("final_conv."):
        index = _SEQUENTIAL_STRIDE * stages
        return f"{_DOWNSAMPLER}encoder.{index}.{rest[len('final_conv.') :]}"
    return key


def _positional_matrix(state_dict: Mapping[str, Tensor]) -> Tensor | None:
    """The one positional matrix the official model keeps, from transformers' two copies.

    Converted checkpoints hold the same tensor twice; the prompt encoder's copy is the one the
    official model uses for points, and also for the image positional encoding.
    """
    main = state_dict.get(_POSITIONAL)
    copy = state_dict.get(_POSITIONAL_COPY)
    if main is None:
        return copy
    if copy is not None and (copy.shape != main.shape or not torch.equal(copy, main)):
        warnings.warn(
            f"{_POSITIONAL_COPY} differs from {_POSITIONAL}; the official model has one matrix "
            "for both, so the prompt encoder's copy is used",
            stacklevel=3,
        )
    return main


def _put(out: dict[str, Tensor], key: str, value: Tensor) -> None:
    if key in out:
        raise CheckpointError(f"two Hugging Face keys map to the same official key {key!r}")
    out[key] = value


# ---------------------------------------------------------------------------------------------
# config.json written by `save_pretrained` beside `model.safetensors`

HF_CONFIG_NAME = "config.json"


def read_hf_config(checkpoint: Path) -> dict[str, Any] | None:
    """The transformers `config.json` beside a `.safetensors` file, or None if there is none."""
    if checkpoint.suffix != ".safetensors":
        return None
    path = checkpoint.parent / HF_CONFIG_NAME
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(
            f"cannot read {path} (the transformers config beside {checkpoint.name}): {exc}; "
            "fix or delete it, or pass the model config explicitly"
        ) from exc
    if not isinstance(data, dict) or not str(data.get("model_type", "")).startswith("sam2"):
        return None  # another library's config.json: not ours to interpret
    return data


def hf_image_size(data: Mapping[str, Any]) -> int | None:
    """The input size a transformers Sam2 config declares (video configs hold it at the top,
    image configs in the prompt encoder and the backbone)."""
    backbone = data.get("vision_config", {}).get("backbone_config", {})
    for value in (
        data.get("image_size"),
        data.get("prompt_encoder_config", {}).get("image_size"),
        backbone.get("image_size"),
    ):
        if isinstance(value, list) and value:
            value = value[0]
        if isinstance(value, int) and value > 0:
            return value
    return None


def hf_trunk(data: Mapping[str, Any]) -> dict[str, Any]:
    """The Hiera fields of masklet's HieraConfig that a transformers Sam2 config sets."""
    backbone = data.get("vision_config", {}).get("backbone_config", {})
    fields = {
        "embed_dim": backbone.get("hidden_size"),
        "num_heads": backbone.get("num_attention_heads"),
        "stages": backbone.get("blocks_per_stage"),
        "global_att_blocks": backbone.get("global_attention_blocks"),
        "window_spec": backbone.get("window_size_per_stage"),
        "window_pos_embed_bkg_spatial_size": backbone.get(
            "window_positional_embedding_background_size"
        ),
    }
    return {k: tuple(v) if isinstance(v, list) else v for k, v in fields.items() if v is not None}
