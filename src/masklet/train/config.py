"""The settings of a training run: the one place their defaults and meanings are written.

`masklet train` generates its flags from these fields (help and defaults included), reads a
saved recipe into them (`masklet.train.recipe`), and every run stores them in its checkpoints.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from masklet.config import DEFAULT_MODEL, ModelConfig
from masklet.errors import InvalidInputError
from masklet.train.loss import LossWeights


def setting(default: Any, help: str) -> Any:
    """A field with its help text (shown by `masklet train --help`)."""
    return field(default=default, metadata={"help": help})


@dataclass(frozen=True)
class TrainConfig:
    """Everything a training run depends on. Defaults follow SAM 2.1's fine-tuning config
    (AdamW, weight decay 0.1, gradient clipping at 0.1, cosine decay to a tenth, 8 frames,
    1-2 conditioning frames, 7 correction clicks, P(click) = P(box) = 0.25, else mask)."""

    model: str | ModelConfig | None = setting(
        None,
        "variant or bundled model name, or a ModelConfig; None: the model the init checkpoint "
        f"was made for, else {DEFAULT_MODEL}",
    )
    init_checkpoint: str | None = setting(
        None,
        "checkpoint file, official or bundled model name to start from; tensors matching by "
        "name and shape load",
    )
    data: str = setting(
        "synthetic", "synthetic, synthetic-images, davis:FOLDER or coco:JSON[:IMAGES_DIR]"
    )
    num_synthetic: int = setting(
        1000, "synthetic videos (or images) to draw from: seeds SEED*N .. SEED*N+N-1"
    )
    occlusion_prob: float | None = setting(
        None,
        "synthetic videos: chance that an object is fully hidden for >= 5 frames (None: the "
        "generator's 0.3; clips need >= 7 frames for it)",
    )
    steps: int = setting(1000, "optimiser steps of the whole schedule")
    batch_size: int = setting(1, "clips per step")
    lr: float = setting(1e-4, "peak learning rate (AdamW)")
    weight_decay: float = setting(0.1, "AdamW weight decay (weight matrices only)")
    warmup_steps: int = setting(0, "linear warm-up steps before the cosine decay")
    min_lr_ratio: float = setting(0.1, "the cosine decays the learning rate to lr * min_lr_ratio")
    grad_clip: float = setting(0.1, "max global gradient norm; 0 turns clipping off")
    num_frames: int = setting(8, "frames per clip (clips are cut to this length; 1 = images)")
    max_objects: int = setting(3, "objects per clip, sampled among those visible on frame 0")
    max_cond_frames: int = setting(2, "frame 0 plus up to this many - 1 random frames get prompts")
    num_correction_rounds: int = setting(7, "corrective clicks per prompted frame")
    max_frames_to_correct: int = setting(
        1,
        "frames with corrective clicks, conditioning frames included: above their number, a "
        "random count up to this of tracked frames is corrected too (SAM 2.1 trains with 2; "
        "1 = only the conditioning frames, the first nano model's recipe)",
    )
    random_cond_corrections: bool = setting(
        False,
        "conditioning frames get a random 0..num_correction_rounds rounds per batch, so the "
        "frames tracked after them also learn from a one-click first mask; off: always "
        "num_correction_rounds (SAM 2)",
    )
    prob_point: float = setting(
        0.25, "chance that a clip's first prompt is a click (box and mask take the rest)"
    )
    prob_box: float = setting(
        0.25, "chance of a box prompt; the mask prompt takes the rest (never on 1-frame clips)"
    )
    prob_center_click: float = setting(
        0.5, "chance to click the most interior point rather than uniformly"
    )
    prob_click_from_gt: float = setting(
        0.1, "chance that a correction is sampled from the ground truth, not the errors (SAM 2)"
    )
    freeze_image_encoder: bool = setting(False, "train everything but the image encoder")
    seed: int = setting(0, "seed of the data order, windows, objects, prompts and dropout")
    out_dir: str = setting("runs/masklet-train", "output folder (last.pt, model.pt)")
    checkpoint_every: int = setting(100, "write OUT/last.pt every this many steps")
    resume: bool = setting(False, "continue from OUT/last.pt")
    device: str | None = setting(None, "cuda, mps or cpu; None = the best available")
    workers: int = setting(
        1,
        "data-parallel processes, each with batch_size / workers clips per step (CPU: they "
        "share the cores' threads; CUDA: one GPU each)",
    )
    loss: LossWeights = field(
        default_factory=LossWeights, metadata={"help": "weights of the loss terms"}
    )
    progress: bool = setting(True, "show a progress bar")

    def validate(self) -> None:
        """Raise InvalidInputError naming the first out-of-range setting."""
        positive = (
            "steps", "batch_size", "num_frames", "max_objects", "max_cond_frames",
            "max_frames_to_correct", "workers", "num_synthetic", "checkpoint_every",
        )  # fmt: skip
        for name in positive:
            if getattr(self, name) < 1:
                raise InvalidInputError(f"{name} must be at least 1, got {getattr(self, name)}")
        probs = ("prob_point", "prob_box", "prob_center_click", "prob_click_from_gt")
        for name in (*probs, "min_lr_ratio"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise InvalidInputError(f"{name} must be in [0, 1], got {getattr(self, name)}")
        if self.occlusion_prob is not None and not 0.0 <= self.occlusion_prob <= 1.0:
            raise InvalidInputError(f"occlusion_prob must be in [0, 1], got {self.occlusion_prob}")
        if self.prob_point + self.prob_box > 1.0:
            raise InvalidInputError(
                f"prob_point + prob_box must be at most 1 (the mask prompt takes the rest), got "
                f"{self.prob_point} + {self.prob_box}"
            )
        if self.batch_size % self.workers:
            raise InvalidInputError(
                f"batch_size ({self.batch_size}) must be a multiple of workers ({self.workers}) "
                "so that every worker gets the same share of the batch"
            )
        for name in ("lr", "weight_decay", "warmup_steps", "grad_clip", "num_correction_rounds"):
            if getattr(self, name) < 0:
                raise InvalidInputError(f"{name} must not be negative, got {getattr(self, name)}")
        self.loss.validate()
