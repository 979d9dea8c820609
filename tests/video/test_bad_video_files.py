"""Files that are not (whole) videos get one error that names the problem and the fix, the
same through the Python API and `masklet video`; a truncated file is refused when opened (the
documented choice in video/video_file.py), before any model work and without outputs."""

from __future__ import annotations

import re
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from masklet.cli.main import main
from masklet.errors import InvalidInputError
from masklet.video.frames import open_frames
from tests.video.clips import encode


def truncated(folder: Path) -> Path:
    """A fast-start MP4 (index first, as streaming tools write) cut at 45 %: it opens, but the
    data of the later frames is missing."""
    whole = encode(folder / "whole.mp4", 48, gop=12)
    fast = folder / "fast.mp4"  # a stream copy with the moov box moved to the front
    with (
        av.open(str(whole)) as inp,
        av.open(str(fast), "w", options={"movflags": "faststart"}) as out,
    ):
        stream = out.add_stream_from_template(inp.streams.video[0])
        for packet in inp.demux(video=0):
            if packet.size:
                packet.stream = stream
                out.mux(packet)
    data = fast.read_bytes()
    cut = folder / "cut.mp4"
    cut.write_bytes(data[: int(len(data) * 0.45)])
    return cut


def sound_only(path: Path) -> Path:
    """An M4A with one second of AAC and no pictures."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream("aac", rate=48000, layout="mono")
        samples = np.sin(np.arange(48000) / 10).astype(np.float32)[None]  # [1, S]
        frame = av.AudioFrame.from_ndarray(samples, format="fltp", layout="mono")
        frame.sample_rate = 48000
        container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return path


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
