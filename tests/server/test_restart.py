"""Issue 17, points 7 and 8: sessions survive a restart (in process here; with kill -9 of a real
server in test_restart_after_kill.py), and the start-up sweep removes leftovers."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient

from masklet.io.masks import decode_rle
from masklet.modeling.sam2 import SAM2Model, build_model
from masklet.server import persist
from masklet.server.app import create_app
from masklet.server.settings import ServerSettings
from tests.parity.reference import small_config
from tests.server.browser_helpers import show_random_masks
from tests.server.conftest import FRAMES, IMAGE_SIZE, AppFactory
from tests.server.test_api import new_session, sse_events

CLICK = {"frame": 0, "object_id": 1, "points": [[20, 20]], "name": "square"}
OTHER = {"frame": 2, "object_id": 2, "points": [[50, 40]], "labels": [1]}


@pytest.fixture(scope="module")
def visible_model() -> SAM2Model:
    """The tiny random model, made to call objects present (else every mask is empty)."""
    torch.manual_seed(0)
    return show_random_masks(
        build_model(small_config("sam2.1_hiera_tiny", image_size=IMAGE_SIZE)).eval()
    )


def all_masks(client: TestClient, sid: str) -> dict[int, list[dict[str, Any]]]:
    return {i: client.get(f"/v1/sessions/{sid}/masks/{i}").json()["objects"] for i in range(FRAMES)}


def unnamed(masks: dict[int, list[dict[str, Any]]]) -> dict[int, list[dict[str, Any]]]:
    return {i: [{k: v for k, v in o.items() if k != "name"} for o in objects]
            for i, objects in masks.items()}  # fmt: skip


def assert_not_degenerate(masks: dict[int, list[dict[str, Any]]]) -> None:
    decoded = [decode_rle(o["mask"]) for objects in masks.values() for o in objects]
    assert decoded and any(m.any() for m in decoded), "every mask is empty"
    assert any(not np.array_equal(decoded[0], m) for m in decoded[1:]), "all masks are equal"


def test_a_session_survives_a_restart(
    make_client: AppFactory, tmp_path: Path, video_bytes: bytes, visible_model: SAM2Model
) -> None:
    data = tmp_path / "kept"
    first = make_client(data_dir=data, model_factory=lambda _: visible_model)
    sid = new_session(first, video_bytes)
    assert first.post(f"/v1/sessions/{sid}/prompts", json=CLICK).status_code == 200
    assert first.post(f"/v1/sessions/{sid}/prompts", json=OTHER).status_code == 200
    events = sse_events(first, f"/v1/sessions/{sid}/propagate", {})
    assert events[-1][0] == "done"
    assert first.patch(f"/v1/sessions/{sid}/objects/2", json={"name": "corner"}).status_code == 200
    before = all_masks(first, sid)
    assert_not_degenerate(before)
    links = {fmt: export_link(first, sid, fmt) for fmt in ("coco", "png_zip")}
    downloads = {fmt: first.get(link).content for fmt, link in links.items()}
    assert len(json.loads(downloads["coco"])["frames"]) == FRAMES  # a real export
    first.__exit__(None, None, None)  # a clean stop keeps the session on disk

    second = make_client(data_dir=data, model_factory=lambda _: visible_model)
    info = second.get(f"/v1/sessions/{sid}")
    assert info.status_code == 200, info.text
    assert info.json()["objects"] == [{"id": 1, "name": "square"}, {"id": 2, "name": "corner"}]
    assert info.json()["frames_with_masks"] == FRAMES
    assert all_masks(second, sid) == before  # stored masks served as they are
    for fmt, link in links.items():  # the links handed out before the restart still work
        again = second.get(link)
        assert again.status_code == 200, (fmt, again.text)
        assert again.content == downloads[fmt]
    # the replayed prompts let tracking go on: the same prompts track to the same masks
    again = sse_events(second, f"/v1/sessions/{sid}/propagate", {})
    assert again[-1][0] == "done" and again[-1][1]["frames"] == FRAMES
    assert unnamed(all_masks(second, sid)) == unnamed(before)  # (the rename came after)
    # a deleted session stays deleted across a restart
    assert second.delete(f"/v1/sessions/{sid}").status_code == 204
    second.__exit__(None, None, None)
    third = make_client(data_dir=data)
    assert third.get(f"/v1/sessions/{sid}").status_code == 404


def export_link(client: TestClient, sid: str, fmt: str) -> str:
    response = client.post(f"/v1/sessions/{sid}/export", json={"format": fmt})
    assert response.status_code == 200, response.text
    link: str = response.json()["url"]
    return link


def test_export_links_are_bounded_and_a_broken_links_file_is_ignored(
    make_client: AppFactory, tmp_path: Path, video_bytes: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Only the newest MAX_EXPORT_LINKS links of a session are kept (older ones stop
    answering, before and after a restart); an unreadable links file loses the links, not the
    session."""
    monkeypatch.setattr(persist, "MAX_EXPORT_LINKS", 2)
    data = tmp_path / "links"
    first = make_client(data_dir=data)
    sid = new_session(first, video_bytes)
    assert first.post(f"/v1/sessions/{sid}/prompts", json=CLICK).status_code == 200
    oldest, *newest = [export_link(first, sid, "coco") for _ in range(3)]
    assert first.get(oldest).status_code == 404
    assert [first.get(link).status_code for link in newest] == [200, 200]
    first.__exit__(None, None, None)

    second = make_client(data_dir=data)
    assert second.get(oldest).status_code == 404
    assert [second.get(link).status_code for link in newest] == [200, 200]
    second.__exit__(None, None, None)

    (data / "sessions" / sid / persist.EXPORT_LINKS_NAME).write_text("{torn")
    third = make_client(data_dir=data)
    assert third.get(f"/v1/sessions/{sid}").status_code == 200
    assert [third.get(link).status_code for link in newest] == [404, 404]
    assert third.get(export_link(third, sid, "coco")).status_code == 200  # exports go on


