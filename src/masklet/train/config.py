"""The settings of a training run (`masklet train`, `masklet.train.trainer.train`)."""

from __future__ import annotations

from dataclasses import dataclass, field

from masklet.config import ModelConfig
from masklet.errors import InvalidInputError
from masklet.train.loss import LossWeights


@dataclass(frozen=True)
class TrainConfig:
    """Everything a training run depends on. Defaults follow SAM 2.1's fine-tuning config
    (AdamW, weight decay 0.1, gradient clipping at 0.1, cosine decay to a tenth, 8 frames,
    1-2 conditioning frames, 7 correction clicks, P(click) = P(box) = 0.25, else mask)."""

    model: str | ModelConfig = "sam2.1_hiera_tiny"
    init_checkpoint: str | None = None  # file or official name; keys matching name+shape load
    steps: int = 1000
    batch_size: int = 1
    lr: float = 1e-4
    weight_decay: float = 0.1
    warmup_steps: int = 0
    min_lr_ratio: float = 0.1  # the cosine decays the learning rate to lr * min_lr_ratio
    grad_clip: float = 0.1  # max global gradient norm; 0 turns clipping off
    num_frames: int = 8  # frames per clip (clips are cut to this length)
    max_objects: int = 3  # objects per clip, sampled among those visible on frame 0
    max_cond_frames: int = 2  # frame 0 plus up to this many - 1 random frames get prompts
    num_correction_rounds: int = 7
    # frames with corrective clicks, conditioning frames included: above their number, a random
    # count up to this of tracked frames is corrected too (SAM 2.1 trains with 2; 1 = only the
    # conditioning frames, the recipe of the first shipped nano model)
    max_frames_to_correct: int = 1
    # conditioning frames get a random 0..num_correction_rounds rounds, drawn per batch, so the
    # frames tracked after them also learn from a one-click first mask (a user's first prompt,
    # and the held-out evaluation's); False: always num_correction_rounds (SAM 2)
    random_cond_corrections: bool = False
    prob_point: float = 0.25
    prob_box: float = 0.25  # the mask prompt takes the rest (never on 1-frame clips)
    prob_center_click: float = 0.5  # click at the most interior point rather than uniformly
    prob_click_from_gt: float = 0.1  # correction sampled from the GT, not the errors (SAM 2)
    freeze_image_encoder: bool = False
    seed: int = 0
    out_dir: str = "runs/masklet-train"
    checkpoint_every: int = 100
    resume: bool = False  # continue from out_dir/last.pt
    device: str | None = None  # cuda, mps or cpu; None = the best available
    workers: int = 1  # data-parallel processes, each computing batch_size / workers clips
    loss: LossWeights = field(default_factory=LossWeights)
    progress: bool = True

    def validate(self) -> None:
        """Raise InvalidInputError naming the first out-of-range setting."""
        positive = (
            "steps", "batch_size", "num_frames", "max_objects", "max_cond_frames",
            "max_frames_to_correct", "workers",
        )  # fmt: skip
        for name in (*positive, "checkpoint_every"):
            if getattr(self, name) < 1:
                raise InvalidInputError(f"{name} must be at least 1, got {getattr(self, name)}")
        probs = ("prob_point", "prob_box", "prob_center_click", "prob_click_from_gt")
        for name in (*probs, "min_lr_ratio"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise InvalidInputError(f"{name} must be in [0, 1], got {getattr(self, name)}")
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

    def model_config(self) -> ModelConfig:
        return self.model if isinstance(self.model, ModelConfig) else ModelConfig.named(self.model)
