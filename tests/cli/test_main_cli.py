"""`masklet` itself: help without PyTorch, command descriptions, errors in CLI words."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from masklet.cli.main import _COMMANDS, build_parser, main

_PROBE = """
import sys
from masklet.cli.main import main
try:
    main(sys.argv[1:])
except SystemExit:
    pass
heavy = sorted(name for name in ("torch", "numpy", "av", "scipy") if name in sys.modules)
print("IMPORTED:" + ",".join(heavy))
"""


def _imported_by(*argv: str) -> tuple[list[str], str]:
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, *argv], capture_output=True, text=True, check=True
    )
    marker = done.stdout.strip().splitlines()[-1]
    assert marker.startswith("IMPORTED:")
    return [name for name in marker.removeprefix("IMPORTED:").split(",") if name], done.stdout


@pytest.mark.parametrize(
    "argv",
    [["--help"], ["models"], ["demo", "--help"], [], ["image", "--help"], ["video", "--help"],
     ["batch", "--help"]],
)  # fmt: skip
def test_help_and_models_do_not_import_torch(argv: list[str]) -> None:
    imported, out = _imported_by(*argv)
    assert "torch" not in imported, f"masklet {' '.join(argv)} imported {imported}"
    if argv == ["--help"]:
        for command in _COMMANDS:
            assert command in out  # every command is listed, without importing its module
    if argv == ["models"]:
        assert "masklet-nano-synthetic" in out and "sam2.1_hiera_tiny" in out


def test_import_masklet_is_lazy_and_still_exports_the_api() -> None:
    code = (
        "import sys, masklet; assert 'torch' not in sys.modules; "
        "masklet.load_model; masklet.ImagePredictor; assert 'torch' in sys.modules; "
        "print(sorted(set(masklet.__all__) - set(dir(masklet))))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


@pytest.mark.parametrize("command", ["models", "demo", "image", "video", "download", "eval"])
def test_every_command_has_a_description(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main([command, "--help"])
    out = capsys.readouterr().out
    description = build_parser(command)._subparsers._group_actions[0].choices[command].description  # type: ignore[union-attr]
    assert description and len(description) > 20
    assert " ".join(description.split())[:40] in " ".join(out.split())


def test_top_level_help_lists_every_command_with_a_summary(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as stopped:
        main(["--help"])
    assert stopped.value.code == 0
    out = capsys.readouterr().out
    for name, command in _COMMANDS.items():
        assert name in out and command.summary.split()[0] in out


def test_a_typo_is_a_usage_error_listing_the_commands(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stopped:
        main(["imgae", "x.jpg"])
    assert stopped.value.code == 2
    err = capsys.readouterr().err
    assert "imgae" in err and "image" in err and "video" in err


def test_full_parser_still_parses_every_command() -> None:
    parser = build_parser()
    assert parser.parse_args(["models"]).command == "models"
    assert parser.parse_args(["demo", "x.mp4"]).command == "demo"


def test_a_photo_as_checkpoint_is_called_what_it_is(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    photo = tmp_path / "photo.jpg"
    Image.new("RGB", (32, 24), (10, 200, 30)).save(photo)
    code = main(["image", str(photo), "--point", "5,5", "--checkpoint", str(photo)])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1
    assert "photo.jpg is not a checkpoint: it is a JPEG image" in err
    assert "--checkpoint takes the path of" in err and "--model" in err
    assert "download it again" not in err and "load_model(" not in err


def test_offline_errors_use_the_flag_and_suggest_the_bundled_model(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from masklet import checkpoints

    monkeypatch.setenv("MASKLET_CACHE", str(tmp_path))

    def offline(*args: object, **kwargs: object) -> None:
        raise OSError("network is unreachable")

    monkeypatch.setattr(checkpoints, "_open_url", offline)
    monkeypatch.setattr(checkpoints, "_hf_download", offline)
    assert main(["download", "sam2.1_hiera_tiny"]) == 2
    err = capsys.readouterr().err
    info = checkpoints.checkpoint_info("sam2.1_hiera_tiny")
    assert f"{info.url}: network is unreachable" in err
    assert "--checkpoint PATH" in err and "load_model(" not in err
    assert "masklet-nano-synthetic" in err


def test_download_of_the_bundled_model_is_its_file(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["download", "masklet-nano-synthetic"]) == 0
    path = Path(capsys.readouterr().out.split(": ", 1)[1].strip())
    assert path.is_file() and path.suffix == ".pt"
