"""Progress is reported for every frame; a cancel stops within one frame and leaves no file
under a final name."""

from __future__ import annotations

from pathlib import Path

import pytest

from masklet.modeling.sam2 import SAM2Model
from masklet.pipelines import (
    CancelledError,
    CancelToken,
    ImageRequest,
    Progress,
    VideoOutputs,
    VideoRequest,
    prepare_image,
    prepare_video,
    segment_image,
    track_video,
)
from masklet.prompts import ObjectPrompt
from masklet.video.predictor import VideoPredictor
from tests.server.conftest import FRAMES, moving_square


@pytest.fixture
def clip(tmp_path: Path, video_bytes: bytes) -> Path:
    path = tmp_path / "in" / "clip.mp4"
    path.parent.mkdir()
    path.write_bytes(video_bytes)
    return path


def request(clip: Path, out: Path, direction: str = "both") -> VideoRequest:
    prompts = [
        ObjectPrompt(frame=2, obj_id=1, name="square", points=[[20, 24]], where="prompts[0]"),
        ObjectPrompt(frame=2, obj_id=2, name="corner", box=[0, 0, 10, 10], where="prompts[1]"),
    ]
    outputs = VideoOutputs(overlay=out / "o.mp4", masks_dir=out / "masks", json=out / "m.json")
    return VideoRequest(source=clip, prompts=prompts, direction=direction, outputs=outputs)  # type: ignore[arg-type]


def test_progress_reports_every_frame(clip: Path, tmp_path: Path, tiny_model: SAM2Model) -> None:
    out = tmp_path / "out"
    steps: list[Progress] = []
    prepared = prepare_video(request(clip, out))
    try:
        summary = track_video(prepared, VideoPredictor(tiny_model), progress=steps.append)
    finally:
        prepared.close()
    assert [s.done for s in steps] == list(range(1, FRAMES + 1))
    assert all(s.total == FRAMES and s.objects == 2 for s in steps)
    # "both" from frame 2: forward 2..4, then backward 1, 0
    assert [s.frame for s in steps] == [2, 3, 4, 1, 0]
    assert summary.frames_tracked == FRAMES and summary.names == {1: "square", 2: "corner"}
    assert sorted(p.name for p in out.iterdir()) == ["m.json", "masks", "o.mp4"]


@pytest.mark.parametrize("k", [1, 3])
def test_cancel_after_frame_k_stops_there_and_publishes_nothing(
    clip: Path, tmp_path: Path, tiny_model: SAM2Model, k: int
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    cancel = CancelToken()
    steps: list[Progress] = []

    def progress(step: Progress) -> None:
        steps.append(step)
        if step.done == k:
            cancel.cancel()

    prepared = prepare_video(request(clip, out))
    with pytest.raises(CancelledError):
        try:
            track_video(prepared, VideoPredictor(tiny_model), progress=progress, cancel=cancel)
        finally:
            prepared.close()
    assert len(steps) == k  # not one frame more
    assert list(out.iterdir()) == []  # no output, no partial file, no staging folder
    assert sorted(p.name for p in clip.parent.iterdir()) == ["clip.mp4"]


def test_a_cancelled_image_job_does_no_model_work(tiny_model: SAM2Model) -> None:
    cancel = CancelToken()
    cancel.cancel()
    prompts = [ObjectPrompt(frame=0, obj_id=1, name="", points=[[20, 20]], where="prompts[0]")]
    prepared = prepare_image(ImageRequest(image=moving_square(1)[0], prompts=prompts))
    with pytest.raises(CancelledError):
        segment_image(prepared, tiny_model, cancel=cancel)
    steps: list[Progress] = []
    result = segment_image(prepared, tiny_model, progress=steps.append)
    assert [(s.done, s.total) for s in steps] == [(1, 1)]
    assert result.record.obj_ids == [1]
