"""The server opens uploads with the same frame source as the CLI and the Python API: a
lossless trim has the decoder's frame count and per-frame times, a truncated file is refused
with the same message."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from tests.video.clips import cut_editlist, presented, truncated


def test_trimmed_upload_has_the_decoders_frames_and_times(
    client: TestClient, tmp_path: Path
) -> None:
    clip = cut_editlist(tmp_path)
    expected = presented(clip)
    assert expected.packets > len(expected.frames)  # an edit list hides packets
    response = client.post("/v1/sessions", files={"video": ("trim.mp4", clip.read_bytes())})
    assert response.status_code == 201, response.text
    info = response.json()
    assert info["num_frames"] == len(expected.frames)
    for index in (0, 7, len(expected.frames) - 1):
        masks = client.get(f"/v1/sessions/{info['id']}/masks/{index}").json()
        assert masks["frame"] == index
        assert masks["time"] == pytest.approx(expected.times[index], abs=1e-9)


def test_truncated_upload_is_refused_like_the_cli(client: TestClient, tmp_path: Path) -> None:
    cut = truncated(tmp_path)
    response = client.post("/v1/sessions", files={"video": ("cut.mp4", cut.read_bytes())})
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["field"] == "video"
    assert "truncated" in error["message"] and "of the 48" in error["message"]
    assert "ffmpeg -i in.mp4 repaired.mp4" in error["message"]
