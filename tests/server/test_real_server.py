"""Against a real uvicorn server on 127.0.0.1: 20 clients at once, and a client that leaves
in the middle of a propagation."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from masklet.io.video import VideoWriter
from tests.server.conftest import HEIGHT, WIDTH, moving_square

CLIENTS = 20
ROUNDS = 2
LIFETIME_SECONDS = 240  # the server exits by itself after this
MAX_RSS_GROWTH_MB = 400  # a leak of uploads, frames or sessions would show far above this
ROOT = Path(__file__).parents[2]


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, int]]:
    if not Path("/proc/self/status").exists():
        pytest.skip("RSS is read from /proc")
    port = free_port()
    data = tmp_path_factory.mktemp("server")
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.server.serve_tiny", str(port), str(data), str(LIFETIME_SECONDS)],
        cwd=ROOT,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert process.poll() is None, "the server exited"
            assert time.monotonic() < deadline, "the server did not start"
            time.sleep(0.2)
        yield url, process.pid
    finally:
        process.terminate()
        process.wait(timeout=30)


def long_video(tmp_path: Path, frames: int) -> bytes:
    path = tmp_path / "long.mp4"
    with VideoWriter(path, fps=10, size=(WIDTH, HEIGHT)) as writer:
        for frame in moving_square(frames):
            writer.write(frame)
    return path.read_bytes()


def one_client(url: str, image: bytes, video: bytes) -> list[int]:
    """A bounded script of requests; returns every status code."""
    statuses = []
    prompts = json.dumps({"objects": [{"id": 1, "points": [[20, 20]]}]})
    with httpx.Client(base_url=url, timeout=120) as client:
        for _ in range(ROUNDS):
            statuses.append(client.get("/healthz").status_code)
            r = client.post("/v1/images:segment", files={"image": ("a.png", image)},
                            data={"prompts": prompts})  # fmt: skip
            statuses.append(r.status_code)
            r = client.post("/v1/sessions", files={"video": ("v.mp4", video)})
            statuses.append(r.status_code)
            if r.status_code != 201:
                continue
            sid = r.json()["id"]
            p = client.post(
                f"/v1/sessions/{sid}/prompts",
                json={"frame": 0, "object_id": 1, "points": [[20, 20]]},
            )
            statuses.append(p.status_code)
            if p.status_code == 200:
                with client.stream(
                    "POST", f"/v1/sessions/{sid}/propagate", json={"max_frames": 2}
                ) as s:
                    statuses.append(s.status_code)
                    s.read()
            statuses.append(client.get(f"/v1/sessions/{sid}/frames/1").status_code)
            statuses.append(client.delete(f"/v1/sessions/{sid}").status_code)
    return statuses


def test_twenty_clients_at_once(
    server: tuple[str, int], image_bytes: bytes, video_bytes: bytes
) -> None:
    url, pid = server
    one_client(url, image_bytes, video_bytes)  # warm up: the model loads on first use
    before = rss_mb(pid)
    began = time.monotonic()
    with ThreadPoolExecutor(CLIENTS) as pool:
        results = list(
            pool.map(lambda _: one_client(url, image_bytes, video_bytes), range(CLIENTS))
        )
    seconds = time.monotonic() - began
    after = rss_mb(pid)
    statuses = [s for r in results for s in r]
    counts = {s: statuses.count(s) for s in sorted(set(statuses))}
    print(
        f"\n{len(statuses)} requests in {seconds:.1f} s: {counts}; RSS {before:.0f} -> {after:.0f} MB"
    )
    assert all(s < 500 for s in statuses), counts
    assert set(counts) <= {200, 201, 204, 429}, counts
    assert counts.get(200, 0) > 0 and counts.get(201, 0) > 0
    assert after - before < MAX_RSS_GROWTH_MB
    health = httpx.get(f"{url}/healthz").json()
    assert health["sessions"] == 0 and health["jobs"] == 0


def test_client_leaving_cancels_propagation(server: tuple[str, int], tmp_path: Path) -> None:
    url, _ = server
    frames = 120
    with httpx.Client(base_url=url, timeout=60) as client:
        sid = client.post(
            "/v1/sessions", files={"video": ("v.mp4", long_video(tmp_path, frames))}
        ).json()["id"]
        client.post(
            f"/v1/sessions/{sid}/prompts", json={"frame": 0, "object_id": 1, "points": [[20, 20]]}
        )
        with client.stream(
            "POST", f"/v1/sessions/{sid}/propagate", json={"direction": "forward"}
        ) as s:
            for line in s.iter_lines():
                if line.startswith("event: frame"):
                    break  # leave after the first frame
        deadline = time.monotonic() + 30
        while client.get(f"/v1/sessions/{sid}").json()["busy"]:
            assert time.monotonic() < deadline, "the propagation kept running"
            time.sleep(0.1)
        info = client.get(f"/v1/sessions/{sid}").json()
        assert info["frames_with_masks"] < frames  # stopped early
        assert client.delete(f"/v1/sessions/{sid}").status_code == 204
