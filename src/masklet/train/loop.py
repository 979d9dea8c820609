"""The training loop of one process: optimiser, schedule, checkpoints and resume around
`clip_loss`, and the model a run starts from.

`masklet.train.trainer.train` is the entry point: it runs this loop in this process or in
`config.workers` processes (`masklet.train.workers`), which both import this module.

Randomness is derived from (seed, step) for every step: the data order, the windows, the
objects, the prompts and dropout. A resumed run therefore replays exactly the batches and
prompts of an uninterrupted one.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from masklet.checkpoints import resolve_device
from masklet.errors import CheckpointError
from masklet.io.atomic import atomic_output
from masklet.modeling.sam2 import SAM2Model
from masklet.train.config import TrainConfig
from masklet.train.data import ClipDataset
from masklet.train.distributed import WorkerGroup, average_gradients
from masklet.train.recipe import recipe_dict
from masklet.train.start import LoadReport, build_start_model
from masklet.train.step import clip_loss

LAST_CHECKPOINT = "last.pt"
FINAL_MODEL = "model.pt"
# Independent random streams derived from (seed, step, stream).
_STREAM_DATA, _STREAM_OBJECTS, _STREAM_PROMPTS, _STREAM_TORCH = range(4)


@dataclass
class TrainResult:
    """model: the trained model (train mode); losses: total loss of every step from step 0,
    including steps run before a resume; step: steps completed."""

    model: SAM2Model
    losses: list[float]
    step: int
    checkpoint: Path | None
    model_path: Path | None
    init_report: LoadReport | None


def lr_factor(warmup: int, total: int, min_ratio: float) -> Callable[[int], float]:
    """Linear warm-up to 1 over `warmup` steps, then cosine decay to `min_ratio` at `total`."""

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = min((step - warmup) / max(total - warmup, 1), 1.0)
        return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))

    return factor


def _seed(*keys: int) -> int:
    """A 32-bit seed derived from (seed, step, stream, ...)."""
    return int(np.random.SeedSequence(list(keys)).generate_state(1)[0])


def _dataset_index(seed: int, sample: int, size: int) -> int:
    """Index of the `sample`-th clip drawn: a fresh permutation of the dataset every epoch."""
    epoch, position = divmod(sample, size)
    return int(np.random.default_rng([seed, epoch]).permutation(size)[position])


def _save_checkpoint(
    path: Path,
    model: SAM2Model,
    *,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    step: int,
    losses: list[float],
    config: TrainConfig,
) -> None:
    state = {
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "step": step,
        "losses": torch.tensor(losses, dtype=torch.float64),
        "rng_torch": torch.get_rng_state(),
        "config": json.dumps(recipe_dict(config)),
        "model_config": model.config.to_dict(),  # so last.pt also loads with load_model
    }
    if torch.cuda.is_available():
        state["rng_cuda"] = torch.cuda.get_rng_state_all()
    with atomic_output(path) as tmp:
        torch.save(state, tmp)


def _restore(
    path: Path,
    model: SAM2Model,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
) -> tuple[int, list[float]]:
    require_checkpoint(path)
    state = torch.load(path, map_location="cpu", weights_only=True)
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    torch.set_rng_state(state["rng_torch"])
    if "rng_cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["rng_cuda"])
    return int(state["step"]), [float(x) for x in state["losses"]]


def _param_groups(model: SAM2Model, weight_decay: float) -> list[dict[str, object]]:
    """Weight decay on weight matrices only: not on biases, norms and embeddings (SAM 2)."""
    trainable = [p for p in model.parameters() if p.requires_grad]
    decay = [p for p in trainable if p.ndim >= 2]
    no_decay = [p for p in trainable if p.ndim < 2]
    return [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]


def require_checkpoint(path: Path) -> None:
    if not path.is_file():
        raise CheckpointError(f"cannot resume: {path} not found; run without --resume first")


def run_training(
    config: TrainConfig,
    dataset: ClipDataset,
    stop_at: int | None,
    group: WorkerGroup,
    *,
    log: Callable[[str], None] | None = None,
) -> TrainResult:
    """The training loop of one process: all of the batch, or `group`'s share of it."""
    device = resolve_device(config.device)
    if group.distributed and device.type == "cuda":
        device = torch.device("cuda", group.rank)  # one GPU per worker
    model, report = build_start_model(config)
    if report is not None and log is not None and group.main:
        log(report.line(config.init_checkpoint))  # before the first step, not after the run
    model.to(device).train()
    if config.freeze_image_encoder:
        model.image_encoder.requires_grad_(False)
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(_param_groups(model, config.weight_decay), lr=config.lr)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lr_factor(config.warmup_steps, config.steps, config.min_lr_ratio)
    )
    out_dir = Path(config.out_dir)
    start, losses = 0, list[float]()
    if config.resume:
        start, losses = _restore(out_dir / LAST_CHECKPOINT, model, optimizer, scheduler)
    end = config.steps if stop_at is None else min(stop_at, config.steps)

    bar = tqdm(
        range(start, end), initial=start, total=config.steps,
        disable=not (config.progress and group.main), desc="train", unit="step",
    )  # fmt: skip
    checkpoint: Path | None = None
    for step in bar:
        clips = []
        for i in group.shard(config.batch_size):
            sample = step * config.batch_size + i
            rng = np.random.default_rng(_seed(config.seed, sample, _STREAM_DATA))
            clips.append(dataset.clip(_dataset_index(config.seed, sample, len(dataset)), rng))
        # workers draw their own prompts and dropout; one process keeps the old streams
        worker = (group.rank,) if group.distributed else ()
        torch.manual_seed(_seed(config.seed, step, _STREAM_TORCH, *worker))  # dropout
        gen = torch.Generator().manual_seed(_seed(config.seed, step, _STREAM_PROMPTS, *worker))
        objects_rng = np.random.default_rng(_seed(config.seed, step, _STREAM_OBJECTS, *worker))
        terms = clip_loss(model, clips, config, rng=objects_rng, gen=gen)
        optimizer.zero_grad(set_to_none=True)
        # every frame given as a mask prompt leaves nothing to learn from this batch
        if terms.total.requires_grad:
            terms.total.backward()
        average_gradients(trainable, group)  # every worker takes part, with or without grads
        if config.grad_clip > 0 and any(p.grad is not None for p in trainable):
            torch.nn.utils.clip_grad_norm_(trainable, config.grad_clip)
        optimizer.step()  # skips parameters without gradients
        scheduler.step()
        loss, hidden, present = group.sum(
            float(terms.total.detach()), float(terms.called_hidden), float(terms.present)
        )
        losses.append(loss / group.size)
        bar.set_postfix(
            loss=f"{losses[-1]:.4f}",
            lr=f"{scheduler.get_last_lr()[0]:.2e}",
            # present objects the object head called hidden (see LossTerms): no mask gradient
            hidden=f"{int(hidden)}/{int(present)}",
        )
        done = step + 1
        if group.main and (done % config.checkpoint_every == 0 or done == end):
            checkpoint = out_dir / LAST_CHECKPOINT
            _save_checkpoint(
                checkpoint,
                model,
                optimizer=optimizer,
                scheduler=scheduler,
                step=done,
                losses=losses,
                config=config,
            )
    bar.close()

    model_path = None
    if end == config.steps and group.main:
        model_path = out_dir / FINAL_MODEL
        with atomic_output(model_path) as tmp:
            # the official layout, plus the model config so load_model needs no variant name,
            # and the whole training config (`masklet train --config model.pt` reads it)
            final = {
                "model": model.state_dict(),
                "model_config": model.config.to_dict(),
                "train_config": json.dumps(recipe_dict(config)),
            }
            torch.save(final, tmp)
    return TrainResult(
        model=model,
        losses=losses,
        step=max(end, start),
        checkpoint=checkpoint,
        model_path=model_path,
        init_report=report,
    )
