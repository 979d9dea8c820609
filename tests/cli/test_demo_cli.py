"""`masklet demo`: writes the synthetic clip and prints a runnable command."""

from __future__ import annotations

import stat
from pathlib import Path

import av
import pytest

from masklet.cli.main import main


def test_demo_writes_a_playable_clip_with_click_points(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "demo.mp4"
    assert main(["demo", str(out), "--frames", "12"]) == 0
    printed = capsys.readouterr().out
    assert "--click-coordinates" in printed and "masklet-nano-synthetic" in printed
    with av.open(str(out)) as container:
        stream = container.streams.video[0]
        frames = sum(1 for _ in container.decode(stream))
        assert (stream.width, stream.height, frames) == (256, 192, 12)
    assert stat.S_IMODE(out.stat().st_mode) & 0o044  # readable by others, like a normal file


def test_demo_rejects_a_non_video_name(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", str(tmp_path / "demo.gif")]) == 2
    assert "demo.gif" in capsys.readouterr().err
    assert not (tmp_path / "demo.gif").exists()
