"""Checkpoint files: reading a state dict (.pt/.safetensors, official or transformers layout),
the config a file carries, and the video-only parts an image-only file lacks.

`masklet.checkpoints` (registry, cache, download, loading) builds on these.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from masklet.config import NANO_MODEL, ModelConfig
from masklet.errors import CheckpointError

if TYPE_CHECKING:  # PyTorch is imported where a file is read, not here (fast CLI help)
    from torch import Tensor, nn


def one_line(exc: BaseException) -> str:
    """An exception's message on one line (library errors often span several)."""
    return " ".join(str(exc).split()) or type(exc).__name__


# ---------------------------------------------------------------------------------------------
# reading


def read_state_dict(path: str | os.PathLike[str]) -> dict[str, Tensor]:
    """The official-layout state dict stored in `path` (.pt/.pth or .safetensors), on the CPU."""
    file = Path(path)
    if not file.is_file():
        raise CheckpointError(
            f"checkpoint file not found: {file}; pass the path of a SAM 2 .pt or "
            ".safetensors file, or an official name such as sam2.1_hiera_tiny"
        )
    kind = _file_kind(file)
    if kind is not None:
        raise CheckpointError(
            f"{file} is not a checkpoint: it is {kind}, not a PyTorch (.pt) or safetensors "
            "file; give the path of a SAM 2 checkpoint such as sam2.1_hiera_tiny.pt, or a model "
            f"name such as {NANO_MODEL} (bundled, works offline)"
        )
    import torch

    from masklet.hf_keys import hf_to_official, is_hf_layout

    loaded: Any
    try:
        if file.suffix == ".safetensors":
            from safetensors.torch import load_file

            loaded = load_file(str(file), device="cpu")
        else:
            loaded = torch.load(file, map_location="cpu", weights_only=True)
    except Exception as exc:  # zip, pickle and safetensors errors share no base class
        raise CheckpointError(
            f"cannot read checkpoint {file}: the file is truncated or corrupt "
            f"({type(exc).__name__}: {one_line(exc)[:200]}); if it was downloaded, delete it "
            "and download it again"
        ) from exc
    state_dict = _unwrap(loaded, file)
    return hf_to_official(state_dict) if is_hf_layout(state_dict) else state_dict


_MAGIC_KINDS = (
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"\x89PNG", "a PNG image"),
    (b"GIF8", "a GIF image"),
    (b"RIFF", "a RIFF file (WebP image, WAV or AVI)"),
    (b"\x1a\x45\xdf\xa3", "a Matroska / WebM video"),
    (b"%PDF", "a PDF document"),
    (b"II*\x00", "a TIFF image"),
    (b"MM\x00*", "a TIFF image"),
)


def _file_kind(file: Path) -> str | None:
    """What `file` is when its first bytes show it is not a checkpoint, else None.

    Checkpoints start with a zip header (torch.save), a pickle protocol byte (legacy
    torch.save) or an 8-byte length and "{" (safetensors); anything else cannot be one.
    """
    with open(file, "rb") as stream:
        head = stream.read(16)
    if not head:
        return None  # an interrupted download: reported as truncated
    if head.startswith(b"PK") or head[0] == 0x80 or head[8:9] == b"{":
        return None
    for magic, kind in _MAGIC_KINDS:
        if head.startswith(magic):
            return kind
    if head[4:8] == b"ftyp":
        return "an MP4 / MOV video or HEIC image"
    try:
        head.decode("utf-8")
    except UnicodeDecodeError:
        return "an unknown kind of file"
    return "a text file"


def _unwrap(loaded: Any, file: Path) -> dict[str, Tensor]:
    """Official files wrap the weights as {"model": state_dict}; bare state dicts are accepted."""
    from torch import Tensor

    if isinstance(loaded, Mapping) and isinstance(loaded.get("model"), Mapping):
        loaded = loaded["model"]
    if (
        isinstance(loaded, Mapping)
        and loaded
        and all(isinstance(k, str) and isinstance(v, Tensor) for k, v in loaded.items())
    ):
        return dict(loaded)
    found = f"keys {sorted(map(str, loaded))[:5]}" if isinstance(loaded, Mapping) else type(loaded)
    raise CheckpointError(
        f"{file} is not a SAM 2 checkpoint: expected a state dict of tensors, or a dict with "
        f"a 'model' state dict, found {found}"
    )


HF_WEIGHTS = "model.safetensors"  # the file name transformers' save_pretrained writes
# Tensors only the video path uses (memory attention and encoder, object pointers, no-object
# and temporal embeddings): a transformers Sam2Model (images) has none of them.
VIDEO_ONLY_PREFIXES = (
    "memory_attention.",
    "memory_encoder.",
    "mask_downsample.",
    "maskmem_tpos_enc",
    "no_mem_pos_enc",
    "no_obj_ptr",
    "no_obj_embed_spatial",
    "obj_ptr_proj.",
    "obj_ptr_tpos_proj.",
)


def missing_video_parts(expected: Mapping[str, Any], state_dict: Mapping[str, Any]) -> list[str]:
    """The model keys left to initialise when `state_dict` is an image-only checkpoint: every
    video-only key of the model, when the file has none of them and nothing else is missing.
    Empty for complete files, and for files that miss other keys (reported as a mismatch)."""
    missing = [k for k in expected if k not in state_dict]
    if not missing or any(k.startswith(VIDEO_ONLY_PREFIXES) for k in state_dict):
        return []
    return missing if all(k.startswith(VIDEO_ONLY_PREFIXES) for k in missing) else []


def require_video_weights(model: nn.Module) -> None:
    """Raise when `model` was loaded from an image-only checkpoint (it cannot track)."""
    missing = getattr(model, "missing_video_weights", ())
    if missing:
        raise CheckpointError(
            f"this model was loaded from an image-only checkpoint (such as transformers' "
            f"Sam2Model.save_pretrained): its video parts (memory attention, memory encoder, "
            f"object pointers: {len(missing)} tensors) are missing, so it segments images but "
            "cannot track video; for video load a full SAM 2 checkpoint (an official .pt, or "
            "a transformers Sam2VideoModel save)"
        )


def hf_saved_config(path: Path, state_dict: Mapping[str, Tensor]) -> ModelConfig | None:
    """The model config of a transformers save (`config.json` beside `model.safetensors`):
    the image size it declares, on the detected variant or on the trunk it describes."""
    from masklet.hf_keys import hf_image_size, hf_trunk, read_hf_config
    from masklet.state_dicts import detect_config

    data = read_hf_config(path)
    if data is None:
        return None
    try:
        config = detect_config(state_dict)
    except CheckpointError:  # not an official trunk: build it from the config.json
        version = "sam2" if data.get("enable_occlusion_spatial_embedding") is False else "sam2.1"
        base = ModelConfig.named(f"{version}_hiera_tiny").with_trunk(**hf_trunk(data))
        config = dataclasses.replace(base, name=path.parent.name or base.name)
    size = hf_image_size(data)
    return dataclasses.replace(config, image_size=size) if size else config


def stored_config(path: str | os.PathLike[str]) -> ModelConfig | None:
    """The model config a `.pt` carries under "model_config" (models trained with masklet)."""
    import torch

    if Path(path).suffix == ".safetensors":
        return None
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # read_state_dict already reported unreadable files
        return None
    data = loaded.get("model_config") if isinstance(loaded, dict) else None
    if not isinstance(data, dict):
        return None
    try:
        return ModelConfig.from_dict(data)
    except TypeError as exc:
        raise CheckpointError(
            f"checkpoint {path} carries an unreadable model config: {exc}"
        ) from exc
