"""Issue 17, the fault test: a real server is killed (SIGKILL) in the middle of a propagation,
with an image request queued behind it; a new server on the same data directory answers the
same session id with the same masks for every frame finished before the kill, tracks on, and
has removed the leftovers (the queued upload, `.partial` files)."""

from __future__ import annotations

import json
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from masklet.io.masks import decode_rle
from masklet.io.video import VideoWriter
from tests.server.conftest import HEIGHT, WIDTH, moving_square
from tests.server.live_server import raw_post, start_server

FRAMES = 120  # ~20 s of tracking: the kill lands in the middle
KILL_AFTER = 8  # frames streamed before the kill


def leftovers(data: Path) -> list[Path]:
    return [
        p for p in data.rglob("*")
        if (p.name.startswith(".") and ".partial" in p.name) or p.name.startswith("upload-")
    ]  # fmt: skip


def multipart_image(image: bytes) -> tuple[bytes, str]:
    boundary = "masklet-test-boundary"
    prompts = json.dumps({"objects": [{"id": 1, "points": [[20, 20]]}]})
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="prompts"\r\n\r\n{prompts}\r\n'
            f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="a.png"\r\n'
            "Content-Type: image/png\r\n\r\n"
        ).encode()
        + image
        + f"\r\n--{boundary}--\r\n".encode()
    )
    return body, f"multipart/form-data; boundary={boundary}"


def read_frames(lines: Iterator[str], stop_after: int | None) -> list[dict[str, Any]]:
    """The `frame` events of a propagation stream (all of them, or the first `stop_after`)."""
    events: list[dict[str, Any]] = []
    name = None
    for line in lines:
        if line.startswith("event: "):
            name = line[len("event: ") :]
        elif line.startswith("data: ") and name == "frame":
            events.append(json.loads(line[len("data: ") :]))
            if stop_after is not None and len(events) >= stop_after:
                break
        elif line.startswith("data: ") and name != "start":
            assert name == "done", line
    return events


@pytest.fixture
def long_video(tmp_path: Path) -> bytes:
    path = tmp_path / "long.mp4"
    with VideoWriter(path, fps=10, size=(WIDTH, HEIGHT)) as writer:
        for frame in moving_square(FRAMES):
            writer.write(frame)
    return path.read_bytes()


def test_a_killed_server_restarts_with_its_sessions(
    tmp_path: Path, long_video: bytes, image_bytes: bytes
) -> None:
    data = tmp_path / "data"
    first = start_server(data, workers=1, show_masks=True)
    try:
        with httpx.Client(base_url=first.url, timeout=60) as client:
            created = client.post("/v1/sessions", files={"video": ("v.mp4", long_video)})
            assert created.status_code == 201, created.text
            sid = created.json()["id"]
            prompt = {"frame": 0, "object_id": 1, "points": [[20, 20]], "name": "square"}
            assert client.post(f"/v1/sessions/{sid}/prompts", json=prompt).status_code == 200
            # the stream stays open: closing it would cancel the propagation
            with client.stream("POST", f"/v1/sessions/{sid}/propagate", json={}) as stream:
                lines = stream.iter_lines()  # kept: a closed generator closes the stream
                done = read_frames(lines, KILL_AFTER)
                body, content_type = multipart_image(image_bytes)
                queued = raw_post(first.port, "/v1/images:segment", body, content_type)
                first.wait_for(lambda h: h["jobs"] == 2, 30, "the image request queues")
                assert any(p.name.startswith("upload-") for p in (data / "tmp").iterdir())
                first.process.send_signal(signal.SIGKILL)
                first.process.wait(timeout=30)
            queued.close()
    finally:
        first.stop()

    second = start_server(data, workers=1, show_masks=True)
    try:
        assert leftovers(data) == []
        with httpx.Client(base_url=second.url, timeout=60) as client:
            info = client.get(f"/v1/sessions/{sid}")
            assert info.status_code == 200, info.text
            assert info.json()["objects"] == [{"id": 1, "name": "square"}]
            assert info.json()["frames_with_masks"] >= len(done)
            masks = [decode_rle(o["mask"]) for e in done for o in e["objects"]]
            assert any(m.any() for m in masks), "every mask is empty"
            assert any(not np.array_equal(masks[0], m) for m in masks[1:]), "all masks equal"
            for event in done:
                kept = client.get(f"/v1/sessions/{sid}/masks/{event['frame']}").json()
                assert kept["objects"] == event["objects"], event["frame"]
            with client.stream("POST", f"/v1/sessions/{sid}/propagate", json={}) as stream:
                tracked = read_frames(stream.iter_lines(), None)
        assert sorted(e["frame"] for e in tracked) == list(range(FRAMES))
        for event in done:  # the same prompts track to the same masks
            again = next(e for e in tracked if e["frame"] == event["frame"])
            assert again["objects"] == event["objects"], event["frame"]
    finally:
        second.stop()
