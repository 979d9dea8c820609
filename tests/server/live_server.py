"""A real `masklet serve`-like process (tests.server.serve_tiny) on 127.0.0.1 for tests that
need sockets, signals or a kill: start it, wait until it answers, talk raw HTTP."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).parents[2]
START_SECONDS = 60.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class LiveServer:
    process: subprocess.Popen[bytes]
    port: int
    data_dir: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def health(self) -> dict[str, Any]:
        return httpx.get(f"{self.url}/healthz", timeout=5).json()  # type: ignore[no-any-return]

    def wait_for(self, condition: Any, seconds: float, what: str) -> float:
        """Poll `condition(health)` until true; returns the seconds it took."""
        began = time.monotonic()
        while True:
            if condition(self.health()):
                return time.monotonic() - began
            assert self.process.poll() is None, "the server exited"
            assert time.monotonic() - began < seconds, f"{what}: not within {seconds}s"
            time.sleep(0.05)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(timeout=30)


def start_server(
    data_dir: Path, lifetime: float = 240, port: int | None = None, **settings: Any
) -> LiveServer:
    """serve_tiny on a free port with `settings`; returns once /healthz answers."""
    port = port or free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.server.serve_tiny", str(port), str(data_dir),
         str(lifetime), json.dumps(settings)],
        cwd=ROOT,
    )  # fmt: skip
    server = LiveServer(process, port, data_dir)
    deadline = time.monotonic() + START_SECONDS
    while True:
        try:
            if httpx.get(f"{server.url}/healthz", timeout=1).status_code == 200:
                return server
        except httpx.TransportError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            server.stop()
            raise AssertionError("the server did not start")
        time.sleep(0.2)


def raw_post(
    port: int, path: str, body: bytes, content_type: str = "application/json"
) -> socket.socket:
    """Send a whole POST request and return the open socket without reading the answer (close
    it to play a client that went away)."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    head = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: {content_type}\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    )
    sock.sendall(head.encode() + body)
    return sock
