"""Before/after probes for issue 17, points 1-5, against a real tests.server.serve_tiny process.

usage: python benchmarks/server_probe_issue17.py ROOT   (ROOT: a checkout whose src/ and tests/ run)
Prints one table row per probe: request, status, seconds (and RSS for the 12000x12000 PNG)."""

import base64
import io
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np
from PIL import Image

ROOT = Path(sys.argv[1])
env = dict(os.environ, PYTHONPATH=f"{ROOT}/src:{ROOT}", OMP_NUM_THREADS="1")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start():
    port = free_port()
    data = tempfile.mkdtemp(prefix="s17m-")
    p = subprocess.Popen(
        [sys.executable, "-m", "tests.server.serve_tiny", str(port), data, "300"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                return p, port, url
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise SystemExit("no start")


def hwm(pid):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) // 1024


def rss(pid):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) // 1024


def video(n):
    sys.path.insert(0, str(ROOT))
    sys.path.insert(0, str(ROOT / "src"))
    from tests.server.conftest import moving_square

    from masklet.io.video import VideoWriter

    path = Path(tempfile.mkdtemp()) / "v.mp4"
    with VideoWriter(path, fps=10, size=(64, 48)) as w:
        for f in moving_square(n):
            w.write(f)
    return path.read_bytes()


def uri(v):
    return "data:video/mp4;base64," + base64.b64encode(v).decode()


def raw(port, path, body, ct="application/json"):
    s = socket.create_connection(("127.0.0.1", port), timeout=60)
    s.sendall(
        f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: {ct}\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
        + body
    )
    return s


def jobs(url):
    return httpx.get(url + "/healthz", timeout=5).json()["jobs"]


def show(point, request, status, seconds, extra=""):
    print(f"| {point} | {request} | {status} | {seconds:.2f} s | {extra} |", flush=True)


short = video(48)
p, port, url = start()
try:
    c = httpx.Client(base_url=url, timeout=600)
    c.post(
        "/predictions",
        json={"input": {"input_video": uri(video(3)), "click_coordinates": "[20,20]"}},
    )  # warm up
    # 1: 10,000 clicks, no object ids
    clicks = ",".join(f"[{5 + i % 50},{5 + i % 40}]" for i in range(10_000))
    t = time.monotonic()
    try:
        r = c.post(
            "/predictions",
            json={"input": {"input_video": uri(short), "click_coordinates": clicks}},
            timeout=120,
        )
        status = f"{r.status_code} {r.text[:110]}"
    except httpx.TimeoutException:
        status = "no answer in 120 s"
    show(1, "POST /predictions, 10,000 clicks", status, time.monotonic() - t)
    while jobs(url):
        time.sleep(0.5)
    # 4: deep JSON
    deep = "[" * 100_000 + "]" * 100_000
    t = time.monotonic()
    r = c.post("/predictions", content=deep, headers={"Content-Type": "application/json"})
    show(
        4,
        "POST /predictions, body [[[...]]] 100,000 levels",
        f"{r.status_code} {r.text[:110]}",
        time.monotonic() - t,
    )
    png = io.BytesIO()
    Image.fromarray(np.zeros((48, 64, 3), np.uint8)).save(png, format="PNG")
    t = time.monotonic()
    r = c.post(
        "/v1/images:segment", files={"image": ("a.png", png.getvalue())}, data={"prompts": deep}
    )
    show(
        4,
        "POST /v1/images:segment, prompts [[[...]]] 100,000 levels",
        f"{r.status_code} {r.text[:110]}",
        time.monotonic() - t,
    )
    # 5: 12000x12000 PNG
    big = io.BytesIO()
    Image.new("L", (12000, 12000)).save(big, format="PNG", optimize=True)
    before = rss(p.pid)
    t = time.monotonic()
    r = c.post(
        "/v1/images:segment",
        files={"image": ("big.png", big.getvalue())},
        data={"prompts": json.dumps({"objects": [{"id": 1, "points": [[20, 20]]}]})},
    )
    show(
        5,
        f"POST /v1/images:segment, 12000x12000 PNG ({len(big.getvalue()) // 1024} KB)",
        f"{r.status_code} {r.text[:110]}",
        time.monotonic() - t,
        f"RSS {before} MB -> peak {hwm(p.pid)} MB",
    )
    # 2: disconnect mid-job
    long = video(300)
    body = json.dumps(
        {"input": {"input_video": uri(long), "click_coordinates": "[20,20]"}}
    ).encode()
    s = raw(port, "/predictions", body)
    while jobs(url) == 0:
        time.sleep(0.05)
    time.sleep(1.0)
    s.close()
    t = time.monotonic()
    while jobs(url) and time.monotonic() - t < 10:
        time.sleep(0.05)
    left = jobs(url)
    show(
        2,
        "POST /predictions (300 frames), client closes after 1 s",
        f"jobs after: {left}",
        time.monotonic() - t,
        "time until /healthz jobs == 0"
        if not left
        else "job still running 10 s after the client left",
    )
    while jobs(url):
        time.sleep(0.5)
    # 3: SIGTERM during a job
    s = raw(port, "/predictions", body)
    while jobs(url) == 0:
        time.sleep(0.05)
    time.sleep(1.0)
    p.send_signal(signal.SIGTERM)
    t = time.monotonic()
    try:
        code = p.wait(timeout=60)
        what = f"exited (code {code})"
    except subprocess.TimeoutExpired:
        what = "still alive after 60 s"
    show(3, "SIGTERM during POST /predictions (300 frames)", what, time.monotonic() - t)
    s.close()
finally:
    if p.poll() is None:
        p.kill()
        p.wait()
