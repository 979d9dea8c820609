"""Precision modes: speed of fp32 / bf16 / fp16 in PyTorch and of an int8 onnxruntime image
encoder, their accuracy cost, and whether `auto`'s pick is slower than fp32 on this machine.

Speed (random perturbed weights, `sam2.1_hiera_tiny` layout at --image-size): `set_image` and
the time per propagated frame with 1 and 4 clicked objects, per PyTorch mode, modes run in
alternation (fp32, bf16, fp16, fp32, ...) so load from elsewhere hits them alike; the
onnxruntime image encoder fp32 vs int8 (dynamic quantisation) of the same model.
Accuracy (the bundled nano model, trained): held-out J&F and first-frame click IoU per mode
(`masklet.eval.heldout`), and for the int8 encoder the IoU of one-click masks against the fp32
encoder's (same fp32 onnxruntime decoder) on the held-out clips' first frames.

    python benchmarks/precision.py --threads 1 --clock cpu   # shared machine: ~3.5 min
    python benchmarks/precision.py                 # 256 input, 4 frames, 3 repeats, all cores
    python benchmarks/precision.py --quick         # 2 repeats, 3 clips

On a busy machine, two threads that wait for each other turn other processes' load into
seconds per frame (measured: 4.9 s per fp32 frame with 2 threads at load 2.3-3.1, against
0.37 s of CPU time with 1 thread), and the mode ratios then measure the load, not the modes.
    python benchmarks/precision.py --image-size 1024 --repeats 2   # real size (long: fp16
                                                   # convolutions are slow on most CPUs)
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from _common import add_common_args, apply_common_args, describe_machine, now, structured_image

from masklet.checkpoints import load_model
from masklet.config import ModelConfig
from masklet.image_predictor import ImagePredictor
from masklet.modeling.sam2 import SAM2Model, build_model
from masklet.precision import Precision, apply_precision, resolve_precision
from masklet.train.synthetic import HELDOUT_SEED_BASE, SyntheticConfig, click_point, make_video
from masklet.video.predictor import VideoPredictor

MODES = [p.value for p in Precision]


def _args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--image-size", type=int, default=None, help="input side (default 256)")
    p.add_argument("--frames", type=int, default=None, help="video frames (default 4)")
    p.add_argument("--repeats", type=int, default=None, help="timed rounds (default 3)")
    p.add_argument("--videos", type=int, default=None, help="held-out clips (default 6)")
    add_common_args(p, profile=False)
    args = p.parse_args()
    quick = args.quick
    args.image_size = args.image_size or 256
    args.frames = args.frames or 4
    args.repeats = args.repeats or (2 if quick else 3)
    args.videos = args.videos or (3 if quick else 6)
    return args


def _timing_model(size: int, seed: int) -> SAM2Model:
    from tests.parity.reference import perturbed_state_dict

    torch.manual_seed(seed)
    model = build_model(
        dataclasses.replace(ModelConfig.named("sam2.1_hiera_tiny"), image_size=size)
    )
    model.load_state_dict(perturbed_state_dict(model, seed))
    return model.eval()


def _set_image(model: SAM2Model, image: np.ndarray) -> Callable[[str], float]:
    def run(mode: str) -> float:
        predictor = ImagePredictor(model, precision=mode)
        start = now()
        predictor.set_image(image)
        return now() - start

    return run


def _video(model: SAM2Model, frames: list[np.ndarray], objects: int) -> Callable[[str], float]:
    h, w = frames[0].shape[:2]
    clicks = [[w * (0.2 + 0.6 * k / max(objects - 1, 1)), h * 0.5] for k in range(objects)]

    def run(mode: str) -> float:
        predictor = VideoPredictor(model, fill_hole_area=0, precision=mode)
        session = predictor.init_state(frames)
        for k, xy in enumerate(clicks):
            predictor.add_new_points_or_box(session, 0, k + 1, points=[xy], labels=[1])
        stamps = [now() for _ in predictor.propagate(session)]
        return statistics.median(np.diff(stamps)) if len(stamps) > 1 else float("nan")

    return run


def _alternate(
    fn: Callable[[str], float], modes: list[str], repeats: int, *, warmup: bool = True
) -> dict[str, float]:
    for mode in modes if warmup else []:
        fn(mode)
    times: dict[str, list[float]] = {m: [] for m in modes}
    for _ in range(repeats):
        for mode in modes:
            times[mode].append(fn(mode))
    return {m: statistics.median(t) for m, t in times.items()}


def _speed(args: argparse.Namespace) -> dict[str, dict[str, float]]:
    model = _timing_model(args.image_size, args.seed)
    image = structured_image(900, 1200, args.seed)
    frames = [structured_image(360, 480, args.seed + t) for t in range(args.frames)]
    rows = {"set_image": _alternate(_set_image(model, image), MODES, args.repeats)}
    _print_row("set_image", rows["set_image"])
    for k in (1, 4):
        label = f"video frame, {k} object(s)"
        # one run per mode, no warm-up run (the encoder is warm from set_image): the median
        # over its propagated frames leaves out the first one's kernel set-up
        rows[label] = _alternate(_video(model, frames, k), MODES, 1, warmup=False)
        _print_row(label, rows[label])
    return rows


def _print_row(label: str, t: dict[str, float]) -> None:
    ratios = "  ".join(f"{m} {t[m] / t['fp32']:.2f}" for m in MODES[1:])
    cells = "".join(f"{t[m] * 1e3:>8.0f}ms" for m in MODES)
    print(f"{label:<28}{cells}   {ratios}", flush=True)


def _onnx_encoder(args: argparse.Namespace, out: Path) -> tuple[dict[str, float], Path]:
    import onnx
    import onnxruntime as ort

    from masklet.export import export_onnx
    from masklet.export.reduced import convert_part

    ort.set_default_logger_severity(3)  # no shape-merge warnings in the table
    model = _timing_model(args.image_size, args.seed)
    start = now()
    export_onnx(model, out / "fp32")
    seconds = now() - start
    int8 = out / "int8.onnx"
    int8.write_bytes((out / "fp32" / "image_encoder.onnx").read_bytes())
    convert_part(onnx, int8, "image_encoder", precision="fp32", quantize="int8")
    images = np.random.default_rng(args.seed).standard_normal(
        (1, 3, args.image_size) + (args.image_size,)
    )
    feed = {"images": images.astype(np.float32)}
    options = ort.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()  # as many threads as PyTorch's
    sessions = {
        kind: ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        for kind, path in (("fp32", out / "fp32" / "image_encoder.onnx"), ("int8", int8))
    }

    def run(kind: str) -> float:
        start = now()
        sessions[kind].run(None, feed)
        return now() - start

    times = _alternate(run, ["fp32", "int8"], args.repeats)
    sizes = {
        "fp32 MB": (out / "fp32" / "image_encoder.onnx").stat().st_size / 1e6,
        "int8 MB": int8.stat().st_size / 1e6,
    }
    return {**times, **sizes, "export s": seconds}, int8


def _heldout(args: argparse.Namespace) -> dict[str, tuple[float, float]]:
    from masklet.eval.heldout import evaluate_heldout

    model = load_model("masklet-nano-synthetic")
    out = {}
    for mode in MODES:
        apply_precision(model, mode)
        r = evaluate_heldout(model, args.videos)
        out[mode] = (r.forward.jf_mean, float(np.mean(r.prompted)))
    return out


def _int8_cost(args: argparse.Namespace, work: Path) -> tuple[float, float, float]:
    """(mean, min IoU of int8-encoder masks vs fp32-encoder masks, max |logit diff|) on the
    nano model: one click per visible object on frame 0 of each held-out clip."""
    import onnx
    import onnxruntime as ort

    from masklet.export import export_onnx
    from masklet.export.reduced import convert_part
    from masklet.transforms import image_to_tensor, transform_coords

    model = load_model("masklet-nano-synthetic")
    export_onnx(model, work / "nano")
    int8 = work / "nano_int8.onnx"
    int8.write_bytes((work / "nano" / "image_encoder.onnx").read_bytes())
    convert_part(onnx, int8, "image_encoder", precision="fp32", quantize="int8")
    cpu = ["CPUExecutionProvider"]
    encoders = {
        "fp32": ort.InferenceSession(str(work / "nano" / "image_encoder.onnx"), providers=cpu),
        "int8": ort.InferenceSession(str(int8), providers=cpu),
    }
    decoder = ort.InferenceSession(str(work / "nano" / "prompt_decoder.onnx"), providers=cpu)
    wanted = [i.name for i in decoder.get_inputs()]
    size = model.image_size
    ious, diffs = [], []
    for i in range(args.videos):
        clip = make_video(HELDOUT_SEED_BASE + i, SyntheticConfig(num_frames=1))
        frame, hw = clip.frames[0], clip.frames[0].shape[:2]
        images = image_to_tensor(frame, size, "cpu")[None].numpy()
        for k in range(clip.masks.shape[1]):
            if clip.masks[0, k].sum() < 30:
                continue
            x, y = click_point(clip.masks[0, k])
            coords = transform_coords(torch.tensor([[[x, y]]], dtype=torch.float), hw, size, True)
            masks = {}
            for kind, enc in encoders.items():
                names = [o.name for o in enc.get_outputs()]
                feats = dict(zip(names, enc.run(None, {"images": images}), strict=True))
                low = model.sam_prompt_encoder.mask_input_size
                feed = {
                    **feats, "point_coords": coords.numpy(),
                    "point_labels": np.ones((1, 1), np.int32),
                    "mask_input": np.zeros((1, 1, *low), np.float32),
                    "has_mask_input": np.zeros(1, np.float32),
                }  # fmt: skip
                masks[kind] = decoder.run(["masks"], {n: feed[n] for n in wanted})[0][0, 1:]
            a, b = masks["int8"] > 0, masks["fp32"] > 0
            union = np.logical_or(a, b).sum((1, 2))
            ious += list(np.logical_and(a, b).sum((1, 2))[union > 0] / union[union > 0])
            diffs.append(float(np.abs(masks["int8"] - masks["fp32"]).max()))
    return float(np.mean(ious)), float(np.min(ious)), max(diffs)


def main() -> None:
    args = _args()
    apply_common_args(args)
    print(f"precision benchmark; {describe_machine(args)}", flush=True)
    print(f"timing model: sam2.1_hiera_tiny layout at {args.image_size}, perturbed random weights")
    print(f"\n{'measure':<28}" + "".join(f"{m:>10}" for m in MODES) + "   ratios to fp32")
    speed = _speed(args)
    with tempfile.TemporaryDirectory() as tmp:
        ort_times, _ = _onnx_encoder(args, Path(tmp))
        print(
            f"\nonnxruntime image encoder: fp32 {ort_times['fp32'] * 1e3:.0f} ms, int8 "
            f"{ort_times['int8'] * 1e3:.0f} ms, int8/fp32 {ort_times['int8'] / ort_times['fp32']:.2f}; "
            f"files {ort_times['fp32 MB']:.1f} MB -> {ort_times['int8 MB']:.1f} MB; "
            f"full export {ort_times['export s']:.1f} s"
        )
        mean_iou, min_iou, diff = _int8_cost(args, Path(tmp))
    print(
        f"int8 encoder accuracy (nano model, {args.videos} held-out first frames, one click, 3 "
        f"masks each): IoU vs fp32 encoder mean {mean_iou:.4f}, min {min_iou:.4f}; max |logit "
        f"diff| {diff:.3f}"
    )
    held = _heldout(args)
    print(f"\nnano model, {args.videos} held-out clips (masklet.eval.heldout):")
    for mode, (jf, iou) in held.items():
        print(
            f"  {mode}: J&F {jf:.4f} (delta {jf - held['fp32'][0]:+.4f}), frame-0 click IoU "
            f"{iou:.4f} (delta {iou - held['fp32'][1]:+.4f})"
        )
    timing_model = _timing_model(args.image_size, args.seed)
    choice = resolve_precision("auto", timing_model, torch.device("cpu"))
    picked = choice.mode.value
    slower = [label for label, t in speed.items() if t[picked] > t["fp32"]]
    verdict = "slower than fp32 on: " + ", ".join(slower) if slower else "not slower than fp32"
    print(f"\nauto picks {choice.describe()}; measured here: {verdict}")
    print(f"TARGET auto pick not slower: {'FAIL' if slower else 'PASS'}")
    print(f"end: {describe_machine(args)}")


if __name__ == "__main__":
    main()
