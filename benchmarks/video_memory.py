"""Video memory: masklet's RSS stays flat however long the video; the reference's grows.

masklet tracks one clicked object through synthetic videos of 100, 1,000 and 10,000 frames.
Frames are synthesised on demand by a `FrameSource`, so frame storage cannot grow; what is
measured is the session (memory bank, feature cache) and the allocator. Each length runs in
a fresh subprocess so every peak is independent. PASS when the peak RSS of the longest run is
less than 100 MB above that of the shortest.

The reference (`SAM2VideoPredictor`) loads every frame up front and keeps every output, so it
is run at small lengths (20, 40, 80 frames from a JPEG folder) to show its growth per frame.

    python benchmarks/video_memory.py                       # 100, 1000, 10000 frames
    python benchmarks/video_memory.py --quick               # 30 and 150 frames, small reference
    python benchmarks/video_memory.py --lengths 100,1000 --reference-lengths 20,40
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import threading
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from _common import (
    add_common_args,
    apply_common_args,
    describe_machine,
    median_frame_time,
    peak_rss_mib,
    quiet_reference,
    rss_mib,
    upcast_reference_memory,
)
from PIL import Image

from masklet.config import ModelConfig
from masklet.modeling.sam2 import build_model
from masklet.video.frames import FrameSource
from masklet.video.predictor import VideoPredictor

FLAT_LIMIT_MIB = 100.0  # allowed peak-RSS growth from the shortest to the longest video
SAMPLE_SECONDS = 0.05  # RSS sampling period of the background sampler
SQUARE = 40  # side of the moving square in the synthetic video (pixels)
RESULT_PREFIX = "RESULT "
DEFAULT_LENGTHS, QUICK_LENGTHS = "100,1000,10000", "30,150"
DEFAULT_REF_LENGTHS, QUICK_REF_LENGTHS = "20,40,80", "10,20,40"


class SyntheticVideo(FrameSource):
    """Frame i of a textured background with a square moving across it, made on demand.

    Nothing is stored but the background, so the source costs the same for any length.
    """

    def __init__(self, num_frames: int, height: int, width: int, seed: int = 0) -> None:
        self._count = num_frames
        self.height, self.width, self.fps = height, width, 30.0
        rng = np.random.default_rng(seed)
        self._background = rng.integers(0, 90, (height, width, 3), dtype=np.uint8)

    @property
    def num_frames(self) -> int:
        return self._count

    def get(self, index: int) -> np.ndarray:
        """[H, W, 3] uint8 RGB."""
        index = self._check_index(index)
        frame = self._background.copy()
        x = (3 * index) % (self.width - SQUARE)
        y = self.height // 3 + int(10 * np.sin(index / 15.0))
        frame[y : y + SQUARE, x : x + SQUARE] = (230, 50, 40)
        return frame

    def click(self) -> list[list[float]]:
        """One point inside the square on frame 0, as [[x, y]]."""
        return [[SQUARE / 2, self.height // 3 + SQUARE / 2]]


class RssSampler:
    """Samples this process's RSS in a background thread; keeps only the maximum."""

    def __init__(self) -> None:
        self.max_mib = rss_mib()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(SAMPLE_SECONDS):
            self.max_mib = max(self.max_mib, rss_mib())

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join()
        self.max_mib = max(self.max_mib, rss_mib())


@dataclass
class RunResult:
    side: str
    frames: int
    start_mib: float  # RSS before the session is created (model built, nothing loaded)
    peak_mib: float  # highest RSS seen during the run
    end_mib: float  # RSS after the last frame
    seconds_per_frame: float  # median over the propagated frames

    @property
    def growth_mib(self) -> float:
        return self.peak_mib - self.start_mib


# ---- child processes -----------------------------------------------------------------------


def _config(args: argparse.Namespace) -> ModelConfig:
    from tests.parity.reference import small_config

    return small_config(args.model, image_size=args.image_size)


def _run_masklet(args: argparse.Namespace) -> RunResult:
    torch.manual_seed(args.seed)  # weights do not change the memory footprint: random is fine
    predictor = VideoPredictor(build_model(_config(args)).eval())
    video = SyntheticVideo(args.frames, args.height, args.width, args.seed)
    start = rss_mib()
    with RssSampler() as sampler:
        session = predictor.init_state(video)
        predictor.add_new_points_or_box(session, 0, 1, points=video.click(), labels=[1])
        # the caller would write each frame out; nothing is kept
        per_frame = median_frame_time(predictor.propagate_in_video(session))
    peak = max(sampler.max_mib, peak_rss_mib())
    return RunResult("masklet", args.frames, start, peak, rss_mib(), per_frame)


def _run_reference(args: argparse.Namespace) -> RunResult:
    from tests.parity.reference import reference_video_model

    torch.manual_seed(args.seed)
    quiet_reference()
    ref = reference_video_model(_config(args))
    upcast_reference_memory(ref)
    video = SyntheticVideo(args.frames, args.height, args.width, args.seed)
    with tempfile.TemporaryDirectory() as folder:
        for i in range(args.frames):
            Image.fromarray(video.get(i)).save(Path(folder) / f"{i:05d}.jpg", quality=95)
        start = rss_mib()
        with RssSampler() as sampler, torch.inference_mode():
            state = ref.init_state(folder)
            ref.add_new_points_or_box(state, 0, 1, points=video.click(), labels=[1])
            per_frame = median_frame_time(ref.propagate_in_video(state))
        peak = max(sampler.max_mib, peak_rss_mib())
        return RunResult("reference", args.frames, start, peak, rss_mib(), per_frame)


