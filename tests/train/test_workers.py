"""Worker processes do not outlive a killed parent (`masklet.train.workers`)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="finds child processes through /proc"
)


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "Z"  # a zombie has ended; only its exit status is left


def _wait_for(condition: Callable[[], bool], seconds: float) -> bool:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if condition():
            return True
        time.sleep(0.1)
    return condition()


def _children(parent: int, marker: str) -> list[int]:
    """Pids whose parent is `parent` and whose command line contains `marker`."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except (FileNotFoundError, ProcessLookupError, IndexError, ValueError):
            continue
        if ppid == parent and marker in cmdline:
            found.append(int(entry.name))
    return found


def test_a_watched_process_ends_when_its_parent_is_killed(tmp_path: Path) -> None:
    # parent: starts a child that watches it (given the parent's pid, as the workers are),
    # prints the child's pid, then waits; the child says when it is watching
    ready = tmp_path / "watching"
    child = (
        "import pathlib, sys, time; from masklet.train.workers import exit_with_parent; "
        "exit_with_parent(int(sys.argv[1]), interval=0.05); "
        f"pathlib.Path({str(ready)!r}).touch(); time.sleep(120)"
    )
    parent_code = (
        "import os, subprocess, sys, time; "
        f"p = subprocess.Popen([sys.executable, '-c', {child!r}, str(os.getpid())]); "
        "print(p.pid, flush=True); time.sleep(120)"
    )
    parent = subprocess.Popen([sys.executable, "-c", parent_code], stdout=subprocess.PIPE)
    watched = 0
    try:
        assert parent.stdout is not None
        watched = int(parent.stdout.readline())
        assert _wait_for(ready.exists, 60.0)
        assert _alive(watched)  # watching a living parent: keeps running
        parent.kill()
        parent.wait()
        assert _wait_for(lambda: not _alive(watched), 10.0)
    finally:
        parent.kill()
        if watched and _alive(watched):
            os.kill(watched, signal.SIGKILL)


def test_killing_masklet_train_ends_its_workers(tmp_path: Path) -> None:
    from tests.cli.test_train_cli import TINY

    config = tmp_path / "tiny.json"
    config.write_text(json.dumps(TINY))
    args = [
        "train", "--data", "synthetic", "--config-json", str(config), "--steps", "100000",
        "--num-frames", "2", "--batch-size", "2", "--workers", "2", "--out",
        str(tmp_path / "run"), "--device", "cpu", "--quiet",
    ]  # fmt: skip
    code = f"from masklet.cli.main import main; raise SystemExit(main({args!r}))"
    run = subprocess.Popen([sys.executable, "-c", code])
    workers: list[int] = []
    try:
        assert _wait_for(lambda: len(_children(run.pid, "spawn_main")) == 2, 120.0), (
            "the two workers never started"
        )
        workers = _children(run.pid, "spawn_main")
        run.send_signal(signal.SIGKILL)  # no chance to stop its workers
        run.wait()
        assert _wait_for(lambda: not any(_alive(pid) for pid in workers), 15.0), (
            "workers still running after their parent was killed"
        )
    finally:
        run.kill()
        for pid in workers:
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
