"""`masklet train`: train or fine-tune a model with SAM 2's scheme (see masklet.train.trainer).

The setting flags are generated from `TrainConfig` (and `LossWeights` as --loss-NAME), so
their help and defaults come from one place. `--config RECIPE` starts from a saved recipe;
flags given on the command line override it.
"""

from __future__ import annotations

import argparse
import dataclasses
import typing
from typing import Any

from masklet.config import DEFAULT_MODEL
from masklet.errors import InvalidInputError
from masklet.train.config import TrainConfig
from masklet.train.loss import LossWeights
from masklet.train.recipe import model_config_from_json, read_recipe, write_recipe

__all__ = ["add_parser", "model_config_from_json", "run", "settings_from_args"]

# Flag names kept from before the flags were generated: field -> old flag (shown first).
_OLD_NAMES = {
    "init_checkpoint": "--init",
    "num_correction_rounds": "--corrections",
    "max_frames_to_correct": "--correct-frames",
    "random_cond_corrections": "--random-corrections",
    "out_dir": "--out",
}
# Fields with a flag of their own below (the model has two ways to be given).
_SPECIAL = {"model", "loss"}
_LOSS_PREFIX = "loss_"


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "train",
        help="train or fine-tune a model on videos or images (SAM 2's scheme)",
        description="Train with simulated clicks, boxes and masks, corrective clicks and "
        "memory tracking. Writes OUT/last.pt (resumable) and OUT/model.pt ({'model': ...}), "
        "both with the run's full settings. Every setting below can also come from a recipe "
        "(--config); flags override it.",
    )
    p.add_argument(
        "--config", metavar="RECIPE", default=None,
        help="start from a saved recipe: a JSON file of the settings below (e.g. "
        "docs/recipes/), or an earlier run's model.pt / last.pt",
    )  # fmt: skip
    _add_model_choice(p)
    settings = p.add_argument_group("training settings (default: TrainConfig's)")
    for f in dataclasses.fields(TrainConfig):
        if f.name not in _SPECIAL:
            _add_setting(settings, f, f.name)
    loss = p.add_argument_group("loss weights")
    for f in dataclasses.fields(LossWeights):
        _add_setting(loss, f, _LOSS_PREFIX + f.name)
    _add_run_control(p)
    p.set_defaults(run=run)


def _add_model_choice(p: argparse.ArgumentParser) -> None:
    """--model or --config-json: which architecture to train."""
    model = p.add_mutually_exclusive_group()
    model.add_argument(
        "--model", default=argparse.SUPPRESS, metavar="NAME",
        help="variant or bundled model name (default: the model the --init checkpoint was "
        f"made for, else {DEFAULT_MODEL})",
    )  # fmt: skip
    model.add_argument(
        "--config-json", default=argparse.SUPPRESS, metavar="JSON",
        help="JSON file of ModelConfig overrides: {\"base\": VARIANT, \"image_size\": N, "
        "\"hiera\": {...}, ...}",
    )  # fmt: skip


def _add_run_control(p: argparse.ArgumentParser) -> None:
    """Flags about this run rather than the recipe: progress, stopping early, saving it."""
    p.add_argument(
        "--quiet", dest="progress", action="store_false", default=argparse.SUPPRESS,
        help="no progress bar (same as --no-progress)",
    )  # fmt: skip
    p.add_argument(
        "--stop-at", type=int, default=None, metavar="STEP",
        help="end after this step (writing OUT/last.pt) as an interruption would, keeping the "
        "--steps schedule; continue later with --resume",
    )  # fmt: skip
    p.add_argument(
        "--save-recipe", default=None, metavar="PATH",
        help="write the settings (recipe, flags applied) to PATH as JSON and exit",
    )  # fmt: skip


def _add_setting(group: argparse._ArgumentGroup, f: dataclasses.Field, dest: str) -> None:  # type: ignore[type-arg]
    """One flag for a dataclass field: its type, help and default come from the field."""
    cls = LossWeights if dest.startswith(_LOSS_PREFIX) else TrainConfig
    kind = typing.get_type_hints(cls)[f.name]
    optional = type(None) in typing.get_args(kind)
    if optional:
        kind = next(a for a in typing.get_args(kind) if a is not type(None))
    default = getattr(cls(), f.name)
    flags = [f"--{dest.replace('_', '-')}"]
    if dest in _OLD_NAMES:
        flags.insert(0, _OLD_NAMES[dest])
    help_text = f"{f.metadata.get('help', '')} (default: {default})"
    common: dict[str, Any] = {"dest": dest, "default": argparse.SUPPRESS, "help": help_text}
    if kind is bool:
        group.add_argument(*flags, action=argparse.BooleanOptionalAction, **common)
        return
    if kind not in (int, float, str):
        raise TypeError(f"TrainConfig.{f.name}: no flag for type {kind}")  # a new field's type
    group.add_argument(*flags, type=kind, metavar=f.name.upper(), **common)


def settings_from_args(args: argparse.Namespace) -> TrainConfig:
    """The run's TrainConfig: the recipe (or the defaults), then every flag given."""
    base = read_recipe(args.config) if args.config else TrainConfig()
    given = vars(args)
    fields = {
        f.name: given[f.name]
        for f in dataclasses.fields(TrainConfig)
        if f.name not in _SPECIAL and f.name in given
    }
    loss = {
        f.name: given[_LOSS_PREFIX + f.name]
        for f in dataclasses.fields(LossWeights)
        if _LOSS_PREFIX + f.name in given
    }
    if loss:
        fields["loss"] = dataclasses.replace(base.loss, **loss)
    if "model" in given:
        fields["model"] = given["model"]
    elif "config_json" in given:
        fields["model"] = model_config_from_json(given["config_json"])
    return dataclasses.replace(base, **fields)


def run(args: argparse.Namespace) -> int:
    from masklet.train.data import open_dataset
    from masklet.train.start import model_config, resolve_model
    from masklet.train.trainer import train

    config = settings_from_args(args)
    config.validate()
    if args.save_recipe:
        write_recipe(config, args.save_recipe)
        print(f"wrote {args.save_recipe}")
        return 0
    if args.stop_at is not None and args.stop_at < 1:
        raise InvalidInputError(f"--stop-at must be at least 1, got {args.stop_at}")
    config = resolve_model(config)  # the init checkpoint's own model unless one is given
    dataset = open_dataset(
        config.data, model_config(config.model).image_size, num_frames=config.num_frames,
        seed=config.seed,
        num_synthetic=config.num_synthetic, occlusion_prob=config.occlusion_prob,
    )  # fmt: skip
    result = train(config, dataset, stop_at=args.stop_at, log=print)
    if result.losses:
        print(f"step {result.step}: loss {result.losses[-1]:.4f}")
    if result.model_path is None:
        print(f"stopped at step {result.step} of {config.steps}: wrote {result.checkpoint}; "
              "continue with --resume")  # fmt: skip
    else:
        print(f"wrote {result.model_path}")
    return 0
