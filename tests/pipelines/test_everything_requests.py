"""Segment everything as one more pipeline request: the CLI, the HTTP API and the Python API
give the same regions, and video discovery tracks what it finds (bundled model, whose masks
are real: it needs lower thresholds than the reference's defaults, see its model card)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from masklet.checkpoints import load_model
from masklet.cli import image as image_cli
from masklet.cli import video as video_cli
from masklet.cli.main import main
from masklet.io.masks import decode_rle
from masklet.pipelines import ImageRequest, prepare_image, segment_image
from masklet.pipelines.requests import EverythingQuery
from masklet.server.app import create_app
from masklet.server.settings import ServerSettings
from masklet.train.synthetic import make_demo_video

SETTINGS = {"points_per_side": 8, "pred_iou_thresh": 0.5, "stability_score_thresh": 0.5}
FLAGS = ["--everything", "--points-per-side", "8", "--pred-iou-thresh", "0.5",
         "--stability-score-thresh", "0.5"]  # fmt: skip


@pytest.fixture(scope="module")
def nano() -> Any:
    return load_model("masklet-nano-synthetic")


@pytest.fixture(scope="module")
def shapes(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, np.ndarray]]:
    """A dark image with a bright square and a bright disc, and their true masks."""
    h, w = 96, 128
    yy, xx = np.mgrid[:h, :w]
    truth = {
        "square": (xx >= 14) & (xx < 50) & (yy >= 20) & (yy < 56),
        "disc": (xx - 92) ** 2 + (yy - 50) ** 2 < 18**2,
    }
    image = np.full((h, w, 3), 25, np.uint8)
    image[truth["square"]] = (230, 190, 40)
    image[truth["disc"]] = (60, 170, 240)
    path = tmp_path_factory.mktemp("shapes") / "shapes.png"
    Image.fromarray(image).save(path)
    return path, truth


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max((a | b).sum(), 1))


def test_everything_is_the_same_through_cli_http_and_python(
    shapes: tuple[Path, dict[str, np.ndarray]], nano: Any, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch, capsys: Any,
) -> None:  # fmt: skip
    path, truth = shapes
    prepared = prepare_image(ImageRequest(image=path, everything=EverythingQuery(**SETTINGS)))
    python = segment_image(prepared, nano).record
    found = python.masks()
    assert found and all(m.any() for m in found.values())
    assert set(python.names().values()) == {f"region_{k}" for k in range(1, len(found) + 1)}
    for name, mask in truth.items():  # each shape is one of the regions
        assert max(iou(mask, m) for m in found.values()) >= 0.8, name

    monkeypatch.setattr(image_cli, "load_model_from_args", lambda args: nano)
    js = tmp_path / "m.json"
    assert main(["image", str(path), *FLAGS, "--json", str(js)]) == 0, capsys.readouterr().err
    cli = {
        r["id"]: decode_rle(r["segmentation"]) for r in json.loads(js.read_text())["annotations"]
    }

    settings = ServerSettings(data_dir=tmp_path / "data", model_factory=lambda _: nano)
    with TestClient(create_app(settings)) as client:
        response = client.post(
            "/v1/images:segment", files={"image": ("s.png", path.read_bytes(), "image/png")},
            data={"prompts": json.dumps({"everything": SETTINGS})},
        )  # fmt: skip
    assert response.status_code == 200, response.text
    http = {o["id"]: decode_rle(o["mask"]) for o in response.json()["objects"]}
    assert cli.keys() == http.keys() == found.keys()
    for obj_id, mask in found.items():
        assert np.array_equal(cli[obj_id], mask) and np.array_equal(http[obj_id], mask)


def test_video_everything_discovers_and_tracks(
    nano: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    from masklet.io.video import VideoWriter
    from masklet.train.synthetic import demo_config, make_video

    clip = tmp_path / "demo.mp4"  # the clip tests/everything/test_video.py tracks
    with VideoWriter(clip, fps=24, size=(256, 192)) as writer:
        for frame in make_video(0, demo_config(8, (256, 192))).frames:
            writer.write(frame)
    monkeypatch.setattr(video_cli, "load_model_from_args", lambda args: nano)
    js = tmp_path / "v.json"
    flags = [*FLAGS[:2], "16", *FLAGS[3:]]  # a finer grid on the 256x192 clip
    code = main(["video", str(clip), *flags, "--everything-every", "4", "--json", str(js)])
    assert code == 0, capsys.readouterr().err
    data = json.loads(js.read_text())
    assert [f["frame"] for f in data["frames"]] == list(range(8))
    assert len(data["objects"]) >= 2  # both demo objects are discovered
    first = {a["id"]: decode_rle(a["segmentation"]) for a in data["frames"][0]["annotations"]}
    assert sum(m.any() for m in first.values()) >= 2


def test_video_everything_gives_an_entering_object_a_new_id_within_n_frames(
    nano: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    """Issue 18's proof through the CLI: `masklet video --everything --everything-every N` on a
    demo clip where an object comes into view after the first frame; by the first round at or
    after it enters (within N frames) it is tracked under an id no earlier frame had."""
    from masklet.io.video import VideoWriter
    from masklet.train.synthetic import demo_config, make_video

    start, frames, every = 22, 10, 4  # demo clip 2: object 1 re-enters the view on frame 30
    video = make_video(2, demo_config(48, (256, 192)))
    entering = video.masks[start : start + frames, 0].astype(bool)  # [T, H, W]
    enters = int(np.flatnonzero(entering.sum(axis=(1, 2)) > 0)[0])
    assert 0 < enters < frames  # absent on the first frame, then in view
    clip = tmp_path / "enters.mp4"
    with VideoWriter(clip, fps=24, size=(256, 192)) as writer:
        for frame in video.frames[start : start + frames]:
            writer.write(frame)
    monkeypatch.setattr(video_cli, "load_model_from_args", lambda args: nano)
    js = tmp_path / "v.json"
    flags = [*FLAGS[:2], "16", *FLAGS[3:]]  # a finer grid on the 256x192 clip
    code = main(["video", str(clip), *flags, "--everything-every", str(every), "--json", str(js)])
    assert code == 0, capsys.readouterr().err
    data = json.loads(js.read_text())
    assert [f["frame"] for f in data["frames"]] == list(range(frames))
    per_frame = [
        {a["id"]: decode_rle(a["segmentation"]).astype(bool) for a in f["annotations"]}
        for f in data["frames"]
    ]
    earlier = set().union(*(set(m) for m in per_frame[:enters]))
    assert earlier, "nothing was found on the first frames"
    found_on = next(
        (t for t in range(enters, frames)
         if any(i not in earlier and iou(m, entering[t]) >= 0.7 for i, m in per_frame[t].items())),
        None,
    )  # fmt: skip
    assert found_on is not None and found_on - enters < every, (enters, found_on)


@pytest.mark.parametrize(
    ("extra", "needle"),
    [(["--text", "a dog."], "not both"), (["--everything-every", "0"], "at least 1 frame"),
     (["--points-per-side", "0"], "points_per_side")],
)  # fmt: skip
def test_bad_everything_requests_fail_before_the_model(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any, extra: list[str], needle: str
) -> None:
    clip = tmp_path / "demo.mp4"
    make_demo_video(clip, seed=0, num_frames=4)
    monkeypatch.setattr(video_cli, "load_model_from_args", lambda args: pytest.fail("loaded"))
    code = main(["video", str(clip), "--everything", *extra, "--json", str(tmp_path / "v.json")])
    err = capsys.readouterr().err
    assert code == 2 and needle in err and len(err.strip().splitlines()) == 1, err