def test_start_up_sweep_removes_leftovers(
    make_client: AppFactory, tmp_path: Path, video_bytes: bytes
) -> None:
    data = tmp_path / "left"
    first = make_client(data_dir=data, session_ttl_seconds=600)
    live, expired = new_session(first, video_bytes), new_session(first, video_bytes)
    first.__exit__(None, None, None)
    sessions = data / "sessions"
    old = time.time() - 3600
    os.utime(sessions / expired / "session.json", (old, old))  # idle for an hour
    partial = sessions / live / "exports" / ".overlay.abc123.partial.mp4"
    partial.parent.mkdir()
    partial.write_bytes(b"half a video")
    staging = sessions / live / "exports" / ".masks.xyz.partial"
    staging.mkdir()
    (staging / "00000.png").write_bytes(b"png")
    upload = data / "tmp" / "upload-0123abcd"
    upload.parent.mkdir(exist_ok=True)
    upload.write_bytes(b"an upload whose request never finished")
    dead_link = data / "outputs" / "token" / "output.mp4"
    dead_link.parent.mkdir(parents=True)
    dead_link.write_bytes(b"a prediction nobody can download any more")
    unreadable = sessions / "not-a-session"
    unreadable.mkdir()

    second = make_client(data_dir=data, session_ttl_seconds=600)
    assert second.get(f"/v1/sessions/{live}").status_code == 200
    assert second.get(f"/v1/sessions/{expired}").status_code == 404
    for path in (partial, staging, upload, dead_link.parent, unreadable, sessions / expired):
        assert not path.exists(), path
    assert (sessions / live / "upload.video").is_file()


def test_a_default_data_dir_is_removed_on_shutdown(tiny_model, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    os.environ["XDG_CACHE_HOME"] = str(tmp_path / "cache")
    try:
        app = create_app(ServerSettings(model_factory=lambda _: tiny_model))
        data = app.state.context.data_dir
        with TestClient(app) as client:
            assert client.get("/healthz").status_code == 200
            assert data.is_dir()
    finally:
        del os.environ["XDG_CACHE_HOME"]
    assert not data.exists()  # nothing could restart from a folder made for one process


def test_a_torn_prompts_log_line_is_ignored(
    make_client: AppFactory, tmp_path: Path, video_bytes: bytes
) -> None:
    data = tmp_path / "torn"
    first = make_client(data_dir=data)
    sid = new_session(first, video_bytes)
    assert first.post(f"/v1/sessions/{sid}/prompts", json=CLICK).status_code == 200
    first.__exit__(None, None, None)
    log = data / "sessions" / sid / "prompts.jsonl"
    assert [json.loads(line)["op"] for line in log.read_text().splitlines()] == ["prompt"]
    with log.open("a") as f:
        f.write('{"op": "prompt", "frame": 1, "obj')  # killed mid-write
    second = make_client(data_dir=data)
    info = second.get(f"/v1/sessions/{sid}").json()
    assert info["objects"] == [{"id": 1, "name": "square"}]
