"""Training entry point: `train(config, dataset)` runs the loop in this process or in
`config.workers` processes.

`masklet.train.step.clip_loss` gives the loss of a batch (SAM 2's training scheme in small);
`masklet.train.loop` runs the steps, checkpoints and resume; `masklet.train.start` builds the
model a run starts from; `masklet.train.config.TrainConfig` holds every setting.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from masklet.errors import InvalidInputError
from masklet.train.config import TrainConfig
from masklet.train.data import ClipDataset
from masklet.train.distributed import WorkerGroup
from masklet.train.loop import (
    FINAL_MODEL,
    LAST_CHECKPOINT,
    TrainResult,
    lr_factor,
    require_checkpoint,
    run_training,
)
from masklet.train.start import LoadReport, build_start_model, load_matching, resolve_model
from masklet.train.workers import train_in_workers

__all__ = [
    "FINAL_MODEL",
    "LAST_CHECKPOINT",
    "LoadReport",
    "TrainConfig",
    "TrainResult",
    "build_start_model",
    "load_matching",
    "lr_factor",
    "resolve_model",
    "run_training",
    "train",
]


def train(
    config: TrainConfig,
    dataset: ClipDataset,
    stop_at: int | None = None,
    *,
    log: Callable[[str], None] | None = None,
) -> TrainResult:
    """Train (or fine-tune) a model on `dataset` for `config.steps` steps.

    `stop_at` ends the run after that many steps (writing last.pt) as an interruption would:
    for time-boxed jobs; resume later with `resume=True`. With `config.workers` > 1 the batch
    is split over that many processes (`masklet.train.distributed`). `log` receives the
    lines meant for the user (the init checkpoint's load report) before the first step.
    """
    config.validate()
    if len(dataset) == 0:
        raise InvalidInputError("the dataset is empty; point --data at clips with masks")
    if config.resume:
        require_checkpoint(Path(config.out_dir) / LAST_CHECKPOINT)
    config = resolve_model(config)  # the run (and its saved recipe) names its whole model
    if config.workers > 1:
        return train_in_workers(config, dataset, stop_at, log=log)
    return run_training(config, dataset, stop_at, WorkerGroup(), log=log)
