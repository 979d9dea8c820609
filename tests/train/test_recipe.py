"""Recipes: a TrainConfig as JSON, read back equal; the nano model's recipe equals its commands."""

from __future__ import annotations

import dataclasses
import re
import shlex
from pathlib import Path

import pytest

from masklet.cli.main import build_parser
from masklet.cli.train import settings_from_args
from masklet.config import ModelConfig
from masklet.errors import InvalidInputError
from masklet.train.config import TrainConfig
from masklet.train.loss import LossWeights
from masklet.train.recipe import config_from_recipe, read_recipe, recipe_dict, write_recipe
from tests.train.test_trainer import tiny_config

ROOT = Path(__file__).resolve().parents[2]
MODEL_CARD = ROOT / "docs" / "model-cards" / "masklet-nano-synthetic.md"
RECIPES = sorted((ROOT / "docs" / "recipes").glob("masklet-nano-synthetic-*.json"))


def _card_commands() -> list[list[str]]:
    """The `masklet train` commands of the model card's "exact commands" block, as argv."""
    text = MODEL_CARD.read_text()
    section = text[text.index("## Training (exact commands)") :]
    block = section[section.index("```bash") + len("```bash") : section.index("```\n", 10)]
    joined = block.replace("\\\n", " ")
    cfg = re.search(r"^CFG=(\S+)", joined, re.M)
    assert cfg is not None
    commands = []
    for line in joined.splitlines():
        line = line.split("#")[0].strip()
        if line.startswith("masklet train"):
            commands.append(shlex.split(line.replace("$CFG", cfg.group(1)))[1:])
    return commands


def _settings(argv: list[str]) -> TrainConfig:
    return settings_from_args(build_parser().parse_args(argv))


def test_nano_recipe_files_equal_the_model_cards_commands(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)  # the commands name docs/... from the repository root
    commands = _card_commands()
    assert len(commands) == 4 and len(RECIPES) == 4
    for argv, recipe in zip(commands, RECIPES, strict=True):
        from_flags = _settings(argv)
        from_recipe = _settings(["train", "--config", str(recipe.relative_to(ROOT))])
        assert from_recipe == from_flags, recipe.name
        assert isinstance(from_recipe.model, ModelConfig) and from_recipe.model.image_size == 128
        assert from_recipe != TrainConfig(model=from_recipe.model)  # the recipe changes things


def test_a_recipe_reads_back_equal_and_flags_override_it(tmp_path: Path) -> None:
    cfg = TrainConfig(
        model=tiny_config(), steps=7, lr=0.5, min_lr_ratio=0.3, max_objects=5,
        loss=LossWeights(focal=3.0, iou_use_l1=False), occlusion_prob=0.4,
    )  # fmt: skip
    path = tmp_path / "r.json"
    write_recipe(cfg, path)
    assert read_recipe(path) == cfg
    over = _settings(["train", "--config", str(path), "--lr", "0.01", "--loss-dice", "2"])
    assert over == dataclasses.replace(cfg, lr=0.01, loss=dataclasses.replace(cfg.loss, dice=2.0))


def test_every_setting_is_reachable_from_the_command_line() -> None:
    """Each TrainConfig and LossWeights field, given a non-default value by its flag."""
    defaults = TrainConfig()
    for cls, prefix, base in ((TrainConfig, "", defaults), (LossWeights, "loss_", defaults.loss)):
        for f in dataclasses.fields(cls):
            if f.name in ("model", "loss"):
                continue
            flag = "--" + (prefix + f.name).replace("_", "-")
            value = getattr(base, f.name)
            if isinstance(value, bool):
                argv, expected = [flag if not value else "--no-" + flag[2:]], not value
            elif f.name == "device":
                argv, expected = [flag, "cpu"], "cpu"
            elif isinstance(value, str) or value is None and f.name != "occlusion_prob":
                argv, expected = [flag, "x.pt"], "x.pt"
            elif isinstance(value, int):
                argv, expected = [flag, str(value + 1)], value + 1
            else:  # floats (occlusion_prob defaults to None)
                new = 0.5 if value is None else value * 0.5 + 0.125
                argv, expected = [flag, str(new)], new
            got = _settings(["train", *argv])
            got_value = getattr(got.loss if prefix else got, f.name)
            assert got_value == expected, flag


def test_train_help_shows_every_option_with_its_default(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["train", "--help"])
    text = " ".join(capsys.readouterr().out.split())  # undo the help's line wrapping
    text = text[text.index("options:") :]  # the option list, not the usage line
    for f in dataclasses.fields(TrainConfig):
        if f.name in ("model", "loss"):
            continue
        flag = "--" + f.name.replace("_", "-")
        at = re.search(re.escape(flag) + r"(, --no-| [A-Z_]+ )", text)  # its entry
        assert at is not None, flag
        entry = text[at.start() :]
        assert f"(default: {getattr(TrainConfig(), f.name)})" in entry[:600], flag
    for f in dataclasses.fields(LossWeights):
        assert "--loss-" + f.name.replace("_", "-") in text


def test_bad_recipes_name_the_problem(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match="unknown training setting.*stepz"):
        config_from_recipe({"stepz": 3})
    with pytest.raises(InvalidInputError, match="unknown loss setting.*focul"):
        config_from_recipe({"loss": {"focul": 3}})
    with pytest.raises(InvalidInputError, match="no_such_field"):
        config_from_recipe({"model": {"base": "sam2.1_hiera_tiny", "no_such_field": 1}})
    broken = tmp_path / "broken.json"
    broken.write_text("{")
    with pytest.raises(InvalidInputError, match="cannot read recipe"):
        read_recipe(broken)
    stored = recipe_dict(TrainConfig(model=tiny_config()))
    assert config_from_recipe(stored).model == tiny_config()  # a run's stored form


def test_save_recipe_writes_the_command_lines_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from masklet.cli.main import main

    monkeypatch.chdir(ROOT)
    out = tmp_path / "saved.json"
    argv = ["train", "--config", str(RECIPES[1].relative_to(ROOT)), "--steps", "5"]
    assert main([*argv, "--save-recipe", str(out)]) == 0
    assert str(out) in capsys.readouterr().out
    assert read_recipe(out) == dataclasses.replace(_settings(argv), steps=5)
    assert not Path(read_recipe(out).out_dir).exists()  # nothing trained
