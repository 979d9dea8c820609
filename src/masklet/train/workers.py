"""Run `masklet.train.loop.run_training` in `config.workers` processes and collect the result.

The processes are started with torch.multiprocessing (spawn), meet on a free local port, and
run the same loop on their share of each batch (`masklet.train.distributed`). Worker 0 writes
OUT/last.pt and OUT/model.pt as a single process would; this process reads them back, so the
caller gets the same `TrainResult` either way. A worker whose parent is gone (killed, so it
could not stop them) ends itself within a second instead of training on as an orphan.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from masklet.checkpoints import resolve_device
from masklet.errors import InvalidInputError
from masklet.train.config import TrainConfig
from masklet.train.data import ClipDataset
from masklet.train.distributed import WorkerGroup, free_port
from masklet.train.loop import FINAL_MODEL, LAST_CHECKPOINT, TrainResult, run_training
from masklet.train.start import build_start_model

__all__ = ["exit_with_parent", "train_in_workers"]

PARENT_POLL_SECONDS = 1.0


def exit_with_parent(parent: int, interval: float = PARENT_POLL_SECONDS) -> threading.Thread:
    """Start a daemon thread that ends this process once `parent` (the pid that started it)
    is no longer its parent: killed parents leave no workers behind."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(interval)
        os._exit(1)  # the run is lost with its parent; nothing here to flush or save

    thread = threading.Thread(target=watch, name="masklet-parent-watch", daemon=True)
    thread.start()
    return thread


def _worker(
    rank: int,
    config: TrainConfig,
    dataset: ClipDataset,
    stop_at: int | None,
    port: int,
    threads: int,
    parent: int,
) -> None:
    exit_with_parent(parent)
    torch.set_num_threads(threads)
    cuda = resolve_device(config.device).type == "cuda"
    if cuda:
        torch.cuda.set_device(rank)
    dist.init_process_group(
        "nccl" if cuda else "gloo",
        init_method=f"tcp://127.0.0.1:{port}",
        rank=rank,
        world_size=config.workers,
    )
    try:
        group = WorkerGroup(rank, config.workers, f"cuda:{rank}" if cuda else "cpu")
        run_training(config, dataset, stop_at, group)
    finally:
        dist.destroy_process_group()


def train_in_workers(
    config: TrainConfig,
    dataset: ClipDataset,
    stop_at: int | None,
    *,
    log: Callable[[str], None] | None = None,
) -> TrainResult:
    """Train with `config.workers` processes; returns what worker 0 wrote, loaded here.
    `log` gets the init checkpoint's load report before the workers start."""
    device = resolve_device(config.device)
    if device.type not in ("cpu", "cuda"):
        raise InvalidInputError(
            f"--workers needs cpu or cuda devices, not {device.type}; use --workers 1"
        )
    if device.type == "cuda" and torch.cuda.device_count() < config.workers:
        raise InvalidInputError(
            f"--workers {config.workers} needs {config.workers} GPUs, found "
            f"{torch.cuda.device_count()}; lower --workers"
        )
    # CPU workers share the cores: each gets its part of this process's threads
    threads = max(1, torch.get_num_threads() // config.workers)
    model, report = build_start_model(config)  # for the init report; the workers build theirs
    if report is not None and log is not None:
        log(report.line(config.init_checkpoint))
    args = (config, dataset, stop_at, free_port(), threads, os.getpid())
    # the children inherit OMP_NUM_THREADS at start-up; torch.set_num_threads then applies
    saved = os.environ.get("OMP_NUM_THREADS")
    os.environ["OMP_NUM_THREADS"] = str(threads)
    try:
        mp.spawn(_worker, args=args, nprocs=config.workers, join=True)
    finally:
        if saved is None:
            os.environ.pop("OMP_NUM_THREADS", None)
        else:
            os.environ["OMP_NUM_THREADS"] = saved

    out_dir = Path(config.out_dir)
    checkpoint = out_dir / LAST_CHECKPOINT
    state = torch.load(checkpoint, map_location="cpu", weights_only=True)
    model.load_state_dict(state["model"])
    model.train()
    final = out_dir / FINAL_MODEL
    step = int(state["step"])
    return TrainResult(
        model=model,
        losses=[float(x) for x in state["losses"]],
        step=step,
        checkpoint=checkpoint,
        model_path=final if step == config.steps else None,
        init_report=report,
    )
