"""The README's setup commands and offline Quickstart, read from README.md and run as written
(in a temporary folder, with the already installed package: the `pip install` parts are
skipped), so the README cannot drift from what masklet does."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
TEST_COMMAND = "python -m pytest -q"  # what CI runs (.ci/run): it must stay exactly this
_BLOCK = re.compile(r"<!-- readme-test: (\w+) -->\s*```bash\n(.*?)```", re.DOTALL)


def readme_blocks() -> dict[str, list[str]]:
    """Marked bash blocks of the README: name -> its commands (continuation lines joined,
    comments dropped, quoting kept as written)."""
    blocks: dict[str, list[str]] = {}
    for name, body in _BLOCK.findall(README.read_text(encoding="utf-8")):
        assert name not in blocks, f"two README blocks are marked {name!r}"
        joined = re.sub(r"\s*\\\n\s*", " ", body)
        blocks[name] = [_without_comment(line) for line in joined.splitlines() if line.strip()]
        assert all(blocks[name]), f"README block {name!r} has an empty command"
    return blocks


def _without_comment(line: str) -> str:
    """`line` up to a `#` that starts a shell comment (outside quotes, after a space)."""
    quote = ""
    for i, char in enumerate(line):
        if quote:
            quote = "" if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char == "#" and (i == 0 or line[i - 1].isspace()):
            return line[:i].strip()
    return line.strip()


def _parts(command: str) -> list[str]:
    return [part.strip() for part in command.split("&&")]


def _is_install(part: str) -> bool:
    return "pip install" in part


def _run(part: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        ["bash", "-c", part], cwd=cwd, env=env, capture_output=True, text=True, timeout=900
    )
    assert done.returncode == 0, f"README command failed: {part}\n{done.stdout}\n{done.stderr}"
    return done


@pytest.fixture(scope="module")
def offline_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """No official checkpoint cached, Hub clients offline: what a fresh machine has."""
    env = dict(os.environ)
    env["MASKLET_CACHE"] = str(tmp_path_factory.mktemp("empty-cache"))
    env["HF_HUB_OFFLINE"] = "1"
    env.setdefault("OMP_NUM_THREADS", "1")
    return env


def test_the_setup_section_has_exactly_two_commands() -> None:
    blocks = readme_blocks()
    assert len(blocks["run"]) == 1 and len(blocks["test"]) == 1
    run, test = blocks["run"][0], blocks["test"][0]
    first_install = _parts(run)[0]
    assert first_install.startswith("pip install torch")
    assert "--index-url https://download.pytorch.org/whl/cpu" in first_install  # CPU wheel
    assert _parts(run)[1] == "pip install ."
    assert _parts(test)[-1] == TEST_COMMAND
    assert all(_is_install(part) for part in _parts(test)[:-1])
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8").strip().splitlines()
    assert ci[-1] == TEST_COMMAND, "CI must run the README's test command"
    extras = re.search(r'pip install -e "\.\[([\w,]+)\]"', test)
    assert extras is not None
    pyproject = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    for extra in extras[1].split(","):
        assert re.search(rf"^{extra} = \[", pyproject, re.MULTILINE), f"no extra {extra!r}"


def test_the_test_command_runs_from_the_repository(offline_env: dict[str, str]) -> None:
    # Running the whole suite from inside itself would recurse: the command is checked as
    # written above; here it collects one module from the repository root.
    done = _run(f"{TEST_COMMAND} --collect-only tests/test_prompts.py", ROOT, offline_env)
    assert re.search(r"\d+ tests? collected", done.stdout)


def test_the_run_command_and_the_quickstart_work_offline(
    tmp_path: Path, offline_env: dict[str, str]
) -> None:
    blocks = readme_blocks()
    outputs: list[str] = []
    done_commands: set[str] = set()
    for part in _parts(blocks["run"][0]):
        if _is_install(part):
            continue  # the package under test is installed already
        outputs.append(_run(part, tmp_path, offline_env).stdout)
        done_commands.add(part)
    printed = "\n".join(outputs)

    # the clicks in the README are the ones the demo prints for its clip
    demo_line = next(line for line in printed.splitlines() if line.startswith("wrote demo.mp4"))
    clicks = re.search(r"objects at (\S+) on frame 0", demo_line)
    assert clicks is not None and f'"{clicks[1]}"' in blocks["run"][0]

    # the overlay video, one id PNG per frame and the JSON, each reported where it went
    for name in ("tracked.mp4", "masks", "masks.json"):
        assert f"wrote {name}" in printed
    assert (tmp_path / "tracked.mp4").stat().st_size > 10_000
    pngs = sorted((tmp_path / "masks").glob("*.png"))
    assert len(pngs) == 48
    first = np.asarray(Image.open(pngs[0]))
    assert set(np.unique(first).tolist()) >= {0, 1, 2}, "both objects on frame 0"
    coco = json.loads((tmp_path / "masks.json").read_text())
    assert coco, "masks.json is empty"
    assert (tmp_path / "sample.png").is_file()

    for command in blocks["quickstart"]:
        if command not in done_commands:  # the same clip and tracking are not redone
            _run(command, tmp_path, offline_env)
    overlay = np.asarray(Image.open(tmp_path / "overlay.png").convert("RGB"))
    sample = np.asarray(Image.open(tmp_path / "sample.png").convert("RGB"))
    assert overlay.shape == sample.shape and not np.array_equal(overlay, sample)
    ids = np.asarray(Image.open(tmp_path / "ids.png"))
    assert 0 < np.count_nonzero(ids) < ids.size, "degenerate image mask"
