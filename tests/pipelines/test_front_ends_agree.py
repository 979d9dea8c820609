"""The front ends only translate: the same request through the CLI, the HTTP API and the
Python pipeline gives identical masks, scores and colours. Run on the bundled model, whose
masks on the demo clip are real (checked non-degenerate before every comparison)."""

from __future__ import annotations

import base64
import io
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
from masklet.io.masks import decode_rle, read_palette_png
from masklet.server.app import create_app
from masklet.server.settings import ServerSettings
from masklet.train.synthetic import make_demo_video
from masklet.video.frames import VideoFileSource

FRAMES = 10


@pytest.fixture(scope="module")
def nano() -> Any:
    return load_model("masklet-nano-synthetic")


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[int, tuple[int, int]]]:
    path = tmp_path_factory.mktemp("demo") / "demo.mp4"
    clicks = make_demo_video(path, seed=0, num_frames=FRAMES)
    return path, clicks


@pytest.fixture
def client(nano: Any, tmp_path: Path) -> Any:
    settings = ServerSettings(data_dir=tmp_path / "data", model_factory=lambda _: nano)
    with TestClient(create_app(settings)) as c:
        yield c


def assert_distinct_objects(masks: dict[int, np.ndarray]) -> None:
    """Not a hollow comparison: every object has pixels, and no two objects are the same."""
    assert len(masks) >= 2
    assert all(m.any() for m in masks.values())
    values = list(masks.values())
    assert all(not np.array_equal(a, b) for k, a in enumerate(values) for b in values[k + 1 :])


def png(data: str) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(data))))


def test_image_cli_and_http_give_identical_masks_scores_and_colours(
    demo: tuple[Path, dict[int, tuple[int, int]]], nano: Any, client: TestClient,
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any,
) -> None:  # fmt: skip
    clip, clicks = demo
    with VideoFileSource(clip) as source:
        frame = source.get(0)
    image = tmp_path / "frame0.png"
    Image.fromarray(frame).save(image)
    objects = [{"id": i, "points": [list(xy)], "labels": [1]} for i, xy in clicks.items()]
    (tmp_path / "p.json").write_text(
        json.dumps(
            [{"object": o["id"], "points": o["points"], "labels": o["labels"]} for o in objects]
        )
    )
    monkeypatch.setattr(image_cli, "load_model_from_args", lambda args: nano)
    out = {k: tmp_path / f"cli.{k}" for k in ("json", "png", "ids.png")}
    code = main(["image", str(image), "--prompts", str(tmp_path / "p.json"), "--json",
                 str(out["json"]), "-o", str(out["png"]), "--masks", str(out["ids.png"])])  # fmt: skip
    assert code == 0, capsys.readouterr().err
    cli = {r["id"]: r for r in json.loads(out["json"].read_text())["annotations"]}

    response = client.post(
        "/v1/images:segment", files={"image": ("f.png", image.read_bytes(), "image/png")},
        data={"prompts": json.dumps({"objects": objects, "outputs": ["overlay", "id_mask"]})},
    )  # fmt: skip
    assert response.status_code == 200, response.text
    http = {o["id"]: o for o in response.json()["objects"]}

    assert cli.keys() == http.keys() == set(clicks)
    cli_masks = {i: decode_rle(r["segmentation"]) for i, r in cli.items()}
    assert_distinct_objects(cli_masks)
    for i in clicks:
        assert np.array_equal(cli_masks[i], decode_rle(http[i]["mask"]))
        assert cli[i]["score"] == pytest.approx(http[i]["score"], abs=1e-6)
    colours = {o["color"] for o in http.values()}
    assert len(colours) == len(http)  # one colour per object, from masklet.io.overlay
    overlay = np.asarray(Image.open(out["png"]).convert("RGB"))
    assert np.array_equal(overlay, png(response.json()["overlay_png"]))
    assert not np.array_equal(overlay, frame)  # the masks are drawn
    assert np.array_equal(read_palette_png(out["ids.png"]), png(response.json()["id_mask_png"]))


def sse_frames(
    client: TestClient, url: str, body: dict[str, Any]
) -> dict[int, dict[int, np.ndarray]]:
    frames: dict[int, dict[int, np.ndarray]] = {}
    with client.stream("POST", url, json=body) as response:
        event = None
        for line in response.iter_lines():
            if line.startswith("event: "):
                event = line[7:]
            elif line.startswith("data: ") and event == "frame":
                data = json.loads(line[6:])
                frames[data["frame"]] = {o["id"]: decode_rle(o["mask"]) for o in data["objects"]}
    return frames


def test_video_cli_session_api_and_predictions_give_identical_masks(
    demo: tuple[Path, dict[int, tuple[int, int]]], nano: Any, client: TestClient,
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any,
) -> None:  # fmt: skip
    clip, clicks = demo
    coords = ",".join(f"[{x},{y}]" for x, y in clicks.values())
    names = ",".join(f"object_{i}" for i in clicks)
    monkeypatch.setattr(video_cli, "load_model_from_args", lambda args: nano)
    js = tmp_path / "cli.json"
    code = main(["video", str(clip), "--click-coordinates", coords, "--click-object-ids", names,
                 "--direction", "both", "--json", str(js)])  # fmt: skip
    assert code == 0, capsys.readouterr().err
    cli = {
        f["frame"]: {a["id"]: decode_rle(a["segmentation"]) for a in f["annotations"]}
        for f in json.loads(js.read_text())["frames"]
    }
    assert sorted(cli) == list(range(FRAMES))
    assert_distinct_objects(cli[0])
    moving = [f for f in range(1, FRAMES) if all(cli[f][i].any() for i in clicks)]
    assert moving and not np.array_equal(cli[0][1], cli[moving[-1]][1])  # masks follow

    with clip.open("rb") as f:
        sid = client.post("/v1/sessions", files={"video": ("v.mp4", f, "video/mp4")}).json()["id"]
    for i, (x, y) in clicks.items():
        body = {"frame": 0, "object_id": i, "points": [[x, y]], "name": f"object_{i}"}
        assert client.post(f"/v1/sessions/{sid}/prompts", json=body).status_code == 200
    session = sse_frames(client, f"/v1/sessions/{sid}/propagate", {"direction": "both"})
    assert sorted(session) == sorted(cli)
    for f in cli:
        assert session[f].keys() == cli[f].keys()
        for i in cli[f]:
            assert np.array_equal(session[f][i], cli[f][i]), (f, i)

    video = "data:video/mp4;base64," + base64.b64encode(clip.read_bytes()).decode()
    inputs = {"input_video": video, "click_coordinates": coords, "click_object_ids": names,
              "mask_type": "binary", "output_format": "png"}  # fmt: skip
    prediction = client.post("/predictions", json={"input": inputs})
    assert prediction.status_code == 200, prediction.text
    urls = prediction.json()["output"]
    assert len(urls) == FRAMES
    for f, url in enumerate(urls):
        white = np.asarray(Image.open(io.BytesIO(client.get(url).content)).convert("L")) > 127
        union = np.logical_or.reduce(list(cli[f].values()))
        assert np.array_equal(white, union), f
