"""Security and limits: API keys, ownership, upload / length limits, queue, TTL, cancel."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator

import pytest
import torch

from masklet.errors import InvalidInputError
from masklet.server.app import create_app
from masklet.server.context import ServerContext
from masklet.server.settings import ServerSettings, settings_from_env
from masklet.video.results import FrameResult
from tests.server.conftest import FRAMES, HEIGHT, WIDTH, AppFactory
from tests.server.test_api import new_session, segment, sse_events

KEY_A, KEY_B = "key-alpha-123", "key-bravo-456"
PROMPT = {"frame": 0, "object_id": 1, "points": [[20, 20]]}


def context(client) -> ServerContext:  # type: ignore[no-untyped-def]
    return client.app.state.context  # type: ignore[no-any-return]


def test_public_host_needs_an_api_key(tmp_path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(InvalidInputError, match="API key"):
        create_app(ServerSettings(host="0.0.0.0", data_dir=tmp_path))
    with pytest.raises(InvalidInputError, match="at least"):
        create_app(ServerSettings(host="0.0.0.0", api_keys=("short",), data_dir=tmp_path))
    assert not any(tmp_path.iterdir())  # refused before anything was written


def test_settings_from_environment() -> None:
    env = {"MASKLET_API_KEY": f"{KEY_A}, {KEY_B}", "MASKLET_MAX_UPLOAD_MB": "5",
           "MASKLET_HOST": "0.0.0.0", "MASKLET_WORKERS": "2"}  # fmt: skip
    settings = settings_from_env(env, workers=3, port=None)
    assert settings.api_keys == (KEY_A, KEY_B) and settings.max_upload_mb == 5.0
    assert settings.workers == 3 and settings.port == 8000 and not settings.is_loopback
    with pytest.raises(InvalidInputError, match="MASKLET_WORKERS"):
        settings_from_env({"MASKLET_WORKERS": "many"})


def test_keys_required_and_sessions_private(make_client: AppFactory, video_bytes: bytes) -> None:
    client = make_client(host="0.0.0.0", api_keys=(KEY_A, KEY_B))
    assert client.get("/healthz").status_code == 200  # liveness needs no key
    missing = client.post("/v1/sessions", files={"video": ("v.mp4", video_bytes)})
    assert missing.status_code == 401 and missing.headers["www-authenticate"] == "Bearer"
    assert missing.json()["error"]["code"] == "unauthorized"
    wrong = client.get("/v1/sessions/x", headers={"Authorization": "Bearer not-a-key"})
    assert wrong.status_code == 401 and wrong.json()["error"]["message"] == "wrong API key"
    basic = client.get("/v1/sessions/x", headers={"Authorization": f"Basic {KEY_A}"})
    assert basic.status_code == 401

    a = {"Authorization": f"Bearer {KEY_A}"}
    b = {"Authorization": f"Bearer {KEY_B}"}
    created = client.post("/v1/sessions", files={"video": ("v.mp4", video_bytes)}, headers=a)
    assert created.status_code == 201
    sid = created.json()["id"]
    assert len(sid) >= 32  # unguessable
    assert client.get(f"/v1/sessions/{sid}", headers=a).status_code == 200
    for method, path in (("get", ""), ("get", "/frames/0"), ("delete", ""), ("post", "/cancel")):
        response = getattr(client, method)(f"/v1/sessions/{sid}{path}", headers=b)
        assert response.status_code == 404, (method, path)
    assert client.post(f"/v1/sessions/{sid}/prompts", json=PROMPT, headers=b).status_code == 404
    assert client.get(f"/v1/sessions/{sid}", headers=a).status_code == 200  # untouched


def test_upload_and_length_limits(
    make_client: AppFactory, video_bytes: bytes, image_bytes: bytes
) -> None:
    small = make_client(max_upload_mb=len(video_bytes) / 2 / (1024 * 1024))
    too_big = small.post("/v1/sessions", files={"video": ("v.mp4", video_bytes)})
    assert too_big.status_code == 413
    assert (
        "limit" in too_big.json()["error"]["message"] and "MB" in too_big.json()["error"]["message"]
    )
    assert not list(context(small).sessions.root.iterdir())  # nothing left behind
    huge = small.post(
        "/v1/images:segment", content=b"x" * 10, headers={"Content-Length": str(1 << 40)}
    )
    assert huge.status_code == 413

    short = make_client(max_video_frames=FRAMES - 1)
    too_long = short.post("/v1/sessions", files={"video": ("v.mp4", video_bytes)})
    assert too_long.status_code == 413
    assert f"{FRAMES} frames" in too_long.json()["error"]["message"]
    assert not list(context(short).sessions.root.iterdir())


def test_max_sessions(make_client: AppFactory, video_bytes: bytes) -> None:
    client = make_client(max_sessions=1)
    new_session(client, video_bytes)
    second = client.post("/v1/sessions", files={"video": ("v.mp4", video_bytes)})
    assert second.status_code == 429 and "Retry-After" in second.headers


def test_full_queue_answers_429(make_client: AppFactory, image_bytes: bytes) -> None:
    client = make_client(workers=1, queue_size=1, retry_after_seconds=3)
    release = threading.Event()
    pool = context(client).pool
    blockers = [pool.submit(lambda: release.wait(10)) for _ in range(2)]  # running + queued
    try:
        response = segment(client, image_bytes, {"objects": [{"id": 1, "points": [[5, 5]]}]})
        assert response.status_code == 429
        assert response.headers["Retry-After"] == "3"
        assert response.json()["error"]["code"] == "busy"
    finally:
        release.set()
        for blocker in blockers:
            blocker.result(timeout=10)
    ok = segment(client, image_bytes, {"objects": [{"id": 1, "points": [[5, 5]]}]})
    assert ok.status_code == 200  # the slots were given back


def test_expired_session_is_removed_from_disk(make_client: AppFactory, video_bytes: bytes) -> None:
    client = make_client(session_ttl_seconds=0)
    sid = new_session(client, video_bytes)
    ctx = context(client)
    directory = ctx.sessions.root / sid
    assert (directory / "upload.video").exists() or not directory.exists()  # sweeper may race
    ctx.sweep()
    assert not directory.exists()
    assert client.get(f"/v1/sessions/{sid}").status_code == 404
    assert len(ctx.sessions) == 0


CANCEL_AT = 3  # the stand-in tracker waits after this many frames until cancel was answered


def _blocking_track(produced: list[int], reached: threading.Event, answered: threading.Event):  # type: ignore[no-untyped-def]
    """A stand-in for `tracking.track` that yields CANCEL_AT frames, then waits until the
    cancel request was answered, then would go on for 10,000 frames (no sleeps, no timing)."""

    def track(predictor, session, direction, start, max_frames) -> Iterator[FrameResult]:  # type: ignore[no-untyped-def]
        for i in range(10_000):
            if i == CANCEL_AT:
                reached.set()
                assert answered.wait(30), "the cancel request was never answered"
            produced.append(i)
            logits = torch.full((1, 1, HEIGHT, WIDTH), -1.0)
            yield FrameResult(i % FRAMES, [1], logits, torch.zeros(1, 1), {1: "a"})

    return track


def test_cancel_stops_propagation(
    make_client: AppFactory, video_bytes: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    produced: list[int] = []
    reached, answered = threading.Event(), threading.Event()
    monkeypatch.setattr(
        "masklet.video.tracking.track", _blocking_track(produced, reached, answered)
    )
    client = make_client()
    sid = new_session(client, video_bytes)
    assert client.post(f"/v1/sessions/{sid}/prompts", json=PROMPT).status_code == 200
    session = context(client).sessions.get(sid, "anonymous")
    answers: list[object] = []

    def cancel_while_running() -> None:
        try:
            if reached.wait(30):  # the job is running: CANCEL_AT frames are out
                answers.append(client.post(f"/v1/sessions/{sid}/cancel").json())
        finally:
            answered.set()

    canceller = threading.Thread(target=cancel_while_running)
    canceller.start()
    events = sse_events(client, f"/v1/sessions/{sid}/propagate", {})
    canceller.join()
    assert answers == [{"cancelled": True}]  # checked here: an assert in the thread is lost
    assert events[-1][0] == "cancelled"
    # the frame being produced when cancel came in may still finish; nothing after it
    assert CANCEL_AT <= len(produced) <= CANCEL_AT + 1
    assert not session.lock.locked() and session.job is None
    assert json.loads(json.dumps(events[-1][1]))["frames"] == len(produced)


def test_one_key_cannot_lock_another_out(make_client: AppFactory, video_bytes: bytes) -> None:
    client = make_client(
        host="0.0.0.0", api_keys=(KEY_A, KEY_B), max_sessions=4, max_sessions_per_key=2
    )
    a = {"Authorization": f"Bearer {KEY_A}"}
    b = {"Authorization": f"Bearer {KEY_B}"}

    def open_session(headers: dict[str, str]) -> int:
        files = {"video": ("v.mp4", video_bytes)}
        return client.post("/v1/sessions", files=files, headers=headers).status_code

    assert [open_session(a), open_session(a)] == [201, 201]
    refused = client.post("/v1/sessions", files={"video": ("v.mp4", video_bytes)}, headers=a)
    assert refused.status_code == 429 and "--max-sessions-per-key" in refused.text
    assert [open_session(b), open_session(b)] == [201, 201]  # A's sessions leave B its share


def test_jobs_per_key_share_the_queue() -> None:
    from masklet.errors import BusyError
    from masklet.server.jobs import WorkerPool

    pool = WorkerPool(workers=1, queue_size=4, per_owner=2)
    release = threading.Event()
    try:
        held = [pool.submit(release.wait, "a") for _ in range(2)]
        with pytest.raises(BusyError, match="--max-jobs-per-key"):
            pool.submit(release.wait, "a")
        other = pool.submit(release.wait, "b")  # another key still gets in
        assert pool.owner_jobs("a") == 2 and pool.owner_jobs("b") == 1
    finally:
        release.set()
    for future in [*held, other]:
        future.result(timeout=10)
    assert pool.owner_jobs("a") == 0 and pool.pending == 0
    pool.submit(lambda: None, "a").result(timeout=10)  # A's share is back
    pool.shutdown()


def test_default_idle_ttl_is_fifteen_minutes() -> None:
    assert ServerSettings().session_ttl_seconds == 15 * 60