def child_main(args: argparse.Namespace) -> None:
    apply_common_args(args)
    result = _run_masklet(args) if args.child == "masklet" else _run_reference(args)
    print(RESULT_PREFIX + json.dumps(asdict(result)), flush=True)


# ---- parent --------------------------------------------------------------------------------


def run_child(side: str, frames: int, args: argparse.Namespace) -> RunResult:
    cmd = [
        sys.executable, __file__, "--child", side, "--frames", str(frames),
        "--model", args.model, "--image-size", str(args.image_size),
        "--height", str(args.height), "--width", str(args.width),
        "--threads", str(args.threads), "--seed", str(args.seed), "--clock", args.clock,
    ]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith(RESULT_PREFIX)]
    if proc.returncode != 0 or not lines:
        sys.stderr.write(proc.stderr)
        raise SystemExit(f"{side} run with {frames} frames failed (exit {proc.returncode})")
    return RunResult(**json.loads(lines[-1][len(RESULT_PREFIX) :]))


def _lengths(text: str) -> list[int]:
    try:
        values = sorted({int(v) for v in text.split(",") if v.strip()})
    except ValueError:
        raise SystemExit(f"lengths must be comma-separated integers, got {text!r}") from None
    if not values or values[0] < 2:
        raise SystemExit(f"lengths must be integers >= 2, got {text!r}")
    return values


def print_runs(results: list[RunResult]) -> None:
    head = (
        f"{'side':<10} {'frames':>7} {'start MiB':>10} {'peak MiB':>9} {'end MiB':>8} "
        f"{'growth MiB':>11} {'s/frame':>8}"
    )
    print(head)
    print("-" * len(head))
    for r in results:
        print(
            f"{r.side:<10} {r.frames:>7} {r.start_mib:>10.1f} {r.peak_mib:>9.1f} "
            f"{r.end_mib:>8.1f} {r.growth_mib:>11.1f} {r.seconds_per_frame:>8.3f}"
        )


def growth_per_frame(results: list[RunResult]) -> float:
    """Least-squares slope of (peak - start) MiB against the number of frames."""
    if len(results) < 2:
        return float("nan")
    x = np.array([r.frames for r in results], dtype=np.float64)
    y = np.array([r.growth_mib for r in results], dtype=np.float64)
    return float(np.polyfit(x, y, 1)[0])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--model", default="sam2.1_hiera_tiny", choices=ModelConfig.names())
    p.add_argument("--image-size", type=int, default=128, help="model input side (default 128)")
    p.add_argument("--height", type=int, default=240, help="frame height (default 240)")
    p.add_argument("--width", type=int, default=320, help="frame width (default 320)")
    p.add_argument("--lengths", help=f"masklet video lengths (default {DEFAULT_LENGTHS})")
    p.add_argument(
        "--reference-lengths",
        help=f"reference video lengths (default {DEFAULT_REF_LENGTHS}; empty to skip)",
    )
    p.add_argument("--child", choices=("masklet", "reference"), help=argparse.SUPPRESS)
    p.add_argument("--frames", type=int, help=argparse.SUPPRESS)
    add_common_args(p, profile=False)
    args = p.parse_args(argv)
    if args.child:
        child_main(args)
        return 0

    lengths = _lengths(args.lengths or (QUICK_LENGTHS if args.quick else DEFAULT_LENGTHS))
    ref_text = args.reference_lengths
    if ref_text is None:
        ref_text = QUICK_REF_LENGTHS if args.quick else DEFAULT_REF_LENGTHS
    ref_lengths = _lengths(ref_text) if ref_text.strip() else []

    print(
        f"video memory benchmark: small {args.model} at {args.image_size}, "
        f"frames {args.width}x{args.height}, one object clicked on frame 0, tracked forward"
    )
    print(describe_machine(args))
    ours: list[RunResult] = []
    for n in lengths:
        if ours:
            est = ours[-1].seconds_per_frame * n
            print(f"  masklet {n} frames: about {est:.0f} s ({est / 60:.1f} min) expected")
        ours.append(run_child("masklet", n, args))
        print(f"  masklet {n} frames: {ours[-1].seconds_per_frame:.3f} s/frame", flush=True)
    refs = []
    for n in ref_lengths:
        refs.append(run_child("reference", n, args))
        print(f"  reference {n} frames done", flush=True)

    print()
    print_runs(ours + refs)
    print()
    flat = ours[-1].peak_mib - ours[0].peak_mib
    ok = flat < FLAT_LIMIT_MIB
    print(
        f"masklet growth per frame {growth_per_frame(ours) * 1024:.2f} KiB; "
        f"reference growth per frame {growth_per_frame(refs) * 1024:.2f} KiB"
    )
    if refs:
        extra = growth_per_frame(refs) * ours[-1].frames
        print(f"  (the reference at {ours[-1].frames} frames would need ~{extra:.0f} MiB more)")
    print(
        f"TARGET masklet peak RSS {ours[0].frames} -> {ours[-1].frames} frames: "
        f"{flat:+.1f} MiB (target < {FLAT_LIMIT_MIB:g} MiB) {'PASS' if ok else 'FAIL'}"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
