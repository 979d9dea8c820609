"""Backends and precisions: each variant of the model against PyTorch fp32, on this machine.

For every entry of `VARIANTS` (PyTorch fp32 and bf16 autocast, onnxruntime fp32 and with the
int8 image encoder; fp16 and auto in benchmarks/precision.py): `set_image` time, time per propagated video frame with 1 and 4
objects clicked on frame 0, their ratios to PyTorch fp32, and how far the masks move (mean
IoU of the image masks and of every tracked mask against PyTorch fp32's). Also the ONNX
export time and file sizes. Variants run in alternation after a warm-up round each, and
every figure is a median (see README.md), so load from elsewhere hits them alike.

Weights: `sam2.1_hiera_tiny` at 1024 with seeded random weights; the object-score head's
bias is raised so that objects stay visible and the IoU figures compare real masks.

    python benchmarks/backends.py                  # tiny at 1024, 3 frames x 2 runs
    python benchmarks/backends.py --quick          # 512 input, 2 frames, 1 run
    python benchmarks/backends.py --image-size 1024 --frames 8 --runs 3 --threads 2
"""

from __future__ import annotations

import argparse
import copy
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from _common import (
    add_common_args,
    apply_common_args,
    describe_machine,
    now,
    structured_image,
    timed,
)
from video_speed import write_frames

from masklet.backends.onnxruntime import load_onnx_model
from masklet.config import ModelConfig
from masklet.export.onnx import export_onnx
from masklet.image_predictor import ImagePredictor
from masklet.modeling.sam2 import SAM2Model, build_model
from masklet.precision import apply_precision
from masklet.video.predictor import VideoPredictor

VISIBLE_BIAS = 10.0  # added to the object-score logit: objects stay visible on random weights
IMAGE_CLICKS = ((0.35, 0.4), (0.6, 0.55), (0.5, 0.25))  # fractions of the image's (x, y)
OBJECT_COUNTS = (1, 4)
SIZE_FLAGS = {
    "image-size": "model input side",
    "frames": "propagated frames per run",
    "runs": "timed runs per variant",
}
DEFAULTS = {"image-size": 1024, "frames": 3, "runs": 2}  # ~4 minutes on 2 idle cores
QUICK = {"image-size": 512, "frames": 2, "runs": 1}
Masks = dict[tuple[int, int], np.ndarray]  # (frame or prompt, object) -> binary mask


@dataclass
class Context:
    """What variants are built from: the PyTorch model, its export folder, the threads."""

    model: SAM2Model
    export_dir: Path
    int8_dir: Path  # the same export with an int8 image encoder (--quantize int8)
    threads: int


def in_precision(model: SAM2Model, precision: str) -> torch.nn.Module:
    """A copy of `model` whose predictors run in `precision` (load_model's precision=)."""
    copied = copy.deepcopy(model)
    apply_precision(copied, precision)
    return copied


@dataclass(frozen=True)
class Variant:
    """One row of the table: a name and how to make its model from the context."""

    name: str
    load: Callable[[Context], torch.nn.Module]


# The first entry is the baseline every ratio and IoU is taken against. fp16 autocast is left
# out here: on CPUs without AVX512-FP16 it runs ~8x slower than fp32 (benchmarks/precision.py
# measures it at a small size, with auto's pick and J&F deltas).
VARIANTS: list[Variant] = [
    Variant("pytorch fp32", lambda ctx: ctx.model),
    Variant("pytorch bf16", lambda ctx: in_precision(ctx.model, "bf16")),
    Variant("onnxruntime fp32", lambda ctx: load_onnx_model(ctx.export_dir, threads=ctx.threads)),
    Variant("onnxruntime int8", lambda ctx: load_onnx_model(ctx.int8_dir, threads=ctx.threads)),
]


@dataclass
class Result:
    """Timings (seconds, one per timed run) and the masks of the last run of one variant."""

    set_image: list[float] = field(default_factory=list)
    video: dict[int, list[float]] = field(default_factory=dict)
    image_masks: Masks = field(default_factory=dict)
    video_masks: dict[int, Masks] = field(default_factory=dict)


def make_model(cfg: ModelConfig, seed: int) -> SAM2Model:
    """`cfg` with seeded random weights (a perturbed init) and visible objects."""
    from tests.parity.reference import perturbed_state_dict

    torch.manual_seed(seed)
    model = build_model(cfg)
    state = perturbed_state_dict(model, seed)
    head = max(k for k in state if k.startswith("sam_mask_decoder.pred_obj_score_head."))
    bias = f"{head.rsplit('.', 1)[0]}.bias"
    state[bias] = state[bias] + VISIBLE_BIAS
    model.load_state_dict(state, strict=True)
    return model.eval()


def image_run(predictor: ImagePredictor, image: np.ndarray, result: Result) -> float:
    """Time `set_image`, then keep the best mask of each click (untimed)."""
    seconds = timed(lambda: predictor.set_image(image))
    h, w = image.shape[:2]
    for i, (fx, fy) in enumerate(IMAGE_CLICKS):
        masks, ious, _ = predictor.predict(point_coords=[[fx * w, fy * h]], point_labels=[1])
        result.image_masks[(i, 0)] = masks[int(np.argmax(ious))] > 0
    return seconds


def video_run(
    predictor: VideoPredictor, folder: Path, clicks: list[list], frames: int, masks: Masks
) -> float:
    """Median seconds per propagated frame (prompts and the prompted frame excluded); keeps
    every tracked mask in `masks`."""
    session = predictor.init_state(folder)
    for obj_id, click in enumerate(clicks, start=1):
        predictor.add_new_points_or_box(session, 0, obj_id, points=click, labels=[1])
    times = []
    last = now()
    outputs: Iterator = predictor.propagate_in_video(session, 0, frames)
    for frame, ids, logits in outputs:
        t = now()
        times.append(t - last)
        for obj, m in zip(ids, logits, strict=True):
            masks[(frame, obj)] = m[0].numpy() > 0
        last = now()  # the mask copies above are not the predictor's time
    return statistics.median(times[1:] or times)


