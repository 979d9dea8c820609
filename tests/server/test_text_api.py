"""Text prompts over HTTP: `text` in `POST /v1/images:segment` and `POST /v1/sessions/{id}/text`,
with a scripted detector (no transformers, no network) and the tiny random SAM 2 model."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from masklet.errors import CheckpointError
from masklet.io.masks import decode_rle
from masklet.server import schemas, settings
from masklet.text import (
    DEFAULT_BOX_THRESHOLD,
    DEFAULT_DETECTOR,
    DEFAULT_TEXT_THRESHOLD,
    Detections,
    ScriptedDetector,
    TextExtraMissingError,
)
from tests.server.conftest import FRAMES, HEIGHT, WIDTH, AppFactory

# two squares the detector "finds", and one box below the default threshold
BOXES = [[8, 14, 28, 34], [36, 4, 60, 20], [0, 0, 10, 10]]
SCORES = [0.9, 0.6, 0.2]


def squares(label: str = "square") -> ScriptedDetector:
    return ScriptedDetector([Detections(np.array(BOXES), np.array(SCORES), [label] * 3)])


def text_client(make_client: AppFactory, detector: ScriptedDetector, **kw: Any) -> TestClient:
    return make_client(detector_factory=lambda _settings: detector, **kw)


def segment(client: TestClient, image: bytes, prompts: object):  # type: ignore[no-untyped-def]
    text = prompts if isinstance(prompts, str) else json.dumps(prompts)
    return client.post(
        "/v1/images:segment", files={"image": ("photo.png", image)}, data={"prompts": text}
    )


def new_session(client: TestClient, video: bytes) -> str:
    response = client.post("/v1/sessions", files={"video": ("clip.mp4", video)})
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def test_defaults_match_the_text_module() -> None:
    # settings and schemas spell these out so they need not import torch
    assert settings.ServerSettings().detector == DEFAULT_DETECTOR
    assert schemas.DEFAULT_BOX_THRESHOLD == DEFAULT_BOX_THRESHOLD
    assert schemas.DEFAULT_TEXT_THRESHOLD == DEFAULT_TEXT_THRESHOLD
    assert "detector_factory" not in repr(settings.ServerSettings())
    assert settings.settings_from_env({"MASKLET_DETECTOR": "base"}).detector == "base"


def test_image_text_prompt_adds_labelled_objects_after_click_objects(
    make_client: AppFactory, image_bytes: bytes
) -> None:
    detector = squares()
    client = text_client(make_client, detector)
    prompts = {
        "objects": [{"id": 4, "name": "mine", "points": [[20, 24]]}],
        "text": "A square.",
        "outputs": ["id_mask"],
    }
    response = segment(client, image_bytes, prompts)
    assert response.status_code == 200, response.text
    body = response.json()
    objects = {o["id"]: o for o in body["objects"]}
    assert sorted(objects) == [4, 5, 6]  # text objects take the ids after the clicked one
    assert objects[4]["label"] is None and objects[4]["name"] == "mine"
    assert [(objects[i]["label"], objects[i]["name"]) for i in (5, 6)] == [
        ("square", "square_1"),
        ("square", "square_2"),
    ]
    for obj in objects.values():
        assert decode_rle(obj["mask"]).shape == (HEIGHT, WIDTH)
    # the detector ran once, on the whole image, with the default box threshold
    assert detector.calls == [((HEIGHT, WIDTH, 3), "a square.", DEFAULT_BOX_THRESHOLD)]
    found = body["detections"]
    assert [(d["id"], d["name"], d["label"]) for d in found] == [
        (5, "square_1", "square"),
        (6, "square_2", "square"),
    ]
    assert [d["box"] for d in found] == BOXES[:2] and [d["score"] for d in found] == [
        pytest.approx(s) for s in SCORES[:2]
    ]
    assert body["id_mask_png"]  # outputs cover the text objects too


def test_image_text_only_with_thresholds_and_max_objects(
    make_client: AppFactory, image_bytes: bytes
) -> None:
    detector = squares()
    client = text_client(make_client, detector)
    prompts = {"text": "square", "box_threshold": 0.1, "max_objects": 1}
    body = segment(client, image_bytes, prompts).json()
    assert [(o["id"], o["label"]) for o in body["objects"]] == [(1, "square")]
    assert detector.calls[-1][2] == 0.1
    # everything below the threshold: no objects, no error
    nothing = segment(client, image_bytes, {"text": "square", "box_threshold": 0.95})
    assert nothing.status_code == 200 and nothing.json()["objects"] == []


def test_session_text_adds_named_objects_with_masks(
    make_client: AppFactory, video_bytes: bytes
) -> None:
    detector = squares("dog")
    loads: list[int] = []

    def factory(_settings: object) -> ScriptedDetector:
        loads.append(1)
        return detector

    client = make_client(detector_factory=factory)
    sid = new_session(client, video_bytes)
    assert loads == []  # lazily loaded: not at start-up, not for a session
    click = {"frame": 2, "object_id": 2, "name": "dog_1", "points": [[20, 24]]}
    assert client.post(f"/v1/sessions/{sid}/prompts", json=click).status_code == 200

    response = client.post(f"/v1/sessions/{sid}/text", json={"frame": 2, "text": "a dog"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["frame"] == 2
    assert [(a["id"], a["name"], a["label"]) for a in body["added"]] == [
        (3, "dog_2", "dog"),  # dog_1 is taken by the clicked object
        (4, "dog_3", "dog"),
    ]
    assert [a["box"] for a in body["added"]] == BOXES[:2]
    assert [(o["id"], o["name"]) for o in body["objects"]] == [
        (2, "dog_1"),
        (3, "dog_2"),
        (4, "dog_3"),
    ]
    for obj in body["objects"]:
        assert decode_rle(obj["mask"]).shape == (HEIGHT, WIDTH)
    assert detector.calls[0][0] == (HEIGHT, WIDTH, 3)

    again = client.post(
        f"/v1/sessions/{sid}/text", json={"frame": 0, "text": "dog", "max_objects": 1}
    )
    assert [(a["id"], a["name"]) for a in again.json()["added"]] == [(5, "dog_4")]
    assert loads == [1]  # loaded once, then shared

    info = client.get(f"/v1/sessions/{sid}").json()
    assert {(o["id"], o["name"]) for o in info["objects"]} >= {(3, "dog_2"), (5, "dog_4")}
    masks = client.get(f"/v1/sessions/{sid}/masks/2").json()
    assert [o["id"] for o in masks["objects"]] == [2, 3, 4]
    # the new objects track like clicked ones
    track = client.post(
        f"/v1/sessions/{sid}/propagate", json={"direction": "forward", "start_frame": 2}
    )
    assert track.status_code == 200 and "event: done" in track.text
    last = client.get(f"/v1/sessions/{sid}/masks/{FRAMES - 1}").json()
    assert [o["id"] for o in last["objects"]] == [2, 3, 4, 5]


@pytest.mark.parametrize(
    "failure",
    [
        TextExtraMissingError("text prompts need transformers: install masklet[text]"),
        CheckpointError("GroundingDINO weights 'x' are offline (HF_HUB_OFFLINE=1); run ..."),
    ],
)
def test_unavailable_detector_is_503_with_one_line(
    make_client: AppFactory, image_bytes: bytes, video_bytes: bytes, failure: Exception
) -> None:
    def factory(_settings: object) -> ScriptedDetector:
        raise failure

    client = make_client(detector_factory=factory)
    sid = new_session(client, video_bytes)
    responses = [
        segment(client, image_bytes, {"text": "a dog"}),
        client.post(f"/v1/sessions/{sid}/text", json={"frame": 0, "text": "a dog"}),
    ]
    for response in responses:
        assert response.status_code == 503, response.text
        error = response.json()["error"]
        assert error["code"] == "detector_unavailable" and error["message"] == str(failure)
        assert "\n" not in error["message"]
    # clicks still work on a server without a detector
    clicks = segment(client, image_bytes, {"objects": [{"id": 1, "points": [[20, 24]]}]})
    assert clicks.status_code == 200


def test_default_detector_missing_locally_is_503(
    make_client: AppFactory, image_bytes: bytes, tmp_path: Any
) -> None:
    # the real loader, pointed at a directory that does not exist: fails before any network
    client = make_client(detector=str(tmp_path / "no-such-model"))
    response = segment(client, image_bytes, {"text": "a dog"})
    assert response.status_code == 503, response.text
    message = response.json()["error"]["message"]
    assert "\n" not in message and ("transformers" in message or "no-such-model" in message)


def test_malformed_text_requests_name_the_field(
    make_client: AppFactory, image_bytes: bytes, video_bytes: bytes
) -> None:
    detector = squares()
    client = text_client(make_client, detector)
    image_cases = [
        ({"text": ""}, "prompts.text"),
        ({"text": " . ;"}, "prompts.text"),
        ({"text": 3}, "prompts.text"),
        ({"text": "dog", "box_threshold": 1.5}, "prompts.box_threshold"),
        ({"text": "dog", "text_threshold": "high"}, "prompts.text_threshold"),
        ({"text": "dog", "max_objects": 0}, "prompts.max_objects"),
        ({"objects": []}, "prompts"),  # nothing to segment: the pipeline's one rule
        ({}, "prompts"),
    ]
    for prompts, field in image_cases:
        response = segment(client, image_bytes, prompts)
        assert response.status_code == 422, (prompts, response.text)
        assert response.json()["error"]["field"] == field, (prompts, response.text)
    sid = new_session(client, video_bytes)
    session_cases = [
        ({"frame": 0}, "body.text"),
        ({"frame": 0, "text": "..."}, "text"),
        ({"frame": 0, "text": "dog", "box_threshold": -0.1}, "body.box_threshold"),
        ({"frame": 0, "text": "dog", "max_objects": 0}, "body.max_objects"),
        ({"frame": FRAMES, "text": "dog"}, "frame"),
        ({"frame": 0, "text": "dog", "colour": "red"}, "body.colour"),
    ]
    for body, field in session_cases:
        response = client.post(f"/v1/sessions/{sid}/text", json=body)
        assert response.status_code == 422, (body, response.text)
        assert response.json()["error"]["field"] == field, (body, response.text)
    assert detector.calls == []  # nothing malformed reached the detector
