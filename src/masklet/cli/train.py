"""`masklet train`: train or fine-tune a model with SAM 2's scheme (see masklet.train.trainer)."""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path
from typing import Any

from masklet.config import ModelConfig
from masklet.errors import InvalidInputError

# Sub-configs of ModelConfig that a --config-json file may override field by field.
_SECTIONS = ("neck", "mask_decoder", "memory_attention", "memory_encoder")


def model_config_from_json(path: str | Path) -> ModelConfig:
    """A ModelConfig from a JSON file: `{"base": "sam2.1_hiera_tiny", "image_size": 256,
    "hiera": {"embed_dim": 32}, "memory_attention": {"num_layers": 2}, ...}` — an official
    variant (default sam2.1_hiera_tiny) with the given fields replaced."""
    file = Path(path)
    try:
        spec = json.loads(file.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise InvalidInputError(f"cannot read model config {file}: {exc}") from exc
    if not isinstance(spec, dict):
        raise InvalidInputError(f"{file}: expected a JSON object of config fields")
    cfg = ModelConfig.named(str(spec.pop("base", "sam2.1_hiera_tiny")))
    try:
        if "hiera" in spec:
            cfg = cfg.with_trunk(**_tuples(spec.pop("hiera")))
        for section in _SECTIONS:
            if section in spec:
                sub = dataclasses.replace(getattr(cfg, section), **_tuples(spec.pop(section)))
                cfg = dataclasses.replace(cfg, **{section: sub})
        cfg = dataclasses.replace(cfg, **_tuples(spec))
    except TypeError as exc:  # an unknown field name
        raise InvalidInputError(f"{file}: {exc}; see masklet.config for the field names") from exc
    return cfg


def _tuples(fields: Any) -> dict[str, Any]:
    """JSON lists become the tuples the frozen configs hold."""
    if not isinstance(fields, dict):
        raise InvalidInputError(f"expected an object of config fields, got {fields!r}")
    return {k: tuple(v) if isinstance(v, list) else v for k, v in fields.items()}


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "train",
        help="train or fine-tune a model on videos or images (SAM 2's scheme)",
        description="Train with simulated clicks, boxes and masks, corrective clicks and "
        "memory tracking. Writes OUT/last.pt (resumable) and OUT/model.pt ({'model': ...}).",
    )
    p.add_argument(
        "--data",
        required=True,
        help="synthetic, synthetic-images, davis:FOLDER or coco:JSON[:IMAGES_DIR]",
    )
    model = p.add_mutually_exclusive_group()
    model.add_argument("--model", default=None, help="variant name (default sam2.1_hiera_tiny)")
    model.add_argument("--config-json", default=None, help="JSON file of ModelConfig overrides")
    p.add_argument("--init", default=None, help="checkpoint file or official name to start from")
    p.add_argument("--steps", type=int, default=1000)
    p.add_argument("--batch-size", type=int, default=1)
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--weight-decay", type=float, default=0.1)
    p.add_argument("--warmup-steps", type=int, default=0)
    p.add_argument("--grad-clip", type=float, default=0.1)
    p.add_argument("--num-frames", type=int, default=8, help="frames per clip (1 = images)")
    p.add_argument("--corrections", type=int, default=7, help="corrective clicks per frame")
    p.add_argument(
        "--correct-frames", type=int, default=1,
        help="frames per clip given corrective clicks, conditioning frames included; above "
        "their number, tracked frames are corrected too (SAM 2.1 trains with 2)",
    )  # fmt: skip
    p.add_argument(
        "--random-corrections", action="store_true",
        help="conditioning frames get a random 0..--corrections rounds per batch (default: all "
        "of them), so tracking also learns to start from a one-click mask",
    )  # fmt: skip
    p.add_argument(
        "--prob-point", type=float, default=0.25,
        help="chance that a clip's first prompt is a click (box and mask take the rest)",
    )  # fmt: skip
    p.add_argument(
        "--prob-box", type=float, default=0.25,
        help="chance of a box prompt; on 1-frame clips point and box are renormalised",
    )  # fmt: skip
    p.add_argument(
        "--num-synthetic", type=int, default=1000,
        help="synthetic videos (or images) to draw from: seeds SEED*N .. SEED*N+N-1",
    )  # fmt: skip
    p.add_argument(
        "--occlusion-prob", type=float, default=None,
        help="synthetic videos: chance that an object is fully hidden for >= 5 frames "
        "(default 0.3; clips need >= 7 frames for it)",
    )  # fmt: skip
    p.add_argument("--checkpoint-every", type=int, default=100)
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--resume", action="store_true", help="continue from OUT/last.pt")
    p.add_argument(
        "--stop-at", type=int, default=None, metavar="STEP",
        help="end after this step (writing OUT/last.pt) as an interruption would, keeping the "
        "--steps schedule; continue later with --resume",
    )  # fmt: skip
    p.add_argument("--freeze-image-encoder", action="store_true")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default=None, help="cuda, mps or cpu (default: the best one)")
    p.add_argument(
        "--workers", type=int, default=1,
        help="data-parallel processes, each with batch-size / workers clips per step (CPU: "
        "they share the cores' threads; CUDA: one GPU each)",
    )  # fmt: skip
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from masklet.train.data import open_dataset
    from masklet.train.trainer import TrainConfig, train

    model_cfg = (
        model_config_from_json(args.config_json)
        if args.config_json
        else ModelConfig.named(args.model or "sam2.1_hiera_tiny")
    )
    config = TrainConfig(
        model=model_cfg,
        init_checkpoint=args.init,
        steps=args.steps,
        batch_size=args.batch_size,
        lr=args.lr,
        weight_decay=args.weight_decay,
        warmup_steps=args.warmup_steps,
        grad_clip=args.grad_clip,
        num_frames=args.num_frames,
        num_correction_rounds=args.corrections,
        max_frames_to_correct=args.correct_frames,
        random_cond_corrections=args.random_corrections,
        prob_point=args.prob_point,
        prob_box=args.prob_box,
        freeze_image_encoder=args.freeze_image_encoder,
        seed=args.seed,
        out_dir=args.out,
        checkpoint_every=args.checkpoint_every,
        resume=args.resume,
        device=args.device,
        workers=args.workers,
        progress=not args.quiet,
    )
    config.validate()
    if args.stop_at is not None and args.stop_at < 1:
        raise InvalidInputError(f"--stop-at must be at least 1, got {args.stop_at}")
    if args.num_synthetic < 1:
        raise InvalidInputError(f"--num-synthetic must be at least 1, got {args.num_synthetic}")
    dataset = open_dataset(
        args.data, model_cfg.image_size, args.num_frames, seed=args.seed,
        num_synthetic=args.num_synthetic, occlusion_prob=args.occlusion_prob,
    )  # fmt: skip
    result = train(config, dataset, stop_at=args.stop_at)
    if result.init_report is not None:
        print(f"init from {args.init}: {result.init_report.summary()}")
    if result.losses:
        print(f"step {result.step}: loss {result.losses[-1]:.4f}")
    if result.model_path is None:
        print(f"stopped at step {result.step} of {args.steps}: wrote {result.checkpoint}; "
              "continue with --resume")  # fmt: skip
    else:
        print(f"wrote {result.model_path}")
    return 0
