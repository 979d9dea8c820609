"""Training recipes: a `TrainConfig` as a JSON file, written with every run and read back by
`masklet train --config RECIPE`.

A recipe is a JSON object of `TrainConfig` field names (any subset; the rest keep their
defaults), with `loss` an object of `LossWeights` fields. `model` is one of:
- a variant or bundled model name (`"sam2.1_hiera_tiny"`, `"masklet-nano-synthetic"`);
- a path to a model-override file (`{"base": ..., "image_size": ..., "hiera": {...}}`, the
  format of `--config-json`), relative to the recipe's folder;
- such an override object inline, or a full ModelConfig as `ModelConfig.to_dict` writes it
  (what runs store).
The `config` of a run's last.pt and the `train_config` of its model.pt are recipes too.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from masklet.config import DEFAULT_MODEL, ModelConfig
from masklet.errors import InvalidInputError
from masklet.train.config import TrainConfig
from masklet.train.loss import LossWeights

# Sub-configs of ModelConfig that a model-override object may change field by field.
_SECTIONS = ("neck", "mask_decoder", "memory_attention", "memory_encoder")
# Keys a checkpoint holds its recipe under: model.pt, last.pt.
_CHECKPOINT_KEYS = ("train_config", "config")


def recipe_dict(config: TrainConfig) -> dict[str, Any]:
    """`config` as a JSON-able recipe (a ModelConfig as its full dict)."""
    data = dataclasses.asdict(config)
    if isinstance(config.model, ModelConfig):
        data["model"] = config.model.to_dict()
    return json.loads(json.dumps(data))  # tuples -> lists, as a file would hold them


def config_from_recipe(data: Mapping[str, Any], base_dir: Path | None = None) -> TrainConfig:
    """A TrainConfig from a recipe object; unknown names raise InvalidInputError."""
    fields = _known_fields(data, TrainConfig, what="training", whole="a recipe")
    if "loss" in fields:
        fields["loss"] = _loss_weights(fields["loss"])
    if fields.get("model") is not None:
        fields["model"] = model_from_recipe(fields["model"], base_dir)
    return TrainConfig(**fields)


def _loss_weights(data: Any) -> LossWeights:
    return LossWeights(**_known_fields(data, LossWeights, what="loss", whole="recipe 'loss'"))


def _known_fields(data: Any, cls: type, *, what: str, whole: str) -> dict[str, Any]:
    """`data` as keyword arguments of the dataclass `cls`; anything else raises, naming the
    unknown settings and the known ones."""
    if not isinstance(data, Mapping):
        raise InvalidInputError(f"{whole} must be a JSON object of settings, got {data!r}")
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise InvalidInputError(
            f"unknown {what} setting(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}"
        )
    return dict(data)


def model_from_recipe(spec: Any, base_dir: Path | None = None) -> str | ModelConfig:
    """The `model` of a recipe: a name stays a name; a .json path, an override object or a
    full config dict becomes a ModelConfig."""
    if isinstance(spec, str):
        if not spec.endswith(".json"):
            return spec
        path = Path(spec)
        if not path.is_absolute() and base_dir is not None and (base_dir / path).is_file():
            path = base_dir / path
        return model_config_from_json(path)
    if isinstance(spec, Mapping):
        if set(spec) != {f.name for f in dataclasses.fields(ModelConfig)}:
            return model_config_from_spec(spec)  # overrides of an official variant
        return ModelConfig.from_dict(dict(spec))  # every field: a stored config
    raise InvalidInputError(f"recipe 'model' must be a name, a .json path or an object: {spec!r}")


def model_config_from_spec(spec: Mapping[str, Any], where: str = "model config") -> ModelConfig:
    """An official variant (`base`, default sam2.1_hiera_tiny) with the given fields replaced:
    `{"base": ..., "image_size": 256, "hiera": {"embed_dim": 32}, "neck": {...}, ...}`."""
    spec = dict(spec)
    cfg = ModelConfig.named(str(spec.pop("base", DEFAULT_MODEL)))
    try:
        if "hiera" in spec:
            cfg = cfg.with_trunk(**_tuples(spec.pop("hiera")))
        for section in _SECTIONS:
            if section in spec:
                sub = dataclasses.replace(getattr(cfg, section), **_tuples(spec.pop(section)))
                cfg = dataclasses.replace(cfg, **{section: sub})
        return dataclasses.replace(cfg, **_tuples(spec))
    except TypeError as exc:  # an unknown field name
        raise InvalidInputError(f"{where}: {exc}; see masklet.config for the field names") from exc


def model_config_from_json(path: str | Path) -> ModelConfig:
    """A ModelConfig from a JSON file of overrides (see `model_config_from_spec`)."""
    file = Path(path)
    spec = _read_json(file, "model config")
    if not isinstance(spec, dict):
        raise InvalidInputError(f"{file}: expected a JSON object of config fields")
    return model_config_from_spec(spec, where=str(file))


def _tuples(fields: Any) -> dict[str, Any]:
    """JSON lists become the tuples the frozen configs hold."""
    if not isinstance(fields, dict):
        raise InvalidInputError(f"expected an object of config fields, got {fields!r}")
    return {k: tuple(v) if isinstance(v, list) else v for k, v in fields.items()}


def _read_json(file: Path, what: str) -> Any:
    try:
        return json.loads(file.read_text())
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InvalidInputError(f"cannot read {what} {file}: {exc}") from exc


def read_recipe(path: str | Path) -> TrainConfig:
    """A recipe file (.json), or the recipe stored in a run's model.pt / last.pt."""
    file = Path(path)
    if file.suffix in {".pt", ".pth"}:
        return config_from_recipe(_checkpoint_recipe(file), file.parent)
    return config_from_recipe(_read_json(file, "recipe"), file.parent)


def _checkpoint_recipe(file: Path) -> Any:
    try:
        state = torch.load(file, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError) as exc:
        raise InvalidInputError(f"cannot read recipe from checkpoint {file}: {exc}") from exc
    stored = next(
        (state[k] for k in _CHECKPOINT_KEYS if isinstance(state, dict) and k in state), None
    )
    if stored is None:
        raise InvalidInputError(
            f"{file} stores no training config (only runs of masklet train do); pass a recipe .json"
        )
    return json.loads(stored) if isinstance(stored, str) else stored


def write_recipe(config: TrainConfig, path: str | Path) -> None:
    """Write `config` as a recipe file that `read_recipe` reads back to an equal config."""
    Path(path).write_text(json.dumps(recipe_dict(config), indent=2) + "\n")
