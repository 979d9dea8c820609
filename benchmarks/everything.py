"""Segment everything: masklet `AutomaticMaskGenerator` vs the reference
`SAM2AutomaticMaskGenerator`, speed and peak memory.

Same weights (one perturbed random state dict in both), same structured image.

1. Speed: `generate()` (embedding included) on a 1200x900 image with `sam2.1_hiera_tiny` at
   1024 and the default settings, timed in alternation; medians and the ratio
   masklet/reference (target <= 1.0). The two sides' records are compared as a check that the
   same work was timed.
2. Peak RSS: `generate()` on a 4000x3000 image with `crop_n_layers=1`, each side in a fresh
   process; start (models built), peak, and growth. The reference upscales every mask of a
   decoder batch to the crop size before filtering (points_per_batch x 3 x H x W floats: 9 GB
   at 4000x3000 with the default 64), so this part uses --rss-points-per-batch (default 16)
   on both sides, plus one masklet run at the default 64 to show its peak does not follow it.
   A side that exceeds --rss-limit-mib stops itself and is reported as over the limit.

    python benchmarks/everything.py                           # defaults (slow on 2 cores)
    python benchmarks/everything.py --quick                   # 8 points per side, 512 input
    python benchmarks/everything.py --points-per-side 16 --repeats 2 --skip-rss
    python benchmarks/everything.py --pred-iou-thresh 0 --stability-score-thresh 0 --skip-rss
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
from _common import (
    Row,
    add_common_args,
    alternate,
    apply_common_args,
    describe_machine,
    model_pair,
    peak_rss_mib,
    print_table,
    rss_mib,
    structured_image,
    summary,
    timed,
)

from masklet.config import ModelConfig
from masklet.everything import AutomaticMaskGenerator

TARGET_RATIO = 1.0
QUICK_IMAGE_SIZE, QUICK_POINTS, QUICK_REPEATS = 512, 8, 1
RESULT_PREFIX = "RESULT "
SAMPLE_SECONDS = 0.05
LEVEL_STRIDES = (4, 8, 16)  # feature strides the reference predictor keeps


def reference_generator(ref_model: torch.nn.Module, image_size: int, **options: Any) -> Any:
    from sam2.automatic_mask_generator import SAM2AutomaticMaskGenerator

    gen = SAM2AutomaticMaskGenerator(ref_model, **options)
    # the reference hard-codes the feature sizes of a 1024 input
    gen.predictor._bb_feat_sizes = [(image_size // s, image_size // s) for s in LEVEL_STRIDES]
    return gen


def _config(args: argparse.Namespace) -> ModelConfig:
    import dataclasses

    return dataclasses.replace(ModelConfig.named(args.model), image_size=args.image_size)


def same_records(a: list[dict[str, Any]], b: list[dict[str, Any]]) -> str:
    """'identical' or what differs first."""
    if len(a) != len(b):
        return f"{len(a)} vs {len(b)} records"
    for i, (x, y) in enumerate(zip(a, b)):
        if not np.array_equal(x["segmentation"], y["segmentation"]) or x["bbox"] != y["bbox"]:
            return f"record {i} differs"
    return "identical"


# ---- speed ---------------------------------------------------------------------------------


def run_speed(args: argparse.Namespace) -> bool:
    ours_model, ref_model = model_pair(_config(args), seed=args.seed)
    image = structured_image(args.height, args.width, seed=args.seed)
    options = dict(
        points_per_side=args.points_per_side,
        pred_iou_thresh=args.pred_iou_thresh,
        stability_score_thresh=args.stability_score_thresh,
    )
    ours = AutomaticMaskGenerator(ours_model, **options)
    ref = reference_generator(ref_model, args.image_size, **options)
    out: dict[str, list[dict[str, Any]]] = {}

    def run_ours() -> float:
        return timed(lambda: out.__setitem__("ours", ours.generate(image)))

    def run_ref() -> float:
        return timed(lambda: out.__setitem__("ref", ref.generate(image)))

    with torch.inference_mode():
        a, b = alternate(run_ours, run_ref, args.repeats, warmup=args.warmup)
    label = f"generate {args.width}x{args.height}, {args.points_per_side}^2 pts"
    row = Row(label, a, b)
    print(
        f"\n== speed: {args.model} at {args.image_size}, defaults but points_per_side="
        f"{args.points_per_side}, pred_iou_thresh={args.pred_iou_thresh}, "
        f"stability_score_thresh={args.stability_score_thresh} =="
    )
    print_table([row], unit="s")
    print(f"records: {len(out['ours'])} masklet, {len(out['ref'])} reference: "
          f"{same_records(out['ours'], out['ref'])}")  # fmt: skip
    return summary(row, TARGET_RATIO)


# ---- memory (one side per process) ---------------------------------------------------------


@dataclass
class RssResult:
    side: str
    points_per_batch: int
    start_mib: float  # models built, image made, nothing generated
    peak_mib: float
    seconds: float
    records: int
    over_limit: bool = False

    @property
    def growth_mib(self) -> float:
        return self.peak_mib - self.start_mib


class RssWatch:
    """Samples RSS in a background thread, keeps the maximum, and ends the process (printing
    an over-limit result) if it passes `limit_mib`, so a run cannot exhaust a shared machine."""

    def __init__(self, limit_mib: float, on_limit: RssResult) -> None:
        self.max_mib = rss_mib()
        self._limit = limit_mib
        self._on_limit = on_limit
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(SAMPLE_SECONDS):
            self.max_mib = max(self.max_mib, rss_mib())
            if self.max_mib > self._limit:
                self._on_limit.peak_mib, self._on_limit.over_limit = self.max_mib, True
                print(RESULT_PREFIX + json.dumps(asdict(self._on_limit)), flush=True)
                os._exit(0)

    def __enter__(self) -> RssWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join()


def child_main(args: argparse.Namespace) -> None:
    apply_common_args(args)
    ours_model, ref_model = model_pair(_config(args), seed=args.seed)
    image = structured_image(args.rss_height, args.rss_width, seed=args.seed)
    options = dict(
        points_per_side=args.rss_points_per_side,
        points_per_batch=args.rss_points_per_batch,
        pred_iou_thresh=args.pred_iou_thresh,
        stability_score_thresh=args.stability_score_thresh,
        crop_n_layers=1,
    )
    if args.child == "masklet":
        gen: Any = AutomaticMaskGenerator(ours_model, **options)
    else:
        gen = reference_generator(ref_model, args.image_size, **options)
    start = rss_mib()
    result = RssResult(args.child, args.rss_points_per_batch, start, start, float("nan"), 0)
    with RssWatch(args.rss_limit_mib, result) as watch, torch.inference_mode():
        result.seconds = timed(lambda: setattr(result, "records", len(gen.generate(image))))
    result.peak_mib = max(watch.max_mib, peak_rss_mib())
    print(RESULT_PREFIX + json.dumps(asdict(result)), flush=True)


def start_child(side: str, points_per_batch: int, args: argparse.Namespace) -> subprocess.Popen:
    cmd = [
        sys.executable, __file__, "--child", side, "--model", args.model,
        "--image-size", str(args.image_size), "--rss-height", str(args.rss_height),
        "--rss-width", str(args.rss_width), "--rss-points-per-side", str(args.rss_points_per_side),
        "--rss-points-per-batch", str(points_per_batch), "--rss-limit-mib", str(args.rss_limit_mib),
        "--threads", str(args.threads), "--seed", str(args.seed), "--clock", args.clock,
        "--pred-iou-thresh", str(args.pred_iou_thresh),
        "--stability-score-thresh", str(args.stability_score_thresh),
    ]  # fmt: skip
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def child_result(proc: subprocess.Popen) -> RssResult:
    out, err = proc.communicate()
    lines = [ln for ln in out.splitlines() if ln.startswith(RESULT_PREFIX)]
    if proc.returncode != 0 or not lines:
        sys.stderr.write(err)
        raise SystemExit(f"memory run {proc.args} failed (exit {proc.returncode})")
    return RssResult(**json.loads(lines[-1][len(RESULT_PREFIX) :]))


def run_rss(args: argparse.Namespace) -> None:
    print(
        f"\n== peak RSS: {args.rss_width}x{args.rss_height}, crop_n_layers=1, "
        f"points_per_side={args.rss_points_per_side}, pred_iou_thresh={args.pred_iou_thresh}, "
        f"stability_score_thresh={args.stability_score_thresh}, {args.model} at "
        f"{args.image_size} =="
    )
    # peaks are per process, so the sides run side by side (seconds are then not comparable
    # on the wall clock; use --clock cpu)
    procs = [
        start_child("masklet", args.rss_points_per_batch, args),
        start_child("reference", args.rss_points_per_batch, args),
    ]
    if args.rss_points_per_batch != 64:
        procs.append(start_child("masklet", 64, args))
    runs = [child_result(p) for p in procs]
    head = (
        f"{'side':<10} {'batch':>6} {'start MiB':>10} {'peak MiB':>9} {'growth MiB':>11} "
        f"{'seconds':>8} {'records':>8}"
    )
    print(head)
    print("-" * len(head))
    for r in runs:
        peak = f"{r.peak_mib:>9.0f}" + (" (over the limit: stopped)" if r.over_limit else "")
        print(
            f"{r.side:<10} {r.points_per_batch:>6} {r.start_mib:>10.0f} {peak} "
            f"{r.growth_mib:>11.0f} {r.seconds:>8.1f} {r.records:>8}"
        )
    ours, ref = runs[0], runs[1]
    print(f"growth masklet/reference at batch {ours.points_per_batch}: "
          f"{ours.growth_mib / ref.growth_mib:.3f}")  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--model", default="sam2.1_hiera_tiny", choices=ModelConfig.names())
    p.add_argument("--image-size", type=int, help="model input side (default 1024, quick 512)")
    p.add_argument("--height", type=int, default=900, help="speed image height (default 900)")
    p.add_argument("--width", type=int, default=1200, help="speed image width (default 1200)")
    p.add_argument("--points-per-side", type=int, help="speed run grid (default 32, quick 8)")
    p.add_argument("--repeats", type=int, help="timed runs per side (default 3, quick 1)")
    p.add_argument("--warmup", type=int, default=1, help="untimed rounds first (default 1)")
    p.add_argument(
        "--pred-iou-thresh",
        type=float,
        default=0.8,
        help="speed run filter (default 0.8 as the reference; 0 keeps every mask, the worst "
        "case for masklet, which skips upscaling the masks this filter drops)",
    )
    p.add_argument("--stability-score-thresh", type=float, default=0.95)
    p.add_argument("--rss-height", type=int, default=3000)
    p.add_argument("--rss-width", type=int, default=4000)
    p.add_argument("--rss-points-per-side", type=int, default=8)
    p.add_argument("--rss-points-per-batch", type=int, default=16)
    p.add_argument("--rss-limit-mib", type=float, default=12000.0)
    p.add_argument("--skip-speed", action="store_true")
    p.add_argument("--skip-rss", action="store_true")
    p.add_argument("--child", choices=("masklet", "reference"), help=argparse.SUPPRESS)
    add_common_args(p, profile=False)
    args = p.parse_args(argv)
    if args.image_size is None:
        args.image_size = QUICK_IMAGE_SIZE if args.quick else 1024
    if args.child:
        child_main(args)
        return 0
    if args.points_per_side is None:
        args.points_per_side = QUICK_POINTS if args.quick else 32
    if args.repeats is None:
        args.repeats = QUICK_REPEATS if args.quick else 3
    apply_common_args(args)
    print(describe_machine(args))
    ok = True
    if not args.skip_speed:
        ok = run_speed(args)
    if not args.skip_rss:
        run_rss(args)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
