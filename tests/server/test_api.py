"""Every endpoint of the HTTP API: shapes and error bodies with the tiny random model; mask
content (flows, exports, mask prompts) with the bundled nano model against the Python API."""

from __future__ import annotations

import base64
import io
import json
import zipfile
from pathlib import Path

import av
import numpy as np
from fastapi.testclient import TestClient
from PIL import Image

from masklet.io.masks import decode_rle
from masklet.modeling.sam2 import SAM2Model
from masklet.video.predictor import VideoPredictor
from masklet.video.tracking import track
from tests.nondegenerate import assert_informative
from tests.server.conftest import FRAMES, HEIGHT, WIDTH, two_squares


def segment(client: TestClient, image: bytes, prompts: object, **files: bytes):  # type: ignore[no-untyped-def]
    upload = {"image": ("photo.png", image)} | {k: (f"{k}.png", v) for k, v in files.items()}
    text = prompts if isinstance(prompts, str) else json.dumps(prompts)
    return client.post("/v1/images:segment", files=upload, data={"prompts": text})


def new_session(client: TestClient, video: bytes) -> str:
    response = client.post("/v1/sessions", files={"video": ("clip.mp4", video)})
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def sse_events(client: TestClient, url: str, body: dict[str, object]) -> list[tuple[str, dict]]:  # type: ignore[type-arg]
    events, name = [], None
    with client.stream("POST", url, json=body) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        for line in response.iter_lines():
            if line.startswith("event: "):
                name = line[len("event: ") :]
            elif line.startswith("data: "):
                events.append((name, json.loads(line[len("data: ") :])))
    return events


def test_healthz_and_openapi(client: TestClient) -> None:
    health = client.get("/healthz").json()
    assert health["status"] == "ok" and health["model_loaded"] is False  # loaded lazily
    schema = client.get("/openapi.json").json()
    for path in ("/v1/images:segment", "/v1/sessions", "/v1/sessions/{session_id}/propagate",
                 "/predictions", "/v1/sessions/{session_id}/export"):  # fmt: skip
        assert path in schema["paths"]
    assert "ErrorBody" in schema["components"]["schemas"]


def test_web_page_and_static_files(client: TestClient) -> None:
    page = client.get("/")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert "app.js" in page.text and "//cdn" not in page.text and "https://" not in page.text
    assert client.get("/static/app.js").status_code == 200
    assert client.get("/static/app.css").status_code == 200


def test_segment_image_returns_rle_scores_boxes_and_pngs(
    client: TestClient, image_bytes: bytes
) -> None:
    prompts = {
        "objects": [{"id": 1, "points": [[20, 20]], "labels": [1]}, {"id": 7, "box": [30, 10, 60, 40]}],
        "outputs": ["overlay", "id_mask"],
    }  # fmt: skip
    response = segment(client, image_bytes, prompts)
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["width"], body["height"]) == (WIDTH, HEIGHT)
    assert [o["id"] for o in body["objects"]] == [1, 7]
    for obj in body["objects"]:
        mask = decode_rle(obj["mask"])
        assert mask.shape == (HEIGHT, WIDTH) and int(mask.sum()) == obj["area"]
        assert 0.0 <= obj["score"] <= 1.5 and len(obj["box"]) == 4
    overlay = Image.open(io.BytesIO(base64.b64decode(body["overlay_png"])))
    ids = np.asarray(Image.open(io.BytesIO(base64.b64decode(body["id_mask_png"]))))
    assert overlay.size == (WIDTH, HEIGHT) and ids.shape == (HEIGHT, WIDTH)
    assert set(np.unique(ids)) <= {0, 1, 7}


