"""Data-parallel training: gradient averaging across processes, and a 2-worker run that equals
one process computing both workers' shares with their prompts."""

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from masklet.errors import InvalidInputError
from masklet.train import loop
from masklet.train.distributed import WorkerGroup, average_gradients, free_port
from masklet.train.step import clip_loss
from masklet.train.trainer import LAST_CHECKPOINT, TrainConfig, build_start_model, train
from tests.train.test_trainer import MovingSquares, _config


def test_worker_group_shards_the_batch_and_sums_locally() -> None:
    assert list(WorkerGroup(1, 2).shard(6)) == [1, 3, 5]
    assert list(WorkerGroup().shard(3)) == [0, 1, 2]
    assert WorkerGroup().sum(1.5, 2.0) == [1.5, 2.0]
    assert WorkerGroup(0, 2).main and not WorkerGroup(1, 2).main


def _average_in_worker(rank: int, port: int, out: str) -> None:
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    try:
        both = torch.nn.Parameter(torch.zeros(2, 3))
        first_only = torch.nn.Parameter(torch.zeros(4))
        neither = torch.nn.Parameter(torch.zeros(1))
        both.grad = torch.full((2, 3), float(rank + 1))  # 1 and 2: mean 1.5
        if rank == 0:
            first_only.grad = torch.full((4,), 2.0)  # none on worker 1: counts as 0, mean 1
        group = WorkerGroup(rank, 2)
        average_gradients([both, first_only, neither], group)
        sums = group.sum(float(rank), 10.0)
        torch.save(
            {"both": both.grad, "first_only": first_only.grad, "neither": neither.grad,
             "sums": sums},
            f"{out}/{rank}.pt",
        )  # fmt: skip
    finally:
        dist.destroy_process_group()


def test_average_gradients_means_over_workers_and_keeps_none_where_nobody_had_one(
    tmp_path: Path,
) -> None:
    mp.spawn(_average_in_worker, args=(free_port(), str(tmp_path)), nprocs=2, join=True)
    for rank in (0, 1):
        got = torch.load(tmp_path / f"{rank}.pt", weights_only=True)
        assert torch.equal(got["both"], torch.full((2, 3), 1.5))
        assert torch.equal(got["first_only"], torch.full((4,), 1.0))
        assert got["neither"] is None
        assert got["sums"] == [1.0, 20.0]


def _one_process_step(cfg: TrainConfig, data: MovingSquares) -> torch.nn.Module:
    """Step 0 of a 2-worker run, computed here: each worker's clips, prompts and dropout
    streams, the mean of the two gradients, clipping and one AdamW step."""
    model, _ = build_start_model(cfg)
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(loop._param_groups(model, cfg.weight_decay), lr=cfg.lr)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, loop.lr_factor(cfg.warmup_steps, cfg.steps, cfg.min_lr_ratio)
    )
    for rank in (0, 1):
        clips = []
        for i in WorkerGroup(rank, 2).shard(cfg.batch_size):
            seed = loop._seed(cfg.seed, i, loop._STREAM_DATA)
            index = loop._dataset_index(cfg.seed, i, len(data))
            clips.append(data.clip(index, np.random.default_rng(seed)))
        torch.manual_seed(loop._seed(cfg.seed, 0, loop._STREAM_TORCH, rank))
        gen = torch.Generator().manual_seed(loop._seed(cfg.seed, 0, loop._STREAM_PROMPTS, rank))
        rng = np.random.default_rng(loop._seed(cfg.seed, 0, loop._STREAM_OBJECTS, rank))
        (
            clip_loss(model, clips, cfg, rng=rng, gen=gen).total / 2
        ).backward()  # gradients accumulate
    torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
    optimizer.step()
    scheduler.step()
    return model


def test_two_workers_take_the_step_of_both_shares_and_resume_like_one_run(
    tmp_path: Path,
) -> None:
    data = MovingSquares(n=4)
    cfg = _config(tmp_path / "one", steps=1, batch_size=4, workers=2, grad_clip=0.5)
    result = train(cfg, data)
    assert result.step == 1 and len(result.losses) == 1 and np.isfinite(result.losses[0])
    assert result.model_path is not None and result.model_path.is_file()
    expected = _one_process_step(cfg, data).state_dict()
    for name, value in result.model.state_dict().items():
        torch.testing.assert_close(value, expected[name], rtol=1e-5, atol=1e-6, msg=name)

    # an interrupted 2-worker run resumed with 2 workers replays the uninterrupted one
    whole = train(_config(tmp_path / "whole", steps=3, batch_size=2, workers=2), data)
    part = _config(tmp_path / "part", steps=3, batch_size=2, workers=2)
    first = train(part, data, stop_at=1)
    assert first.step == 1 and first.model_path is None
    assert torch.load(tmp_path / "part" / "run" / LAST_CHECKPOINT, weights_only=True)["step"] == 1
    rest = train(dataclasses.replace(part, resume=True), data)
    assert rest.step == 3 and rest.losses == whole.losses
    for (name, p), q in zip(rest.model.state_dict().items(), whole.model.state_dict().values()):
        assert torch.equal(p, q), name


def test_batch_must_split_evenly_over_workers(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match="multiple of workers"):
        train(_config(tmp_path, batch_size=3, workers=2), MovingSquares())
