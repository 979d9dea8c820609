"""Official SAM 2 checkpoints: registry, cache, download, reading, variant detection, loading.

    load_model("sam2.1_hiera_tiny")          # cached or downloaded, then strictly loaded
    load_model("weights/my_finetune.pt")     # variant detected from the tensors

Official `.pt` files hold `{"model": state_dict}` with the same keys as `build_model(config)`,
so they load strictly with no renaming. Hugging Face transformers safetensors are renamed by
`masklet.hf_keys.hf_to_official` first.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING

from masklet.checkpoint_files import (
    HF_WEIGHTS,
    hf_saved_config,
    missing_video_parts,
    one_line,
    read_state_dict,
    stored_config,
)
from masklet.config import DEFAULT_MODEL, NANO_MODEL, ModelConfig
from masklet.errors import CheckpointError, InvalidInputError
from masklet.hub import hub_unreachable, quiet_hub
from masklet.lazy import lazy_exports

if TYPE_CHECKING:  # PyTorch is imported where a file is read or a model built, not here:
    import torch  # `masklet models` and the CLI's help must not wait seconds for it
    from torch import nn

_BASE_URL_20 = "https://dl.fbaipublicfiles.com/segment_anything_2/072824/"
_BASE_URL_21 = "https://dl.fbaipublicfiles.com/segment_anything_2/092824/"
# Names this module used to import at the top; still importable from here, loaded on first use.
_MOVED = {
    "check_compatible": "masklet.state_dicts",
    "detect_config": "masklet.state_dicts",
    "hf_to_official": "masklet.hf_keys",
    "is_hf_layout": "masklet.hf_keys",
}


__getattr__, __dir__ = lazy_exports(__name__, _MOVED, globals())

_CHUNK_BYTES = 1 << 20
# How library errors tell the user to pass a local file; the CLI swaps in its own flag.
LOCAL_FILE_HINT = "load_model(path)"
_TIMEOUT_SECONDS = 30.0


@dataclass(frozen=True)
class CheckpointInfo:
    """Where one official checkpoint lives. `size_bytes` is None where no public source states it."""

    name: str  # e.g. "sam2.1_hiera_tiny", as in ModelConfig.names()
    url: str
    hf_repo: str  # e.g. "facebook/sam2.1-hiera-tiny"
    hf_filename: str
    size_bytes: int | None

    @property
    def filename(self) -> str:
        return f"{self.name}.pt"


def _info(name: str, size_bytes: int | None) -> CheckpointInfo:
    base = _BASE_URL_21 if name.startswith("sam2.1") else _BASE_URL_20
    return CheckpointInfo(
        name=name,
        url=f"{base}{name}.pt",
        hf_repo="facebook/" + name.replace("_", "-"),
        hf_filename=f"{name}.pt",
        size_bytes=size_bytes,
    )


# Sizes are the git-lfs pointer sizes published on the Hugging Face Hub for the same files
# (sha256 matching the facebook/* repos); the 2.0 small size was not found stated anywhere.
CHECKPOINTS: dict[str, CheckpointInfo] = {
    info.name: info
    for info in (
        _info("sam2_hiera_tiny", 155_906_050),
        _info("sam2_hiera_small", None),
        _info("sam2_hiera_base_plus", 323_493_298),
        _info("sam2_hiera_large", 897_952_466),
        _info("sam2.1_hiera_tiny", 156_008_466),
        _info("sam2.1_hiera_small", 184_416_285),
        _info("sam2.1_hiera_base_plus", 323_606_802),
        _info("sam2.1_hiera_large", 898_083_611),
    )
}


def checkpoint_info(name: str) -> CheckpointInfo:
    """Registry entry for `name`; accepts `sam2.1-hiera-tiny`, `facebook/sam2.1-hiera-tiny`, `b+`."""
    key = _registry_key(name)
    if key is None:
        raise CheckpointError(
            f"unknown model {name!r}; expected one of: {', '.join(CHECKPOINTS)} (official, "
            f"downloaded on first use), {', '.join(BUNDLED_MODELS)} (bundled, works offline), "
            "or a path to a .pt / .safetensors file"
        )
    return CHECKPOINTS[key]


def _registry_key(name: str) -> str | None:
    key = name.strip().lower().removeprefix("facebook/").replace("-", "_")
    key = key.replace("b+", "base_plus").replace("sam2_1", "sam2.1").removesuffix(".pt")
    return key if key in CHECKPOINTS else None


# ---------------------------------------------------------------------------------------------
# cache and download


def cache_dir() -> Path:
    """$MASKLET_CACHE, else $XDG_CACHE_HOME/masklet, else ~/.cache/masklet (not created here)."""
    if os.environ.get("MASKLET_CACHE"):
        return Path(os.environ["MASKLET_CACHE"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser() / "masklet"


def cached_path(name: str) -> Path | None:
    """The cached file of registry checkpoint `name`, or None when it has not been downloaded."""
    path = cache_dir() / checkpoint_info(name).filename
    return path if path.is_file() else None


def download(name: str, *, force: bool = False, progress: bool = True) -> Path:
    """Fetch an official checkpoint into the cache and return its path (a bundled model's
    file is returned as it is: it needs no download).

    Tries the official URL, then the Hugging Face Hub. The file only appears under its final
    name once complete (and of the published size, when known).
    """
    bundled = bundled_path(name)
    if bundled is not None:
        return bundled  # shipped inside the package: nothing to download
    info = checkpoint_info(name)
    target = cache_dir() / info.filename
    if target.is_file() and not force:
        return target
    reasons: list[str] = []
    sources = (
        (info.url, _download_url),
        (f"Hugging Face Hub {info.hf_repo}/{info.hf_filename}", _download_hf),
    )
    for source, fetch in sources:
        try:
            fetch(info, target, progress)
            return target
        except Exception as exc:  # urllib, huggingface_hub and size checks share no base class
            reasons.append(f"{source}: {one_line(exc)}")
    raise CheckpointError(
        f"checkpoint {info.name!r} is not in the cache ({_display(target)}) and could not be "
        f"downloaded ({'; '.join(reasons)}); download it where there is network "
        f"(masklet.download({info.name!r}) or `masklet download {info.name}`) and copy it to "
        f"{_display(target)}, load a local file with {LOCAL_FILE_HINT}, or use the bundled "
        f"model {NANO_MODEL!r} (works offline; trained on synthetic shapes only)"
    )


def _open_url(url: str, timeout: float) -> IO[bytes]:
    """Opens `url` for reading; a separate function so tests can serve bytes without network."""
    import urllib.request  # lazy, as every network module here: `masklet models` never needs one

    return urllib.request.urlopen(url, timeout=timeout)  # noqa: S310 (fixed https URLs)


def _download_url(info: CheckpointInfo, target: Path, progress: bool) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{info.name}.", suffix=".partial", dir=target.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out, _open_url(info.url, _TIMEOUT_SECONDS) as response:
            headers = getattr(response, "headers", None)
            length = headers.get("Content-Length") if headers is not None else None
            expected = info.size_bytes or (int(length) if length else None)
            _copy_with_progress(response, out, expected, info.filename, progress)
        _check_size(tmp, expected)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def _copy_with_progress(
    source: IO[bytes], out: IO[bytes], total: int | None, label: str, progress: bool
) -> None:
    from tqdm import tqdm

    with tqdm(
        total=total, unit="B", unit_scale=True, desc=label, disable=not progress, leave=False
    ) as bar:
        while chunk := source.read(_CHUNK_BYTES):
            out.write(chunk)
            bar.update(len(chunk))


def _hf_download(repo_id: str, filename: str, local_dir: Path) -> Path:
    """Downloads one Hub file into `local_dir`; a separate function so tests can replace it.

    Fails at once when the Hub cannot be reached (instead of the client's ~25 s of retries)."""
    from huggingface_hub import hf_hub_download

    unreachable = hub_unreachable()
    if unreachable is not None:
        raise CheckpointError(unreachable)
    with quiet_hub():
        return Path(hf_hub_download(repo_id=repo_id, filename=filename, local_dir=local_dir))


def _download_hf(info: CheckpointInfo, target: Path, progress: bool) -> None:
    """Fallback source; the Hub client draws its own progress bar (`progress` is unused)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    # A private folder beside the target: the Hub client writes its own temporary and
    # metadata files there, and only the finished file is moved into place.
    staging = Path(tempfile.mkdtemp(prefix=f".{info.name}.hf.", dir=target.parent))
    try:
        fetched = _hf_download(info.hf_repo, info.hf_filename, staging)
        _check_size(fetched, info.size_bytes)
        os.replace(fetched, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _check_size(path: Path, expected: int | None) -> None:
    size = path.stat().st_size
    if expected is not None and size != expected:
        raise CheckpointError(f"incomplete download: got {size} bytes, expected {expected}")


def _display(path: Path) -> str:
    """`path` with the home folder shown as ~, as users type it."""
    try:
        return "~/" + str(path.relative_to(Path.home()))
    except ValueError:
        return str(path)


# ---------------------------------------------------------------------------------------------
# variant detection


def resolve_device(device: str | torch.device | None) -> torch.device:
    """`device` as a torch.device; None picks CUDA, then Apple MPS, then the CPU."""
    import torch

    if device is None:
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise InvalidInputError(
            f"unknown device {device!r}; expected cpu, cuda, cuda:N or mps"
        ) from exc
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise InvalidInputError("device 'cuda' was requested but CUDA is not available; use cpu")
    if resolved.type == "mps" and not torch.backends.mps.is_available():
        raise InvalidInputError("device 'mps' was requested but MPS is not available; use cpu")
    return resolved


def _build_model(config: ModelConfig) -> nn.Module:
    from masklet.modeling.sam2 import build_model  # lazy: loading helpers import without it

    return build_model(config)


# Models trained by masklet and shipped inside the package (no download needed).
BUNDLED_MODELS: dict[str, str] = {NANO_MODEL: f"{NANO_MODEL}.pt"}
BUNDLED_DIR = Path(__file__).parent / "weights"


def bundled_path(name: str) -> Path | None:
    """The file of a model shipped with masklet, or None if `name` is not one (or missing)."""
    filename = BUNDLED_MODELS.get(name)
    if filename is None:
        return None
    path = BUNDLED_DIR / filename
    if not path.is_file():
        raise CheckpointError(
            f"the bundled model {name!r} is missing from this installation ({path}); "
            f"reinstall masklet or load a checkpoint file with {LOCAL_FILE_HINT}"
        )
    return path


AUTO_MODEL = "auto"
_AUTO_PREFERENCE = (DEFAULT_MODEL, "masklet-nano-synthetic")


def resolve_model_name(name: str) -> str:
    """`"auto"` becomes the first model usable without a download: the official tiny model if
    cached, else the bundled nano model. Any other name is returned unchanged."""
    if name != AUTO_MODEL:
        return name
    official, nano = _AUTO_PREFERENCE
    return official if cached_path(official) is not None else nano


def load_model(
    name_or_path: str | os.PathLike[str],
    device: str | torch.device | None = None,
    config: ModelConfig | None = None,
    *,
    backend: str | None = None,
    precision: str | None = None,
) -> nn.Module:
    """A SAM 2 model in eval mode on `device`, with strictly loaded weights.

    `name_or_path` is an official name (cached, else downloaded), a checkpoint file, or a
    folder from `masklet export onnx` (run by onnxruntime); for a file the variant is
    detected from its tensors unless `config` is given. `backend`: "pytorch" or
    "onnxruntime" (default: whichever `name_or_path` is for).

    precision: fp32, bf16, fp16 or auto (`masklet.precision`), recorded on the model as
    `model.precision` for every predictor built on it; None leaves the predictors at fp32.
    An ONNX export runs at the precision it was exported with (`--precision`, `--quantize`).
    """
    from masklet.backends.onnxruntime import load_onnx_model, onnx_folder_for

    if onnx_folder_for(name_or_path, backend) is not None:
        if precision not in (None, "fp32", "auto"):
            raise InvalidInputError(
                f"precision {precision!r} applies to the PyTorch backend; an ONNX export runs "
                "at the precision it was exported with (masklet export onnx --precision fp16 "
                "or --quantize int8)"
            )
        return load_onnx_model(name_or_path, config=config, device=device)
    path = bundled_path(str(name_or_path)) or Path(name_or_path)
    if path.is_dir() and (path / HF_WEIGHTS).is_file():  # a save_pretrained folder
        path = path / HF_WEIGHTS
    registry_name = None if path.is_file() else _registry_key(str(name_or_path))
    if registry_name is not None:
        path = cached_path(registry_name) or download(registry_name)
        config = config or ModelConfig.named(registry_name)
    elif not path.is_file() and path.suffix not in {".pt", ".pth", ".safetensors"}:
        checkpoint_info(str(name_or_path))  # raises: unknown name, lists the known ones
    from masklet.state_dicts import check_compatible, detect_config

    state_dict = read_state_dict(path)
    config = config or stored_config(path) or hf_saved_config(path, state_dict)
    config = config or detect_config(state_dict)
    model = _build_model(config)
    video_missing = missing_video_parts(model.state_dict(), state_dict)
    if video_missing:  # an image-only file: fine for images, refused by VideoPredictor
        initial = model.state_dict()
        state_dict = {**{k: initial[k] for k in video_missing}, **state_dict}
    check_compatible(model, state_dict, config, path)
    model.load_state_dict(state_dict, strict=True)
    model.missing_video_weights = tuple(video_missing)  # type: ignore[assignment]
    model = model.eval().to(resolve_device(device))
    if precision is not None:
        from masklet.precision import apply_precision

        apply_precision(model, precision)
    return model
