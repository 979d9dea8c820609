"""Segment everything on a video frame over HTTP: `POST /v1/sessions/{id}/everything` (issue 18,
point 4), on the bundled nano model and the two-squares clip.

The regions must be the two squares (ground truth: where `two_squares` paints them), arrive as
ordinary objects (named, tracked by `propagate`, renamed, corrected with a click, removed), and
survive a restart; bad parameters answer 422 naming the field, and --max-objects bounds them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from masklet.io.masks import decode_rle
from masklet.modeling.sam2 import SAM2Model
from tests.server.conftest import FRAMES, AppFactory, two_squares
from tests.server.test_api import new_session, sse_events

# the nano model's masks score at most ~0.82 predicted IoU and ~0.79 stability: the reference's
# defaults (0.8, 0.95) drop them all (see EverythingSettings)
SETTINGS = {"points_per_side": 8, "pred_iou_thresh": 0.5, "stability_score_thresh": 0.5}
MIN_IOU = 0.7  # H.264 blurs the squares' edges on a 64 x 48 clip


def truth(frame: int) -> list[np.ndarray]:
    """[H, W] bool masks of the two squares on `frame`, from the clip's own painting."""
    pixels = two_squares()[frame].astype(int)
    background = pixels[0, 0]
    painted = np.abs(pixels - background).sum(-1) > 0  # [H, W]
    yellow, blue = pixels[..., 0] > pixels[..., 2], pixels[..., 2] > pixels[..., 0]
    return [painted & yellow, painted & blue]


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max((a | b).sum(), 1))


def masks_by_id(objects: list[dict[str, Any]]) -> dict[int, np.ndarray]:
    return {o["id"]: decode_rle(o["mask"]) for o in objects}


def find(client: TestClient, sid: str, frame: int = 0, **extra: Any) -> Any:
    return client.post(f"/v1/sessions/{sid}/everything", json={"frame": frame, **SETTINGS, **extra})


@pytest.fixture
def nano_app(make_client: AppFactory, nano_model: SAM2Model) -> TestClient:
    return make_client(model_factory=lambda _settings: nano_model)


def test_regions_become_objects_that_track_rename_correct_and_remove(
    nano_app: TestClient, two_squares_bytes: bytes
) -> None:
    client = nano_app
    sid = new_session(client, two_squares_bytes)
    response = find(client, sid)
    assert response.status_code == 200, response.text
    body = response.json()
    added = body["added"]
    ids = [a["id"] for a in added]
    assert ids == list(range(1, len(ids) + 1)) and len(ids) >= 2
    assert [a["name"] for a in added] == [f"region_{k}" for k in range(1, len(ids) + 1)]
    assert [a["score"] for a in added] == sorted((a["score"] for a in added), reverse=True)
    found = masks_by_id(body["objects"])
    assert set(found) == set(ids) and all(m.any() for m in found.values())
    for square in truth(0):  # each square is one of the regions, its box the region's box
        best = max(ids, key=lambda i: iou(square, found[i]))
        assert iou(square, found[best]) >= MIN_IOU
        ys, xs = np.nonzero(found[best])
        box = next(a["box"] for a in added if a["id"] == best)
        assert box == [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]
    info = client.get(f"/v1/sessions/{sid}").json()
    assert {o["id"]: o["name"] for o in info["objects"]} == {a["id"]: a["name"] for a in added}

    # the same frame again: the regions are known now, nothing new
    again = find(client, sid)
    assert again.status_code == 200 and again.json()["added"] == []

    # tracked like clicked objects: every region on every frame, following its square
    events = sse_events(client, f"/v1/sessions/{sid}/propagate", {})
    frames = [e for name, e in events if name == "frame"]
    assert [f["frame"] for f in frames] == list(range(FRAMES))
    assert events[-1][0] == "done"
    last = masks_by_id(frames[-1]["objects"])
    assert set(last) == set(ids)
    for square in truth(FRAMES - 1):
        assert max(iou(square, m) for m in last.values()) >= MIN_IOU

    # renamed, corrected with a click, removed
    first = ids[0]
    renamed = client.patch(f"/v1/sessions/{sid}/objects/{first}", json={"name": "blue thing"})
    assert renamed.status_code == 200
    names = {o["id"]: o["name"] for o in client.get(f"/v1/sessions/{sid}").json()["objects"]}
    assert names[first] == "blue thing"
    x, y = np.argwhere(found[first])[0][::-1]  # a pixel of the region
    clicked = client.post(
        f"/v1/sessions/{sid}/prompts",
        json={"frame": 2, "object_id": first, "points": [[int(x), int(y)]], "labels": [1]},
    )
    assert clicked.status_code == 200, clicked.text
    assert masks_by_id(clicked.json()["objects"])[first].any()
    removed = client.delete(f"/v1/sessions/{sid}/objects/{ids[-1]}")
    assert removed.status_code == 200, removed.text
    left = [o["id"] for o in client.get(f"/v1/sessions/{sid}").json()["objects"]]
    assert left == ids[:-1]
    assert ids[-1] not in masks_by_id(client.get(f"/v1/sessions/{sid}/masks/0").json()["objects"])