def mean_iou(a: Masks, b: Masks) -> tuple[float, int]:
    """Mean IoU over the keys of `a` whose masks are not both empty, and how many there were."""
    ious = []
    for key, x in a.items():
        y = b[key]
        union = np.logical_or(x, y).sum()
        if union:
            ious.append(np.logical_and(x, y).sum() / union)
    return (float(np.mean(ious)) if ious else float("nan")), len(ious)


def measure(args: argparse.Namespace, ctx: Context, folder: Path, clicks: list[list]) -> None:
    models = [v.load(ctx) for v in VARIANTS]
    results = [Result() for _ in VARIANTS]
    image = structured_image(900, 1200, args.seed)
    image_predictors = [ImagePredictor(m) for m in models]
    for round_ in range(1 + args.runs):  # one warm-up round, then alternating timed runs
        for predictor, result in zip(image_predictors, results, strict=True):
            seconds = image_run(predictor, image, result)
            if round_:
                result.set_image.append(seconds)
    print("  set_image: done", flush=True)
    video_predictors = [VideoPredictor(m, fill_hole_area=0) for m in models]
    for count in OBJECT_COUNTS:
        for round_ in range(1 + args.runs):
            for predictor, result in zip(video_predictors, results, strict=True):
                masks = result.video_masks.setdefault(count, {})
                frames = args.frames if round_ else 1  # a short warm-up
                seconds = video_run(predictor, folder, clicks[:count], frames, masks)
                if round_:
                    result.video.setdefault(count, []).append(seconds)
        print(f"  video, {count} object(s): done", flush=True)
    print_table(results)


def print_table(results: list[Result]) -> None:
    base = results[0]

    def cell(values: list[float], baseline: list[float]) -> str:
        med, ref = statistics.median(values), statistics.median(baseline)
        return f"{med * 1e3:8.0f} ms {med / ref:5.2f}"

    head = (
        f"{'variant':<20} {'set_image (ratio)':>17} "
        + " ".join(f"{f'video {c} obj (ratio)':>19}" for c in OBJECT_COUNTS)
        + f" {'image IoU':>9} {'video IoU':>9}"
    )
    print()
    print(head)
    print("-" * len(head))
    for variant, r in zip(VARIANTS, results, strict=True):
        video = " ".join(f"{cell(r.video[c], base.video[c]):>19}" for c in OBJECT_COUNTS)
        image_iou, _ = mean_iou(base.image_masks, r.image_masks)
        tracked = [mean_iou(base.video_masks[c], r.video_masks[c]) for c in OBJECT_COUNTS]
        video_iou = float(np.mean([iou for iou, _ in tracked]))
        print(
            f"{variant.name:<20} {cell(r.set_image, base.set_image):>17} {video} "
            f"{image_iou:>9.5f} {video_iou:>9.5f}"
        )
    counts = [mean_iou(base.video_masks[c], base.video_masks[c])[1] for c in OBJECT_COUNTS]
    print(
        f"(IoU against {VARIANTS[0].name}: {len(IMAGE_CLICKS)} image masks, "
        f"{' + '.join(map(str, counts))} non-empty tracked masks; ratios = variant / "
        f"{VARIANTS[0].name}, medians of the timed runs)"
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--model", default="sam2.1_hiera_tiny", choices=ModelConfig.names())
    for flag, text in SIZE_FLAGS.items():
        full, quick = DEFAULTS[flag], QUICK[flag]
        p.add_argument(f"--{flag}", type=int, help=f"{text} (default {full}, quick {quick})")
    add_common_args(p, profile=False)
    args = p.parse_args(argv)
    for flag in SIZE_FLAGS:  # --quick changes the defaults only: explicit flags win
        name = flag.replace("-", "_")
        chosen = getattr(args, name) or (QUICK if args.quick else DEFAULTS)[flag]
        setattr(args, name, chosen)
    apply_common_args(args)
    from dataclasses import replace

    cfg = replace(ModelConfig.named(args.model), image_size=args.image_size)
    print(
        f"backends benchmark: {args.model} at {args.image_size} (random weights), 1200x900 "
        f"image, 640x480 video, {args.frames} propagated frames x {args.runs} runs"
    )
    print(describe_machine(args))
    model = make_model(cfg, args.seed)
    with tempfile.TemporaryDirectory() as tmp:
        export_dir = Path(tmp) / "onnx"
        start = time.perf_counter()
        parts = export_onnx(model, export_dir)
        total = time.perf_counter() - start
        sizes = ", ".join(f"{p.name} {p.size_bytes / 1e6:.1f}" for p in parts)
        extra = (export_dir / "loop_weights.safetensors").stat().st_size / 1e6
        print(f"ONNX export: {total:.1f} s; sizes (MB): {sizes}, loop_weights {extra:.2f}")
        int8_dir = Path(tmp) / "onnx-int8"
        export_onnx(model, int8_dir, quantize="int8")
        size = (int8_dir / "image_encoder.onnx").stat().st_size / 1e6
        print(f"int8 export: image_encoder {size:.1f} MB")
        folder = Path(tmp) / "frames"
        folder.mkdir()
        clicks = write_frames(folder, args.frames + 1, 480, 640, args.seed)
        measure(args, Context(model, export_dir, int8_dir, args.threads), folder, clicks)
    print(describe_machine(args))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
