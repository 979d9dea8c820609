"""`--backend onnxruntime` with an export folder as the model: `masklet image`, `masklet
video` and `masklet serve` give what the PyTorch weights give."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from masklet.cli.main import build_parser, main
from masklet.cli.serve import settings_from_args
from masklet.io.masks import decode_rle
from masklet.modeling.sam2 import SAM2Model
from masklet.server.context import ModelHolder
from tests.media import write_two_squares_clip

pytest.importorskip("onnxruntime")

Exported = tuple[SAM2Model, Path]
CLICKS = ["--click-coordinates", "[20,20],[54,34]", "--click-object-ids", "dog,cat"]


@pytest.fixture(scope="module")
def checkpoint(exported_present: Exported, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The exported model's PyTorch weights as a masklet checkpoint (config included)."""
    model = exported_present[0]
    path = tmp_path_factory.mktemp("ckpt") / "tiny.pt"
    torch.save({"model": model.state_dict(), "model_config": model.config.to_dict()}, path)
    return path


def _masks(path: Path) -> dict[int, dict[int, np.ndarray]]:
    """frame -> object id -> mask of a COCO-style JSON the CLI wrote."""
    data = json.loads(path.read_text())
    frames = data["frames"] if "frames" in data else [{"frame": 0, **data}]
    return {
        f["frame"]: {a["id"]: decode_rle(a["segmentation"]) for a in f["annotations"]}
        for f in frames
    }


def _agree(a: dict[int, dict[int, np.ndarray]], b: dict[int, dict[int, np.ndarray]]) -> None:
    assert a.keys() == b.keys()
    for frame in a:
        assert a[frame].keys() == b[frame].keys()
        for obj, mask in a[frame].items():
            # logits agree within 1e-4 (tests/backends/test_onnxruntime.py); a pixel may flip
            # only where a logit is that close to 0
            assert (mask != b[frame][obj]).mean() < 1e-3, (frame, obj)


def test_image_and_video_commands(
    exported_present: Exported, checkpoint: Path, tmp_path: Path, capsys
) -> None:  # type: ignore[no-untyped-def]
    folder = exported_present[1]
    rng = np.random.default_rng(0)
    photo = rng.integers(0, 60, (60, 80, 3), dtype=np.uint8)
    photo[10:40, 20:50] = (220, 40, 40)
    Image.fromarray(photo).save(tmp_path / "photo.png")
    clip = write_two_squares_clip(tmp_path / "clip.mp4", 6, (64, 48), 24)
    runs = {
        "pytorch": ["--checkpoint", str(checkpoint)],
        "onnxruntime": ["--model", str(folder), "--backend", "onnxruntime"],
    }
    results = {}
    for backend, model_flags in runs.items():
        image_json, video_json = tmp_path / f"{backend}.json", tmp_path / f"{backend}-v.json"
        code = main(["image", str(tmp_path / "photo.png"), "--point", "30,20", *model_flags,
                     "--json", str(image_json)])  # fmt: skip
        assert code == 0, capsys.readouterr().err
        code = main(["video", str(clip), *CLICKS, *model_flags, "--json", str(video_json)])
        assert code == 0, capsys.readouterr().err
        results[backend] = (_masks(image_json), _masks(video_json))
    (image_pt, video_pt), (image_ox, video_ox) = results["pytorch"], results["onnxruntime"]
    assert image_pt[0][1].any() and not image_pt[0][1].all()
    # random weights: an object may be empty on a frame (outputs never overlap), but every
    # frame shows something and the masks differ between objects and frames
    assert all(any(m.any() for m in objects.values()) for objects in video_pt.values())
    assert len({m.tobytes() for objects in video_pt.values() for m in objects.values()}) > 4
    _agree(image_pt, image_ox)
    _agree(video_pt, video_ox)


def test_a_checkpoint_with_the_onnxruntime_backend_says_how_to_export(
    checkpoint: Path, tmp_path: Path, capsys
) -> None:  # type: ignore[no-untyped-def]
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "x.png")
    code = main(["image", str(tmp_path / "x.png"), "--point", "1,1", "--checkpoint",
                 str(checkpoint), "--backend", "onnxruntime", "--json", str(tmp_path / "j")])  # fmt: skip
    assert code == 2
    assert "masklet export onnx" in capsys.readouterr().err


def test_batch_workers_load_the_export_with_onnxruntime(exported_present: Exported) -> None:
    from masklet.batch.item import WorkerSpec, WorkerState

    spec = WorkerSpec(model=str(exported_present[1]), device="cpu", backend="onnxruntime")
    assert type(WorkerState(spec).model.image_encoder).__name__ == "OnnxImageEncoder"
    args = build_parser().parse_args(["batch", "--inputs", "x", "--out", "y", "--backend",
                                      "onnxruntime", "--model", "m"])  # fmt: skip
    assert args.backend == "onnxruntime"


def test_serve_loads_the_export_with_onnxruntime(exported_present: Exported) -> None:
    folder = exported_present[1]
    args = build_parser().parse_args(["serve", "--model", str(folder), "--backend", "onnxruntime"])
    settings = settings_from_args(args)
    assert settings.backend == "onnxruntime"
    model = ModelHolder(settings).model()
    assert type(model.memory_attention).__name__ == "OnnxMemoryAttention"
