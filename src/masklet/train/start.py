"""The model a training run starts from: which architecture, and which weights it loads.

Without an explicit `TrainConfig.model`, a run builds the model its `init_checkpoint` was made
for (the config a masklet checkpoint stores, or the official variant), so `--init` of the
bundled nano model fine-tunes the nano model instead of a 1024-px tiny one. With an explicit
model the matching tensors load (e.g. a SAM 2.0 checkpoint into a 2.1 model, or another image
size), but a masklet checkpoint of another architecture, of which less than half the model
would load, is refused before training.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from masklet.checkpoint_files import read_state_dict, stored_config
from masklet.checkpoints import bundled_path, checkpoint_info, download
from masklet.config import DEFAULT_MODEL, ModelConfig
from masklet.errors import CheckpointError
from masklet.modeling.sam2 import SAM2Model
from masklet.state_dicts import detect_config
from masklet.train.config import TrainConfig

# Below this share of the model's tensors loaded from a checkpoint made for another model, the
# run would mostly train from scratch while the user asked to start from the checkpoint.
MIN_LOADED_SHARE = 0.5
_CHECKPOINT_SUFFIXES = {".pt", ".pth", ".safetensors"}


@dataclass(frozen=True)
class LoadReport:
    """What `load_matching` took from a checkpoint: parameter names of each outcome."""

    loaded: list[str]
    missing: list[str]  # in the model, absent from the checkpoint: left as initialised
    mismatched: list[str]  # in both with different shapes: left as initialised
    unexpected: list[str]  # in the checkpoint only: ignored

    def summary(self) -> str:
        parts = [f"loaded {len(self.loaded)} tensors"]
        for label, names in (
            ("kept initialised (not in checkpoint)", self.missing),
            ("kept initialised (shape differs)", self.mismatched),
            ("ignored (not in model)", self.unexpected),
        ):
            if names:
                shown = ", ".join(names[:5]) + (", ..." if len(names) > 5 else "")
                parts.append(f"{label}: {len(names)} ({shown})")
        return "; ".join(parts)

    def line(self, source: str | None) -> str:
        """One line for the user: `init from SOURCE: loaded N tensors; ...`."""
        return f"init from {source}: {self.summary()}"

    @property
    def loaded_share(self) -> float:
        """Share of the model's tensors that came from the checkpoint."""
        total = len(self.loaded) + len(self.missing) + len(self.mismatched)
        return len(self.loaded) / max(total, 1)


def load_matching(model: torch.nn.Module, state_dict: Mapping[str, Tensor]) -> LoadReport:
    """Copy every tensor whose name and shape match into `model` (e.g. a SAM 2.0 checkpoint
    into a 2.1 model, or a different image size); report the rest."""
    own = model.state_dict()
    matched = {k: v for k, v in state_dict.items() if k in own and own[k].shape == v.shape}
    mismatched = [
        f"{k} {tuple(v.shape)} vs {tuple(own[k].shape)}"
        for k, v in state_dict.items()
        if k in own and own[k].shape != v.shape
    ]
    if not matched:
        raise CheckpointError(
            "no tensor of the checkpoint matches the model by name and shape; pass a SAM 2 "
            "checkpoint in the official layout"
        )
    model.load_state_dict(matched, strict=False)
    return LoadReport(
        loaded=sorted(matched),
        missing=sorted(k for k in own if k not in state_dict),
        mismatched=sorted(mismatched),
        unexpected=sorted(k for k in state_dict if k not in own),
    )


def init_path(name_or_path: str) -> Path:
    """The file of `--init`: a bundled model's name (masklet-nano-synthetic), a checkpoint
    file, or an official name (cached, else downloaded)."""
    bundled = bundled_path(name_or_path)
    if bundled is not None:
        return bundled
    path = Path(name_or_path)
    if path.is_file() or path.suffix in _CHECKPOINT_SUFFIXES:
        if not path.is_file():
            raise CheckpointError(f"--init checkpoint {path} not found; check the path")
        return path
    return download(checkpoint_info(name_or_path).name)


def _checkpoint_model(name_or_path: str, path: Path) -> ModelConfig | None:
    """The model a checkpoint was made for: the config it stores, else its official variant
    (by name, or detected from its tensors); None when it cannot be told."""
    config = stored_config(path)
    if config is not None:
        return config
    if not Path(name_or_path).is_file():  # an official name
        return ModelConfig.named(checkpoint_info(name_or_path).name)
    try:
        return detect_config(read_state_dict(path))
    except Exception:  # not an official layout: the explicit or default model is used
        return None


def model_config(model: str | ModelConfig | None) -> ModelConfig:
    """A `TrainConfig.model` as a config: a variant name, a bundled model's name (its stored
    config) or a config; None is the default variant."""
    if isinstance(model, ModelConfig):
        return model
    if model is None:
        return ModelConfig.named(DEFAULT_MODEL)
    bundled = bundled_path(model)
    if bundled is not None:
        stored = stored_config(bundled)
        if stored is not None:
            return stored
    return ModelConfig.named(model)


def resolve_model(config: TrainConfig) -> TrainConfig:
    """`config` with `model` as a full ModelConfig: the given one, else the init
    checkpoint's own model, else the default variant. Saved with the run, so a recipe read
    back builds the same model."""
    if config.model is not None:
        return dataclasses.replace(config, model=model_config(config.model))
    if config.init_checkpoint:
        found = _checkpoint_model(config.init_checkpoint, init_path(config.init_checkpoint))
        if found is not None:
            return dataclasses.replace(config, model=found)
    return dataclasses.replace(config, model=model_config(None))


def build_start_model(config: TrainConfig) -> tuple[SAM2Model, LoadReport | None]:
    """The model a run starts from: seeded init, then the matching tensors of the init file.

    Raises CheckpointError when the init checkpoint stores a different model than the one
    asked for and less than `MIN_LOADED_SHARE` of it would load."""
    config = resolve_model(config)
    model_cfg = model_config(config.model)
    torch.manual_seed(config.seed)
    model = SAM2Model(model_cfg)
    if not config.init_checkpoint:
        return model, None
    path = init_path(config.init_checkpoint)
    report = load_matching(model, read_state_dict(path))
    made_for = stored_config(path)
    if made_for is not None and made_for != model_cfg and report.loaded_share < MIN_LOADED_SHARE:
        raise CheckpointError(
            f"--init {config.init_checkpoint} was trained as another model "
            f"({made_for.name}, {made_for.image_size} px) than the one asked for "
            f"({model_cfg.name}, {model_cfg.image_size} px): only {len(report.loaded)} of "
            f"{len(report.loaded) + len(report.missing) + len(report.mismatched)} tensors "
            "would load; drop --model / --config-json to fine-tune the checkpoint's own model"
        )
    return model, report
