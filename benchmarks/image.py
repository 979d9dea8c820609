"""Image predictor speed: masklet `ImagePredictor` vs the reference `SAM2ImagePredictor`.

Same weights (one perturbed random state dict in both), same structured image, same click.
Times `set_image` (preprocess + image encoder) and `predict` (one click, multimask) in
alternation and prints medians and the ratio masklet/reference (target: <= 1.0).

    python benchmarks/image.py                    # sam2.1_hiera_tiny at 1024
    python benchmarks/image.py --quick            # smoke run: 512 input, 2 repeats
    python benchmarks/image.py --model sam2.1_hiera_small --image-size 1024 --repeats 7
"""

from __future__ import annotations

import argparse
import dataclasses

import numpy as np
import torch
from _common import (
    Row,
    add_common_args,
    alternate,
    apply_common_args,
    describe_machine,
    model_pair,
    print_components,
    print_profile,
    print_table,
    structured_image,
    summary,
    timed,
)

from masklet.config import ModelConfig
from masklet.image_predictor import ImagePredictor

TARGET_RATIO = 1.0
QUICK_IMAGE_SIZE, QUICK_REPEATS, QUICK_PREDICT_REPEATS = 512, 3, 5
# feature-map strides of the three levels the reference predictor keeps (1/4, 1/8, 1/16)
LEVEL_STRIDES = (4, 8, 16)


def reference_predictor(ref_model: torch.nn.Module, image_size: int) -> object:
    from sam2.sam2_image_predictor import SAM2ImagePredictor

    pred = SAM2ImagePredictor(ref_model)
    # the reference hard-codes the feature sizes of a 1024 input
    pred._bb_feat_sizes = [(image_size // s, image_size // s) for s in LEVEL_STRIDES]
    return pred


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--model", default="sam2.1_hiera_tiny", choices=ModelConfig.names())
    p.add_argument("--image-size", type=int, help="model input side (default 1024, quick 512)")
    p.add_argument("--height", type=int, default=900, help="test image height (default 900)")
    p.add_argument("--width", type=int, default=1200, help="test image width (default 1200)")
    p.add_argument("--repeats", type=int, help="timed set_image runs per side (default 5)")
    p.add_argument("--predict-repeats", type=int, help="timed predict runs per side (default 20)")
    add_common_args(p)
    args = p.parse_args(argv)
    # --quick changes the defaults only: explicit flags win
    args.image_size = args.image_size or (QUICK_IMAGE_SIZE if args.quick else 1024)
    args.repeats = args.repeats or (QUICK_REPEATS if args.quick else 5)
    args.predict_repeats = args.predict_repeats or (QUICK_PREDICT_REPEATS if args.quick else 20)
    apply_common_args(args)

    cfg = dataclasses.replace(ModelConfig.named(args.model), image_size=args.image_size)
    ours_model, ref_model = model_pair(cfg, seed=args.seed)
    ours = ImagePredictor(ours_model)
    ref = reference_predictor(ref_model, args.image_size)
    image = structured_image(args.height, args.width, seed=args.seed)
    click = dict(
        point_coords=np.array([[args.width * 0.4, args.height * 0.45]], dtype=np.float32),
        point_labels=np.array([1]),
        multimask_output=True,
    )

    print(f"image benchmark: {args.model} at {args.image_size}, image {args.width}x{args.height}")
    print(describe_machine(args))

    def set_ours() -> float:
        return timed(lambda: ours.set_image(image))

    def set_ref() -> float:
        with torch.inference_mode():
            return timed(lambda: ref.set_image(image))  # type: ignore[attr-defined]

    set_a, set_b = alternate(set_ours, set_ref, args.repeats)

    def predict_ours() -> float:
        return timed(lambda: ours.predict(**click))

    def predict_ref() -> float:
        with torch.inference_mode():
            return timed(lambda: ref.predict(**click))  # type: ignore[attr-defined]

    pred_a, pred_b = alternate(predict_ours, predict_ref, args.predict_repeats)

    # the two sides computed the same thing: report how close the outputs are
    with torch.inference_mode():
        _, _, logits_a = ours.predict(**click)
        _, _, logits_b = ref.predict(**click)  # type: ignore[attr-defined]
    diff = float(np.abs(logits_a - logits_b).max())
    print(f"max |low-res logits masklet - reference| = {diff:.2e}\n")

    if args.profile:
        print_components("masklet set_image", ours_model, set_ours)
        print_components("reference set_image", ref_model, set_ref)
        print_profile("masklet set_image", set_ours)
        print_profile("reference set_image", set_ref)
        print_profile("masklet predict", predict_ours)
        print_profile("reference predict", predict_ref)

    rows = [
        Row("image set_image", set_a, set_b),
        Row("image predict (1 click, multimask)", pred_a, pred_b),
    ]
    print_table(rows)
    print()
    ok = [summary(r, TARGET_RATIO) for r in rows]
    return 0 if all(ok) else 1


if __name__ == "__main__":
    raise SystemExit(main())
