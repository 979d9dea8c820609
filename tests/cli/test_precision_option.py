"""`--precision` on the commands that run a model: parsed, applied, and `auto` says its pick."""

from __future__ import annotations

import argparse

import pytest

from masklet.cli.common import add_model_options, load_model_from_args
from masklet.cli.main import main
from masklet.precision import PRECISIONS


@pytest.mark.parametrize("command", ["image", "video", "batch", "serve"])
def test_commands_take_precision_next_to_the_model(
    command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit):
        main([command, "--help"])
    model_options = capsys.readouterr().out.split("\nmodel:", 1)[1]
    assert "--precision {fp32,bf16,fp16,auto}" in model_options


def test_auto_is_applied_and_said(capsys: pytest.CaptureFixture[str]) -> None:
    parser = argparse.ArgumentParser()
    add_model_options(parser)
    args = parser.parse_args(["--model", "masklet-nano-synthetic", "--device", "cpu",
                              "--precision", "auto"])  # fmt: skip
    model = load_model_from_args(args)
    assert model.precision.requested == "auto" and model.precision.mode.value in PRECISIONS
    assert f"auto: {model.precision.describe()}" in capsys.readouterr().err
    args = parser.parse_args(["--model", "masklet-nano-synthetic", "--precision", "fp16"])
    assert load_model_from_args(args).precision.mode.value == "fp16"
    assert capsys.readouterr().err == ""  # an explicit mode is not announced
    with pytest.raises(SystemExit):
        parser.parse_args(["--precision", "int8"])