def test_regions_skip_objects_that_are_there_and_ids_follow_them(
    nano_app: TestClient, two_squares_bytes: bytes
) -> None:
    client = nano_app
    sid = new_session(client, two_squares_bytes)
    yellow = truth(0)[0]
    ys, xs = np.nonzero(yellow)
    click = {"frame": 0, "object_id": 4, "name": "mine",
             "points": [[int(xs.mean()), int(ys.mean())]]}  # fmt: skip
    assert client.post(f"/v1/sessions/{sid}/prompts", json=click).status_code == 200
    body = find(client, sid).json()
    assert [a["id"] for a in body["added"]][:1] == [5]  # after the largest id
    found = masks_by_id(body["objects"])
    assert iou(yellow, found[4]) >= MIN_IOU  # the click found the yellow square
    new = [found[a["id"]] for a in body["added"]]
    assert new and all((m & found[4]).sum() <= 0.5 * m.sum() for m in new)
    assert max(iou(truth(0)[1], m) for m in new) >= MIN_IOU  # the blue one is a region


def test_the_object_limit_bounds_regions(
    make_client: AppFactory, nano_model: SAM2Model, two_squares_bytes: bytes
) -> None:
    client = make_client(model_factory=lambda _settings: nano_model, max_objects=2)
    sid = new_session(client, two_squares_bytes)
    click = {"frame": 0, "object_id": 1, "points": [[18, 24]]}
    assert client.post(f"/v1/sessions/{sid}/prompts", json=click).status_code == 200
    body = find(client, sid).json()
    assert len(body["added"]) == 1  # one more fits under --max-objects 2
    full = find(client, sid, frame=1)
    assert full.status_code == 413, full.text
    assert "--max-objects" in full.json()["error"]["message"]
    assert len(client.get(f"/v1/sessions/{sid}").json()["objects"]) == 2


def test_the_prompt_limit_bounds_the_work(client: TestClient, video_bytes: bytes) -> None:
    sid = new_session(client, video_bytes)
    # 64 x 64 points on 1 + 4 crops: 20,480 prompts, over the default 16,384
    response = find(client, sid, points_per_side=64, crop_n_layers=1)
    assert response.status_code == 413, response.text
    error = response.json()["error"]
    assert error["field"] == "body.points_per_side" and "20480" in error["message"]
    assert "masklet serve --max-everything-prompts raises it" in error["message"]
    assert client.get(f"/v1/sessions/{sid}").json()["objects"] == []


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        ({"pred_iou_thresh": 1.5}, "body.pred_iou_thresh"),
        ({"stability_score_thresh": -0.1}, "body.stability_score_thresh"),
        ({"points_per_side": 0}, "body.points_per_side"),
        ({"points_per_side": "8"}, "body.points_per_side"),
        ({"crop_n_layers": 4}, "body.crop_n_layers"),
        ({"max_objects": 0}, "body.max_objects"),
        ({"points": 3}, "body.points"),
        ({"frame": FRAMES}, "frame"),
    ],
)
def test_bad_parameters_are_422_naming_the_field(
    client: TestClient, video_bytes: bytes, extra: dict[str, Any], field: str
) -> None:
    sid = new_session(client, video_bytes)
    response = find(client, sid, **extra)
    assert response.status_code == 422, response.text
    assert response.json()["error"]["field"] == field
    assert client.get(f"/v1/sessions/{sid}").json()["objects"] == []


def test_regions_survive_a_restart(
    make_client: AppFactory, nano_model: SAM2Model, two_squares_bytes: bytes, tmp_path: Path
) -> None:
    def start() -> TestClient:  # a server on the same data directory
        return make_client(data_dir=tmp_path / "kept", model_factory=lambda _: nano_model)

    first = start()
    added = find(first, sid := new_session(first, two_squares_bytes)).json()["added"]
    assert added
    first.__exit__(None, None, None)  # stopped; its sessions stay on disk
    second = start()
    info = second.get(f"/v1/sessions/{sid}").json()
    assert {o["id"]: o["name"] for o in info["objects"]} == {a["id"]: a["name"] for a in added}
    events = sse_events(second, f"/v1/sessions/{sid}/propagate", {"max_frames": 1})
    assert events[-1][0] == "done"
    tracked = masks_by_id(next(e for name, e in events if name == "frame")["objects"])
    assert set(tracked) == {a["id"] for a in added} and all(m.any() for m in tracked.values())


def test_openapi_documents_the_route(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    route = spec["paths"]["/v1/sessions/{session_id}/everything"]["post"]
    assert "region_" in route["description"]
    fields = spec["components"]["schemas"]["EverythingRequest"]["properties"]
    assert {"frame", "points_per_side", "pred_iou_thresh", "stability_score_thresh"} <= set(fields)
    assert fields["pred_iou_thresh"]["default"] == 0.8  # the reference's default
    assert {"413", "422"} <= set(route["responses"])