def _png(mask: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(mask).save(buffer, format="PNG")
    return buffer.getvalue()


def _only_mask(response) -> np.ndarray:  # type: ignore[no-untyped-def]
    assert response.status_code == 200, response.text
    [obj] = response.json()["objects"]
    return decode_rle(obj["mask"])


def test_segment_image_with_mask_prompt(nano_client: TestClient, image_bytes: bytes) -> None:
    """A mask prompt reaches the model: alone it gives the square it outlines, and added to a
    click it changes the click's answer (the trained nano model follows the square)."""
    square = np.zeros((HEIGHT, WIDTH), bool)
    square[14:34, 8:28] = True  # where the image's square is
    rough = np.zeros((HEIGHT, WIDTH), np.uint8)
    rough[12:36, 6:30] = 255
    alone = segment(
        nano_client, image_bytes, {"objects": [{"id": 2, "mask": True}]}, mask=_png(rough)
    )
    assert alone.json()["objects"][0]["id"] == 2
    mask = _only_mask(alone)
    assert (mask & square).sum() / (mask | square).sum() > 0.8

    left = np.zeros((HEIGHT, WIDTH), np.uint8)
    left[5:40, 0:18] = 255  # the square's left half and the background left of it
    click = {"id": 2, "points": [[18, 24]], "labels": [1]}
    with_mask = segment(
        nano_client, image_bytes, {"objects": [{**click, "mask": True}]}, mask=_png(left)
    )
    without = segment(nano_client, image_bytes, {"objects": [click]})
    a, b = _only_mask(with_mask), _only_mask(without)
    assert a.sum() > 0 and b.sum() > 0
    assert int((a != b).sum()) > 20


def test_malformed_image_prompts_name_the_field(client: TestClient, image_bytes: bytes) -> None:
    cases = {
        "not json": "prompts",
        # objects[i] of the form is the request's prompts[i], as in the CLI and Python API
        json.dumps({"objects": [{"id": 1, "points": [[1, 2, 3]]}]}): "prompts[0].points[0]",
        json.dumps({"objects": [{"id": 1, "points": [[1, 2]], "labels": [1, 0]}]}): "prompts[0].labels",
        json.dumps({"objects": [{"id": 0, "box": [0, 0, 5, 5]}]}): "prompts[0].object",
        json.dumps({"objects": []}): "prompts",
        json.dumps({"objects": [{"id": 1, "points": [[500, 5]]}]}): "prompts[0].points[0]",
    }  # fmt: skip
    for prompts, field in cases.items():
        response = segment(client, image_bytes, prompts)
        assert response.status_code == 422, (prompts, response.text)
        error = response.json()["error"]
        assert error["field"] == field, (prompts, error)
        assert field in error["message"] or error["field"] == "prompts"
    bad_image = segment(client, b"GIF89a not really", {"objects": [{"id": 1, "points": [[1, 1]]}]})
    assert bad_image.status_code == 422 and bad_image.json()["error"]["field"] == "image"
    assert "/" not in bad_image.json()["error"]["message"].split("uploaded image")[0][-3:]


def api_masks(
    model: SAM2Model, video: bytes, tmp_path: Path, prompts: list[dict], direction: str
) -> dict[int, dict[int, np.ndarray]]:
    """frame -> object id -> mask through the public Python API, the server's expectation."""
    path = tmp_path / "api.mp4"
    path.write_bytes(video)
    predictor = VideoPredictor(model)
    session = predictor.init_state(path)
    for p in prompts:
        kwargs = {k: p[k] for k in ("points", "labels", "box") if k in p}
        predictor.add_new_points_or_box(session, p["frame"], p["object_id"], **kwargs)
    return {r.frame_idx: r.masks() for r in track(predictor, session, direction)}


def test_video_session_flow(
    nano_client: TestClient, two_squares_bytes: bytes, nano_model: SAM2Model, tmp_path: Path
) -> None:
    client = nano_client
    sid = new_session(client, two_squares_bytes)
    info = client.get(f"/v1/sessions/{sid}").json()
    assert (info["num_frames"], info["width"], info["height"]) == (FRAMES, WIDTH, HEIGHT)
    assert info["fps"] == 10.0 and info["objects"] == []

    frame = client.get(f"/v1/sessions/{sid}/frames/3")
    assert frame.headers["content-type"] == "image/jpeg"
    assert Image.open(io.BytesIO(frame.content)).size == (WIDTH, HEIGHT)

    prompt = {"frame": 1, "object_id": 3, "name": "square", "points": [[20, 24]], "labels": [1]}
    masks = client.post(f"/v1/sessions/{sid}/prompts", json=prompt)
    assert masks.status_code == 200, masks.text
    assert masks.json()["frame"] == 1 and [o["id"] for o in masks.json()["objects"]] == [3]
    box = {"frame": 1, "object_id": 4, "box": [44, 33, 62, 47]}  # the blue square
    both = client.post(f"/v1/sessions/{sid}/prompts", json=box).json()
    assert [o["id"] for o in both["objects"]] == [3, 4]

    events = sse_events(client, f"/v1/sessions/{sid}/propagate", {"direction": "both"})
    names = [name for name, _ in events]
    assert names[0] == "start" and names[-1] == "done"
    frames = [data for name, data in events if name == "frame"]
    assert sorted(f["frame"] for f in frames) == list(range(FRAMES))
    assert [f["done"] for f in frames] == list(range(1, FRAMES + 1))
    assert all(f["total"] == FRAMES for f in frames)
    got = {f["frame"]: {o["id"]: decode_rle(o["mask"]) for o in f["objects"]} for f in frames}
    expected = api_masks(nano_model, two_squares_bytes, tmp_path, [prompt, box], "both")
    assert_informative(expected, min_pixels=50)
    assert got.keys() == expected.keys()
    for i, objects in expected.items():
        assert got[i].keys() == objects.keys() == {3, 4}, i
        for obj_id, mask in objects.items():
            assert np.array_equal(got[i][obj_id], mask), (i, obj_id)
    again = client.get(f"/v1/sessions/{sid}/masks/4").json()
    assert again["frame"] == 4
    assert {o["id"]: decode_rle(o["mask"]).tolist() for o in again["objects"]} == {
        k: v.tolist() for k, v in expected[4].items()
    }

    renamed = client.patch(f"/v1/sessions/{sid}/objects/4", json={"name": "box"})
    assert renamed.json() == {"id": 4, "name": "box"}
    cleared = client.post(f"/v1/sessions/{sid}/clear", json={"frame": 1, "object_id": 4})
    assert cleared.status_code == 200 and cleared.json()["frame"] == 1
    removed = client.delete(f"/v1/sessions/{sid}/objects/4")
    assert removed.status_code == 200
    assert [o["id"] for o in client.get(f"/v1/sessions/{sid}").json()["objects"]] == [3]
    assert client.post(f"/v1/sessions/{sid}/cancel").json() == {"cancelled": False}

    assert client.delete(f"/v1/sessions/{sid}").status_code == 204
    assert client.get(f"/v1/sessions/{sid}").status_code == 404


def test_exports_download_and_decode(
    nano_client: TestClient, two_squares_bytes: bytes, nano_model: SAM2Model, tmp_path: Path
) -> None:
    client = nano_client
    sid = new_session(client, two_squares_bytes)
    prompts = [
        {"frame": 1, "object_id": 1, "points": [[20, 24]], "labels": [1]},
        {"frame": 1, "object_id": 2, "box": [44, 33, 62, 47]},
    ]
    for p in prompts:
        client.post(f"/v1/sessions/{sid}/prompts", json=p)
    nothing_yet = client.post(f"/v1/sessions/{sid}/export", json={"format": "nope"})
    assert nothing_yet.status_code == 422 and nothing_yet.json()["error"]["field"] == "body.format"
    sse_events(client, f"/v1/sessions/{sid}/propagate", {})
    expected = api_masks(nano_model, two_squares_bytes, tmp_path, prompts, "both")
    assert_informative(expected, min_pixels=50)

    video = client.post(
        f"/v1/sessions/{sid}/export", json={"format": "mp4", "colors": {"1": "#ff00ff"}}
    )
    assert video.status_code == 200, video.text
    data = client.get(video.json()["url"])
    assert data.headers["content-type"] == "video/mp4"
    source = two_squares()
    with av.open(io.BytesIO(data.content)) as container:
        decoded = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    assert len(decoded) == FRAMES
    for i, frame in enumerate(decoded):
        # object 1 is tinted magenta: more red+blue than green where its mask is, and the
        # pixels far from both objects are left as they were (up to H.264 noise)
        diff = frame.astype(int) - source[i].astype(int)
        inside = expected[i][1]
        magenta = frame[..., 0].astype(int) + frame[..., 2] - 2 * frame[..., 1].astype(int)
        source_magenta = source[i][..., 0].astype(int) + source[i][..., 2] - 2 * source[i][..., 1]
        assert (magenta - source_magenta)[inside].mean() > 40, i
        far = ~(expected[i][1] | expected[i][2])
        far[10:36, :] = False  # the square's rows, where edges blur
        assert np.abs(diff)[far].mean() < 12, i

    archive = client.get(
        client.post(f"/v1/sessions/{sid}/export", json={"format": "png_zip"}).json()["url"]
    )
    with zipfile.ZipFile(io.BytesIO(archive.content)) as z:
        assert z.namelist() == [f"{i:05d}.png" for i in range(FRAMES)]
        for i in range(FRAMES):
            ids = np.asarray(Image.open(z.open(f"{i:05d}.png")))
            assert ids.shape == (HEIGHT, WIDTH)
            assert np.array_equal(ids == 1, expected[i][1]), i
            assert np.array_equal(ids == 2, expected[i][2]), i

    coco = client.get(
        client.post(f"/v1/sessions/{sid}/export", json={"format": "coco"}).json()["url"]
    ).json()
    assert [f["frame"] for f in coco["frames"]] == list(range(FRAMES))
    assert coco["objects"] == [{"id": 1, "name": "object_1"}, {"id": 2, "name": "object_2"}]
    for f in coco["frames"]:
        decoded_masks = {a["id"]: decode_rle(a["segmentation"]) for a in f["annotations"]}
        assert decoded_masks.keys() == {1, 2}
        for obj_id, mask in decoded_masks.items():
            assert np.array_equal(mask, expected[f["frame"]][obj_id]), (f["frame"], obj_id)
    bad_color = client.post(
        f"/v1/sessions/{sid}/export", json={"format": "mp4", "colors": {"1": "red"}}
    )
    assert bad_color.status_code == 422 and "colors[1]" in bad_color.json()["error"]["message"]
    assert client.get("/v1/files/unknown-token/overlay.mp4").status_code == 404


def test_session_errors(client: TestClient, video_bytes: bytes) -> None:
    missing = client.get("/v1/sessions/does-not-exist")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"
    prompt = {"frame": 0, "object_id": 1, "points": [[1, 1]]}
    assert client.post("/v1/sessions/nope/prompts", json=prompt).status_code == 404
    assert client.post("/v1/sessions/nope/propagate", json={}).status_code == 404
    assert client.get("/v1/sessions/nope/frames/0").status_code == 404
    assert client.post("/v1/sessions/nope/cancel").status_code == 404

    sid = new_session(client, video_bytes)
    base = f"/v1/sessions/{sid}"
    assert client.post(f"{base}/propagate", json={}).json()["error"]["field"] == "prompts"
    cases = [
        ({"frame": 0, "object_id": 1}, "body"),
        ({"frame": 99, "object_id": 1, "points": [[1, 1]]}, "frame"),
        ({"frame": 0, "object_id": 1, "points": [[1000, 1]]}, "body.points[0]"),
        ({"frame": 0, "object_id": 1, "points": [[1, 1]], "labels": [2]}, "body.labels[0]"),
        ({"frame": -1, "object_id": 1, "points": [[1, 1]]}, "body.frame"),
        ({"frame": 0, "object_id": 1, "box": [10, 10, 5, 5]}, "body.box"),
    ]
    for body, field in cases:
        response = client.post(f"{base}/prompts", json=body)
        assert response.status_code == 422, (body, response.text)
        assert response.json()["error"]["field"] == field, (body, response.json())
    assert client.get(f"{base}/frames/{FRAMES}").status_code == 422
    assert client.post(f"{base}/clear", json={"frame": 0, "object_id": 9}).status_code == 404
    assert client.delete(f"{base}/objects/9").status_code == 404
    not_video = client.post(
        "/v1/sessions", files={"video": ("clip.mp4", b"<html>not a video</html>" * 10)}
    )
    assert not_video.status_code == 422 and not_video.json()["error"]["field"] == "video"
    assert "not a video" in not_video.json()["error"]["message"]
