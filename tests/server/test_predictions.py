"""Replicate-compatible `POST /predictions` (meta/sam-2-video inputs) and `masklet serve`."""

from __future__ import annotations

import base64
import io

import av
from fastapi.testclient import TestClient
from PIL import Image

from masklet.cli.main import build_parser, main
from masklet.cli.serve import settings_from_args
from tests.server.conftest import FRAMES, HEIGHT, WIDTH


def data_uri(video: bytes) -> str:
    return "data:video/mp4;base64," + base64.b64encode(video).decode()


def test_json_prediction_returns_a_video_url(client: TestClient, video_bytes: bytes) -> None:
    body = {"input": {"input_video": data_uri(video_bytes), "click_coordinates": "[20,20]",
                      "output_video": True, "video_fps": 5}}  # fmt: skip
    response = client.post("/predictions", json=body)
    assert response.status_code == 200, response.text
    result = response.json()
    assert result["status"] == "succeeded" and len(result["output"]) == 1
    assert result["input"]["mask_type"] == "binary"  # Replicate's defaults
    assert result["input"]["output_format"] == "webp" and result["input"]["video_fps"] == 5
    video = client.get(result["output"][0])
    with av.open(io.BytesIO(video.content)) as container:
        stream = container.streams.video[0]
        assert float(stream.average_rate) == 5.0
        frames = list(container.decode(stream))
    assert len(frames) == FRAMES and (frames[0].width, frames[0].height) == (WIDTH, HEIGHT)


def test_multipart_prediction_returns_frame_images(client: TestClient, video_bytes: bytes) -> None:
    fields = {"click_coordinates": "[20,20],[40,30]", "click_object_ids": "a,b",
              "mask_type": "greenscreen", "output_format": "png", "output_frame_interval": "2"}  # fmt: skip
    response = client.post(
        "/predictions", files={"input_video": ("v.mp4", video_bytes)}, data=fields
    )
    assert response.status_code == 200, response.text
    urls = response.json()["output"]
    assert [u.rsplit("/", 1)[1] for u in urls] == [
        "frame_00000.png",
        "frame_00002.png",
        "frame_00004.png",
    ]
    image = Image.open(io.BytesIO(client.get(urls[0]).content))
    assert image.format == "PNG" and image.size == (WIDTH, HEIGHT)


def test_prediction_errors_name_the_field(client: TestClient, video_bytes: bytes) -> None:
    def error(inputs: dict[str, object]) -> dict[str, str]:
        response = client.post("/predictions", json={"input": inputs})
        assert response.status_code == 422, response.text
        return response.json()["error"]  # type: ignore[no-any-return]

    video = data_uri(video_bytes)
    fetched = error({"input_video": "https://example.com/v.mp4", "click_coordinates": "[1,1]"})
    assert fetched["field"] == "input.input_video" and "never fetches" in fetched["message"]
    assert (
        error({"input_video": video, "click_coordinates": "[1,1"})["field"]
        == "input.click_coordinates"
    )
    assert (
        error({"input_video": video, "click_coordinates": "[1,1]", "click_labels": "2"})["field"]
        == "input.click_labels"
    )
    assert (
        error({"input_video": video, "click_coordinates": "[1,1]", "click_frames": "50"})["field"]
        == "input.click_frames[0]"  # the first click's frame: the field is exact
    )
    assert (
        error({"input_video": video, "click_coordinates": "[1,1]", "mask_type": "x"})["field"]
        == "input.mask_type"
    )
    assert error({"click_coordinates": "[1,1]"})["field"] == "input.input_video"
    not_video = "data:video/mp4;base64," + base64.b64encode(b"hello world, not a video").decode()
    assert (
        error({"input_video": not_video, "click_coordinates": "[1,1]"})["field"]
        == "input.input_video"
    )


def test_serve_command_settings_and_refusal(tmp_path) -> None:  # type: ignore[no-untyped-def]
    args = build_parser().parse_args([
        "serve", "--port", "9001", "--api-key", "abcdefgh12", "--max-upload-mb", "3",
        "--session-ttl", "60", "--queue-size", "2", "--data-dir", str(tmp_path),
    ])  # fmt: skip
    settings = settings_from_args(args)
    assert (settings.port, settings.api_keys, settings.max_upload_mb) == (
        9001,
        ("abcdefgh12",),
        3.0,
    )
    assert settings.session_ttl_seconds == 60.0 and settings.queue_size == 2
    assert settings.host == "127.0.0.1"
    assert settings.model == "auto"  # cached official tiny model, else the bundled nano model
    with_detector = settings_from_args(build_parser().parse_args(["serve", "--detector", "base"]))
    assert with_detector.detector == "base"
    # a public address without a key: one clear line and exit code 2, nothing started
    assert main(["serve", "--host", "0.0.0.0", "--data-dir", str(tmp_path / "x")]) == 2
    assert not (tmp_path / "x").exists()
