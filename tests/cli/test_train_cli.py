import dataclasses
import json
from pathlib import Path

import pytest
import torch

from masklet.cli.main import main
from masklet.cli.train import model_config_from_json
from masklet.config import ModelConfig
from masklet.modeling.sam2 import build_model
from masklet.train.recipe import read_recipe

# The same shrunk model as tests/train/test_trainer.py, as a --config-json file.
TINY = {
    "base": "sam2.1_hiera_tiny",
    "image_size": 64,
    "hiera": {"embed_dim": 16, "stages": [1, 1, 2, 1], "global_att_blocks": [3]},
    "neck": {"d_model": 64},
    "memory_attention": {"num_layers": 1, "dim_feedforward": 64},
    "memory_encoder": {"out_dim": 32},
    "mask_decoder": {"mlp_dim": 64, "iou_head_hidden_dim": 32},
}


@pytest.fixture
def config_json(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.json"
    path.write_text(json.dumps(TINY))
    return path


def _args(config: Path, out: Path, *extra: str) -> list[str]:
    return [
        "train", "--data", "synthetic", "--config-json", str(config), "--steps", "2",
        "--num-frames", "2", "--corrections", "1", "--out", str(out), "--device", "cpu",
        "--quiet", *extra,
    ]  # fmt: skip


def test_train_runs_end_to_end_on_synthetic_data(
    tmp_path: Path, config_json: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    assert main(_args(config_json, out)) == 0
    printed = capsys.readouterr().out
    assert "step 2: loss" in printed and str(out / "model.pt") in printed
    model = build_model(model_config_from_json(config_json))
    model.load_state_dict(torch.load(out / "model.pt", weights_only=True)["model"], strict=True)
    assert torch.load(out / "last.pt", weights_only=True)["step"] == 2

    # fine-tune from it with a frozen image encoder, and resume a finished run
    init = ["--init", str(out / "model.pt"), "--freeze-image-encoder"]
    assert main(_args(config_json, tmp_path / "ft", *init)) == 0
    assert "init from" in capsys.readouterr().out
    assert main(_args(config_json, out, "--resume")) == 0
    assert "step 2" in capsys.readouterr().out


def test_prompt_mix_and_correction_flags_reach_the_run(tmp_path: Path, config_json: Path) -> None:
    out = tmp_path / "clicks"
    args = _args(config_json, out, "--prob-point", "0.9", "--prob-box", "0.1")
    assert main([*args, "--correct-frames", "3", "--random-corrections"]) == 0
    saved = json.loads(torch.load(out / "last.pt", weights_only=True)["config"])
    assert (saved["prob_point"], saved["prob_box"]) == (0.9, 0.1)
    assert saved["max_frames_to_correct"] == 3
    assert saved["random_cond_corrections"] is True


def test_stop_at_ends_early_and_resume_finishes_on_the_same_schedule(
    tmp_path: Path, config_json: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--stop-at 1 of --steps 2 writes last.pt at step 1 and no model; --resume ends the run
    with the losses of an uninterrupted one."""
    whole, split = tmp_path / "whole", tmp_path / "split"
    assert main(_args(config_json, whole)) == 0
    assert main(_args(config_json, split, "--stop-at", "1")) == 0
    printed = capsys.readouterr().out
    assert "stopped at step 1 of 2" in printed and "--resume" in printed
    assert not (split / "model.pt").exists()
    assert torch.load(split / "last.pt", weights_only=True)["step"] == 1
    assert main(_args(config_json, split, "--resume")) == 0
    assert (split / "model.pt").is_file()
    losses = [torch.load(d / "last.pt", weights_only=True)["losses"] for d in (whole, split)]
    assert torch.equal(losses[0], losses[1])


def test_config_json_builds_the_described_model(config_json: Path) -> None:
    cfg = model_config_from_json(config_json)
    assert cfg.image_size == 64 and cfg.hiera.stages == (1, 1, 2, 1)
    assert cfg.neck.backbone_channel_list == (128, 64, 32, 16)  # follows the trunk
    assert cfg.memory_attention.num_layers == 1 and cfg.no_obj_embed_spatial


def test_bad_inputs_exit_with_one_line(
    tmp_path: Path, config_json: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad_data = _args(config_json, tmp_path / "x")
    bad_data[2] = "kinetics:somewhere"
    assert main(bad_data) == 2
    assert "unknown data source" in capsys.readouterr().err
    broken = tmp_path / "broken.json"
    broken.write_text(json.dumps({"hiera": {"no_such_field": 1}}))
    assert main(_args(broken, tmp_path / "y")) == 2
    assert "no_such_field" in capsys.readouterr().err
    assert main(_args(config_json, tmp_path / "z", "--batch-size", "0")) == 2
    assert "batch_size must be at least 1" in capsys.readouterr().err
    assert main(_args(config_json, tmp_path / "w", "--resume")) == 2
    assert "run without --resume" in capsys.readouterr().err
    assert main(_args(config_json, tmp_path / "v", "--num-synthetic", "0")) == 2
    assert "num_synthetic must be at least 1" in capsys.readouterr().err
    assert main(_args(config_json, tmp_path / "u", "--seed", "5", "--num-synthetic", "500000")) == 2
    assert "held-out seeds" in capsys.readouterr().err
    assert main(_args(config_json, tmp_path / "t", "--prob-point", "0.8", "--prob-box", "0.5")) == 2
    assert "prob_point + prob_box must be at most 1" in capsys.readouterr().err
    assert main(_args(config_json, tmp_path / "s", "--correct-frames", "0")) == 2
    assert "max_frames_to_correct must be at least 1" in capsys.readouterr().err
    assert main(_args(config_json, tmp_path / "r", "--stop-at", "0")) == 2
    assert "--stop-at must be at least 1" in capsys.readouterr().err
    assert main(_args(config_json, tmp_path / "q", "--workers", "2", "--batch-size", "3")) == 2
    assert "must be a multiple of workers (2)" in capsys.readouterr().err
    assert main(_args(config_json, tmp_path / "p", "--workers", "0")) == 2
    assert "workers must be at least 1" in capsys.readouterr().err


def test_workers_split_the_batch_and_write_the_run_as_one_process(
    tmp_path: Path, config_json: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "two"
    assert main(_args(config_json, out, "--workers", "2", "--batch-size", "2")) == 0
    assert str(out / "model.pt") in capsys.readouterr().out
    state = torch.load(out / "last.pt", weights_only=True)
    assert state["step"] == 2 and len(state["losses"]) == 2
    assert json.loads(state["config"])["workers"] == 2


def test_init_accepts_the_bundled_model_and_reports_before_training(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`--init masklet-nano-synthetic` (a name `--model` takes elsewhere) fine-tunes the nano
    model itself: every tensor loads, and the report comes before the first step's loss."""
    pytest.importorskip("masklet.train.synthetic")
    out = tmp_path / "nano"
    args = [
        "train", "--data", "synthetic-images", "--init", "masklet-nano-synthetic",
        "--steps", "1", "--num-frames", "1", "--corrections", "0", "--num-synthetic", "4",
        "--out", str(out), "--device", "cpu", "--quiet",
    ]  # fmt: skip
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert printed.index("init from masklet-nano-synthetic: loaded") < printed.index("step 1")
    assert "kept initialised" not in printed and "ignored" not in printed
    saved = read_recipe(out / "model.pt")
    assert isinstance(saved.model, ModelConfig) and saved.model.image_size == 128


def test_final_model_stores_the_whole_recipe_and_reruns_from_it(
    tmp_path: Path, config_json: Path
) -> None:
    out = tmp_path / "run"
    assert main(_args(config_json, out, "--loss-focal", "7", "--max-objects", "2")) == 0
    saved = read_recipe(out / "model.pt")
    assert saved.model == model_config_from_json(config_json)
    assert (saved.steps, saved.num_frames, saved.num_correction_rounds) == (2, 2, 1)
    assert (saved.loss.focal, saved.max_objects, saved.out_dir) == (7.0, 2, str(out))
    again = tmp_path / "again"
    assert main(["train", "--config", str(out / "model.pt"), "--out", str(again)]) == 0
    assert read_recipe(again / "model.pt") == dataclasses.replace(saved, out_dir=str(again))
