"""Issue 17, points 2 and 3, against a real server process on 127.0.0.1: a client that leaves
cancels its job (queued ones never start), and SIGTERM during a job exits within the grace."""

from __future__ import annotations

import base64
import json
import signal
import time
from pathlib import Path

import pytest

from masklet.io.video import VideoWriter
from tests.server.conftest import HEIGHT, WIDTH, moving_square
from tests.server.live_server import raw_post, start_server

LONG_FRAMES = 300  # ~45 s of tracking with the tiny model: far longer than any wait below
GONE_SECONDS = 2.0  # the bound: no job left this long after the client left
GRACE_SECONDS = 5.0


@pytest.fixture(scope="module")
def long_video(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    path = tmp_path_factory.mktemp("long") / "long.mp4"
    with VideoWriter(path, fps=10, size=(WIDTH, HEIGHT)) as writer:
        for frame in moving_square(LONG_FRAMES):
            writer.write(frame)
    return path.read_bytes()


def prediction_body(video: bytes) -> bytes:
    uri = "data:video/mp4;base64," + base64.b64encode(video).decode()
    return json.dumps({"input": {"input_video": uri, "click_coordinates": "[20,20]"}}).encode()


def test_a_client_that_leaves_cancels_its_job(tmp_path: Path, long_video: bytes) -> None:
    server = start_server(tmp_path / "data", workers=1)
    try:
        running = raw_post(server.port, "/predictions", prediction_body(long_video))
        server.wait_for(lambda h: h["jobs"] == 1, 30, "the first job starts")
        queued = raw_post(server.port, "/predictions", prediction_body(long_video))
        server.wait_for(lambda h: h["jobs"] == 2, 30, "the second job queues")
        time.sleep(1.0)  # the first job is tracking frames now
        queued.close()
        running.close()
        server.wait_for(lambda h: h["jobs"] == 0, GONE_SECONDS, "jobs of gone clients")
        # cancelled, not finished: a prediction's outputs are deleted when it does not succeed
        assert list((server.data_dir / "outputs").iterdir()) == []
        # the server still serves
        assert server.health()["status"] == "ok"
    finally:
        server.stop()


def test_sigterm_during_a_job_exits_within_the_grace(tmp_path: Path, long_video: bytes) -> None:
    server = start_server(tmp_path / "data", shutdown_grace_seconds=GRACE_SECONDS)
    try:
        client = raw_post(server.port, "/predictions", prediction_body(long_video))
        server.wait_for(lambda h: h["jobs"] == 1, 30, "the job starts")
        time.sleep(1.0)
        server.process.send_signal(signal.SIGTERM)
        code = server.process.wait(timeout=GRACE_SECONDS)  # raises if it is still alive
        # a clean exit (uvicorn re-raises the signal it handled), not the watchdog's exit 1
        assert code in (0, -signal.SIGTERM), code
        answer = client.recv(65536).decode(errors="replace")
        assert answer.startswith("HTTP/1.1 503") and '"cancelled"' in answer, answer[:300]
        client.close()
    finally:
        server.stop()
