"""What a video's progress reports cost on a Ray actor: the same video run back to back as a
plain task (no progress), a streaming task reporting every frame, and one reporting every
`REPORT_EVERY` seconds (the executor's default); the medians of each over the plain task.

Runs on the bundled model (`masklet-nano-synthetic`), one actor of 1 CPU on a local Ray.
Each video is run in all three ways in a rotating order, so a pair sees the same machine
(whole runs a minute apart differ by up to 20% on a shared 2-core machine).

    python benchmarks/ray_progress.py              # 8 videos x 32 frames, 4 rounds
    python benchmarks/ray_progress.py --quick      # 2 videos x 16 frames, 1 round
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))  # tests/media.py writes the clips

from tests.media import write_square_clip  # noqa: E402

from masklet.batch.item import WorkerSpec  # noqa: E402
from masklet.batch.manifest import BatchItem, items_from_specs  # noqa: E402
from masklet.batch.ray import REPORT_EVERY, BatchActor  # noqa: E402

MODEL = "masklet-nano-synthetic"
MODES = ("plain task", "every frame", f"every {REPORT_EVERY} s")


def run_video(ray: Any, actor: Any, mode: str, item: BatchItem) -> float:
    """Seconds `run_item` took on the actor, the driver reading every report as it comes."""
    out = tempfile.mkdtemp()
    if mode == "plain task":
        return float(ray.get(actor.run.remote(item, out)).seconds)
    every = 0.0 if mode == "every frame" else REPORT_EVERY
    for ref in actor.stream.options(num_returns="streaming").remote(item, out, every):
        last = ray.get(ref)
    return float(last.seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--videos", type=int, default=8)
    parser.add_argument("--frames", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    if args.quick:
        args.videos, args.frames, args.rounds = 2, 16, 1
    import ray

    with tempfile.TemporaryDirectory() as tmp:
        for k in range(args.videos):
            write_square_clip(Path(tmp) / f"clip{k}.mp4", args.frames, (160, 120), 24, step=2)
        specs = [{"input": f"clip{k}.mp4", "click_coordinates": "[20,20]"}
                 for k in range(args.videos)]  # fmt: skip
        items = items_from_specs(specs, base=tmp)
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
        actor = ray.remote(num_cpus=1)(BatchActor).remote(WorkerSpec(MODEL, threads=1))
        run_video(ray, actor, "plain task", items[0])  # warm-up: the model is loaded
        seconds: dict[str, list[float]] = {mode: [] for mode in MODES}
        turn = 0
        for _ in range(args.rounds):
            for item in items:
                for mode in MODES[turn % 3 :] + MODES[: turn % 3]:
                    seconds[mode].append(run_video(ray, actor, mode, item))
                turn += 1
        ray.shutdown()
    plain = seconds["plain task"]
    print(f"{len(plain)} videos x {args.frames} frames, 1 actor of 1 CPU")
    for mode in MODES:
        ratios = [s / p for s, p in zip(seconds[mode], plain)]
        print(f"{mode:16s} median {statistics.median(seconds[mode]) * 1000:7.1f} ms per video, "
              f"{statistics.median(ratios):.3f}x the plain task (median of pairs)")  # fmt: skip


if __name__ == "__main__":
    main()
