"""Video tracking speed: masklet `VideoPredictor` vs the reference `SAM2VideoPredictor`.

Same weights, same JPEG frames, same clicks on frame 0 (one object, then four); both sides
propagate forward and the time of each propagated frame is taken between consecutive outputs
(the prompts and the prompted frame itself are excluded). Hole filling is off on both sides
(the reference skips it on CPU). Each figure is the median over the frames of a run, then the
median over alternating runs. Targets: ratio <= 1.0 with one object, <= 0.7 with four (masklet
batches objects whose memories line up; the reference runs them one by one).

    python benchmarks/video_speed.py                   # small tiny config at 512, 12 frames
    python benchmarks/video_speed.py --quick           # 256 input, 4 frames, 2 runs
    python benchmarks/video_speed.py --image-size 1024 --frames 20 --runs 5
"""

from __future__ import annotations

import argparse
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Protocol

import numpy as np
import torch
from _common import (
    Row,
    add_common_args,
    alternate,
    apply_common_args,
    describe_machine,
    median_frame_time,
    model_pair,
    print_components,
    print_profile,
    print_table,
    summary,
    upcast_reference_memory,
)
from PIL import Image

from masklet.config import ModelConfig
from masklet.video.predictor import VideoPredictor

TARGETS = {1: 1.0, 4: 0.7}  # objects -> highest allowed masklet/reference ratio
QUICK_IMAGE_SIZE, QUICK_FRAMES, QUICK_RUNS = 256, 4, 2
SHAPE_FRACTION = 0.14  # side of each moving square, as a fraction of the frame height
# four squares: (colour, start x, start y as fractions of the frame, velocity in px/frame)
SHAPES = (
    ((230, 40, 40), 0.10, 0.15, (6, 2)),
    ((40, 220, 60), 0.70, 0.20, (-5, 3)),
    ((50, 80, 235), 0.15, 0.65, (4, -3)),
    ((235, 220, 40), 0.65, 0.70, (-4, -2)),
)


def write_frames(folder: Path, count: int, height: int, width: int, seed: int) -> list[list]:
    """Textured background with four moving squares as JPEGs 00000.jpg ...; returns the
    centre of each square on frame 0 as [[x, y]] click lists."""
    rng = np.random.default_rng(seed)
    background = rng.integers(0, 90, (height, width, 3), dtype=np.uint8)
    side = int(SHAPE_FRACTION * height)
    for t in range(count):
        frame = background.copy()
        for colour, fx, fy, (vx, vy) in SHAPES:
            x = int(np.clip(fx * width + vx * t, 0, width - side))
            y = int(np.clip(fy * height + vy * t, 0, height - side))
            frame[y : y + side, x : x + side] = colour
        Image.fromarray(frame).save(folder / f"{t:05d}.jpg", quality=95)
    return [[[fx * width + side / 2, fy * height + side / 2]] for _, fx, fy, _ in SHAPES]


Measure = Callable[[Iterator[object]], float]  # consumes the outputs of a propagation


class Run(Protocol):
    """One run: prompts (untimed), then `measure` over the propagation's outputs."""

    def __call__(self, measure: Measure = median_frame_time) -> float: ...


def masklet_run(predictor: VideoPredictor, folder: Path, clicks: list[list], frames: int) -> Run:
    def run(measure: Measure = median_frame_time) -> float:
        session = predictor.init_state(folder)
        for obj_id, click in enumerate(clicks, start=1):
            predictor.add_new_points_or_box(session, 0, obj_id, points=click, labels=[1])
        return measure(predictor.propagate_in_video(session, 0, frames))

    return run


def reference_run(ref: torch.nn.Module, folder: Path, clicks: list[list], frames: int) -> Run:
    def run(measure: Measure = median_frame_time) -> float:
        with torch.inference_mode():
            state = ref.init_state(str(folder))  # type: ignore[operator]
            for obj_id, click in enumerate(clicks, start=1):
                ref.add_new_points_or_box(state, 0, obj_id, points=click, labels=[1])  # type: ignore[operator]
            return measure(ref.propagate_in_video(state, 0, frames))  # type: ignore[operator]

    return run


def profile_runs(label: str, model: torch.nn.Module, run: Run) -> None:
    """Time by top-level module, then the top torch operators, of one propagation (prompts
    excluded)."""

    def by_module(outputs: Iterator[object]) -> float:
        print_components(label, model, lambda: median_frame_time(outputs))
        return 0.0

    def by_operator(outputs: Iterator[object]) -> float:
        print_profile(label, lambda: median_frame_time(outputs))
        return 0.0

    run(by_module)
    run(by_operator)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--model", default="sam2.1_hiera_tiny", choices=ModelConfig.names())
    p.add_argument("--image-size", type=int, help="model input side (default 512, quick 256)")
    p.add_argument("--frames", type=int, help="propagated frames per run (default 12, quick 4)")
    p.add_argument("--runs", type=int, help="timed runs per side (default 3, quick 2)")
    p.add_argument("--height", type=int, default=480, help="frame height (default 480)")
    p.add_argument("--width", type=int, default=640, help="frame width (default 640)")
    p.add_argument(
        "--objects", default="1,4", help="object counts to time, comma-separated (max 4)"
    )
    add_common_args(p)
    args = p.parse_args(argv)
    # --quick changes the defaults only: explicit flags win
    args.image_size = args.image_size or (QUICK_IMAGE_SIZE if args.quick else 512)
    args.frames = args.frames or (QUICK_FRAMES if args.quick else 12)
    args.runs = args.runs or (QUICK_RUNS if args.quick else 3)
    counts = [int(c) for c in args.objects.split(",")]
    if not all(1 <= c <= len(SHAPES) for c in counts):
        raise SystemExit(f"--objects must be between 1 and {len(SHAPES)}, got {args.objects!r}")
    apply_common_args(args)

    from tests.parity.reference import small_config

    cfg = small_config(args.model, image_size=args.image_size)
    ours_model, ref = model_pair(cfg, seed=args.seed, video=True)
    upcast_reference_memory(ref)
    ours = VideoPredictor(ours_model, fill_hole_area=0)

    print(
        f"video speed benchmark: small {args.model} at {args.image_size}, frames "
        f"{args.width}x{args.height}, {args.frames} propagated frames x {args.runs} runs"
    )
    print(describe_machine(args))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        clicks = write_frames(folder, args.frames + 1, args.height, args.width, args.seed)
        for count in counts:
            run_a = masklet_run(ours, folder, clicks[:count], args.frames)
            run_b = reference_run(ref, folder, clicks[:count], args.frames)
            a, b = alternate(run_a, run_b, args.runs)
            if args.profile:
                what = f"propagation, {count} object(s), {args.frames} frames"
                profile_runs(f"masklet {what}", ours_model, run_a)
                profile_runs(f"reference {what}", ref, run_b)
            label = f"video per frame, {count} object{'s' if count > 1 else ''}"
            rows.append(Row(label, a, b))
            print(f"  {label}: done", flush=True)
    print()
    print_table(rows)
    print()
    ok = [summary(r, TARGETS.get(c, 1.0)) for r, c in zip(rows, counts)]
    return 0 if all(ok) else 1


if __name__ == "__main__":
    raise SystemExit(main())
