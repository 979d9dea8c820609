"""Files that are not (whole) videos get one error that names the problem and the fix, the
same through the Python API and `masklet video`; a truncated file is refused when opened (the
documented choice in video/video_file.py), before any model work and without outputs."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from masklet.cli.main import main
from masklet.errors import InvalidInputError
from masklet.video.frames import open_frames
from tests.video.clips import sound_only, truncated


def bad_files(folder: Path) -> dict[str, tuple[Path, str]]:
    """name -> (file, what its error must say)."""
    picture = (np.arange(48 * 64 * 3) % 251).astype(np.uint8).reshape(48, 64, 3)
    Image.fromarray(picture).save(folder / "photo.png")
    Image.fromarray(picture).save(folder / "photo.jpg")
    (folder / "notes.txt").write_text("shopping: milk, eggs\n")
    (folder / "empty.mp4").write_bytes(b"")
    return {
        "png": (folder / "photo.png", r"is an image \(PNG\), not a video.*masklet image"),
        "jpeg": (folder / "photo.jpg", r"is an image \(JPG\), not a video.*masklet image"),
        "text": (folder / "notes.txt", r"not a video FFmpeg can read.*MP4/MOV/MKV"),
        "empty": (folder / "empty.mp4", r"is empty \(0 bytes\)"),
        "audio": (sound_only(folder / "sound.m4a"), r"no video stream \(it holds audio streams"),
        "truncated": (truncated(folder), r"truncated.*stops after \d+ frames of the 48.*ffmpeg -i"),
    }


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, str]]:
    return bad_files(tmp_path_factory.mktemp("bad"))


@pytest.mark.parametrize("kind", ["png", "jpeg", "text", "empty", "audio", "truncated"])
def test_python_api_names_the_problem(files: dict[str, tuple[Path, str]], kind: str) -> None:
    path, message = files[kind]
    with pytest.raises(InvalidInputError, match=message) as error:
        open_frames(path)
    assert "Errno" not in str(error.value)
    assert "no frame could be decoded" not in str(error.value)


@pytest.mark.parametrize("kind", ["png", "text", "truncated"])
def test_cli_says_the_same_before_any_work(
    files: dict[str, tuple[Path, str]],
    kind: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    path, message = files[kind]
    out = tmp_path / "out.json"
    code = main(["video", str(path), "--click-coordinates", "[5,5]", "--json", str(out)])
    err = capsys.readouterr().err
    assert code == 2
    assert len(err.strip().splitlines()) == 1
    assert re.search(message, err), err
    assert not out.exists()
