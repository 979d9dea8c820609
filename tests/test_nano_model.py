"""The bundled nano model: loads offline by name, runs the README quickstart end to end, and
the held-out evaluation that its model card reports runs on it."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import av
import numpy as np
import pytest
import torch

from masklet.checkpoints import BUNDLED_MODELS, bundled_path, load_model
from masklet.cli.demo import DEMO_SEED
from masklet.cli.main import main
from masklet.eval.heldout import evaluate_heldout
from masklet.io.masks import decode_rle
from masklet.train.synthetic import SyntheticConfig, demo_config, make_video
from tests.nondegenerate import assert_informative

NAME = "masklet-nano-synthetic"
MAX_BYTES = 10 * 1024 * 1024


@pytest.fixture(autouse=True)
def offline(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No network and an empty cache: the bundled model must need neither."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("MASKLET_CACHE", str(tmp_path / "empty-cache"))


def test_loads_by_name_from_the_package() -> None:
    path = bundled_path(NAME)
    assert path is not None and path.stat().st_size <= MAX_BYTES
    assert NAME in BUNDLED_MODELS
    model = load_model(NAME)
    assert model.config.name == NAME and model.config.image_size == 128
    assert next(model.parameters()).dtype == torch.float32  # stored fp16, run fp32


def test_quickstart_runs_end_to_end_offline(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    demo = tmp_path / "demo.mp4"
    assert main(["demo", str(demo), "--frames", "10"]) == 0
    printed = capsys.readouterr().out
    coords = printed.split('--click-coordinates "')[1].split('"')[0]
    out, masks, js = tmp_path / "tracked.mp4", tmp_path / "masks", tmp_path / "masks.json"
    code = main(["video", str(demo), "--model", NAME, "--click-coordinates", coords,
                 "--direction", "both", "-o", str(out), "--masks", str(masks), "--json", str(js)])  # fmt: skip
    assert code == 0, capsys.readouterr().err
    with av.open(str(out)) as container:
        assert sum(1 for _ in container.decode(video=0)) == 10
    assert len(list(masks.glob("*.png"))) == 10
    data = json.loads(js.read_text())
    assert len(data["frames"]) == 10 and len(data["objects"]) == coords.count("[")
    # the masks follow the clicked objects: compared with the clip's ground truth (the demo
    # is the synthetic generator's video, procedural textures, `masklet demo`'s seed)
    masks = {
        f["frame"]: {a["id"]: decode_rle(a["segmentation"]) for a in f["annotations"]}
        for f in data["frames"]
    }
    truth = make_video(
        DEMO_SEED, dataclasses.replace(demo_config(10, (256, 192)), use_photos=False)
    )
    assert_informative({0: masks[0]}, min_pixels=50, distinct_frames=False)
    ious: dict[int, list[float]] = {0: [], 1: []}
    for t, objects in masks.items():
        assert set(objects) == {1, 2}, t  # click order: object k + 1 is the generator's k
        for k in range(2):
            gt, got = truth.masks[t, k].astype(bool), objects[k + 1]
            if gt.any():
                ious[k].append(float((gt & got).sum() / (gt | got).sum()))
    # the small demo model follows both objects on most frames (it may mislabel one for a few
    # frames while the other is hidden: see its model card); the clicked frame is exact
    for k in range(2):
        assert ious[k][0] > 0.7 and float(np.median(ious[k])) > 0.7, (k, ious[k])
        assert sum(v > 0.6 for v in ious[k]) >= 0.7 * len(ious[k]), (k, ious[k])
    assert sum(bool(truth.masks[t, 1].any()) for t in range(10)) >= 2

    # the image command too, on the same clip's first frame
    frame = tmp_path / "frame0.png"
    with av.open(str(demo)) as container:
        next(container.decode(video=0)).to_image().save(frame)
    x, y = coords.strip("[]").split("],[")[0].split(",")
    assert (
        main(
            [
                "image",
                str(frame),
                "--model",
                NAME,
                "--point",
                f"{x},{y}",
                "-o",
                str(tmp_path / "o.png"),
                "--json",
                str(tmp_path / "image.json"),
            ]
        )
        == 0
    )
    [ann] = json.loads((tmp_path / "image.json").read_text())["annotations"]
    image_mask = decode_rle(ann["segmentation"])
    assert image_mask[int(float(y)), int(float(x))] and image_mask.mean() < 0.5


def test_heldout_evaluation_runs_on_the_nano_model() -> None:
    report = evaluate_heldout(load_model(NAME), num_videos=2, config=SyntheticConfig(num_frames=8))
    assert report.forward.objects and all(0.0 <= o.jf_mean <= 1.0 for o in report.forward.objects)
    assert not math.isnan(report.forward.jf_mean)
    assert "forward  J&F" in report.summary() and "one click on frame 0" in report.summary()
    # one IoU per tracked object for the clicked frame; the card's model gets most of it right
    assert len(report.prompted) == len(report.forward.objects)
    assert all(0.0 <= j <= 1.0 for j in report.prompted) and np.mean(report.prompted) > 0.5
    assert all(0.0 <= a <= 1.0 and 0.0 <= b <= 1.0 for a, b in report.corrections)
    assert np.isfinite(report.recoveries).all()


def test_heldout_corrections_help_and_backward_matches_forward() -> None:
    """Two of the issue's held-out checks, on the 100 held-out videos of the model card (seeds
    the model never saw): a correction click on the worst tracked frame raises that frame's
    IoU (more often than not, and on average), and tracking backward from a last-frame click
    comes within 0.05 J&F of tracking forward on the same objects. The J&F >= 0.85 and
    occlusion-recovery targets are not met by this model: see its model card; the bounds on
    them below only guard against a worse model being shipped."""
    report = evaluate_heldout(load_model(NAME), num_videos=100)
    gains = [after - before for before, after in report.corrections]
    assert len(gains) >= 90
    assert sum(g > 0 for g in gains) > len(gains) / 2 and np.mean(gains) > 0.0
    # the card: 70 of 100 raised, mean +0.097 (before: 69, +0.171; 75, +0.102; first: 61, +0.049)
    assert sum(g > 0 for g in gains) >= 0.65 * len(gains) and np.mean(gains) > 0.08
    assert len(report.backward.objects) >= 100
    assert abs(report.backward.jf_mean - report.forward_same.jf_mean) <= 0.05
    assert report.forward.jf_mean > 0.78  # the card's 0.795; before 0.800, 0.789; first 0.714
    recovered = np.asarray(report.recoveries) >= 0.7
    assert len(recovered) >= 90 and recovered.mean() >= 0.45  # the card: 55 of 96 (target: all)
