"""A generated batch: 20 images (one corrupt file, one click outside its image) and 4 short
videos with every prompt form, and each good item's outputs from `masklet image` /
`masklet video` run on it alone (the expectation every executor must match byte for byte)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

from masklet.cli import image as image_cli
from masklet.cli import video as video_cli
from masklet.cli.main import main
from tests.media import write_square_clip

MODEL = "masklet-nano-synthetic"  # bundled: loads offline
W, H = 64, 48
FAILING = {"corrupt": "InvalidInputError", "outside": "InvalidPromptError"}


@dataclass(frozen=True)
class Dataset:
    root: Path
    manifest: Path
    lines: list[dict[str, Any]]
    expected: Path  # <expected>/<id>/ holds the single-item CLI outputs of each good item

    @property
    def ids(self) -> list[str]:
        return [line["id"] for line in self.lines]

    @property
    def good(self) -> list[str]:
        return [i for i in self.ids if i not in FAILING]

    def line(self, item_id: str) -> dict[str, Any]:
        return next(line for line in self.lines if line["id"] == item_id)


def _square_image(path: Path, k: int) -> tuple[int, int]:
    """A coloured square on a dark background; returns its centre (x, y)."""
    x0, y0 = 4 + (k * 5) % 36, 4 + (k * 3) % 20
    array = np.full((H, W, 3), 20 + k, np.uint8)
    array[y0 : y0 + 18, x0 : x0 + 18] = (200, 60 + 7 * k, 40)
    Image.fromarray(array).save(path)
    return x0 + 9, y0 + 9


def _image_lines(root: Path) -> list[dict[str, Any]]:
    (root / "images").mkdir()
    mask = np.zeros((H, W), np.uint8)
    mask[8:26, 8:26] = 255
    Image.fromarray(mask).save(root / "rough.png")
    lines = []
    for k in range(18):
        name = f"images/img{k:02d}.png"
        cx, cy = _square_image(root / name, k)
        if k % 6 == 1:
            prompts = [{"object": "square", "box": [cx - 10, cy - 10, cx + 10, cy + 10]}]
        elif k % 6 == 2:  # two objects: the square and the background
            prompts = [{"object": "square", "points": [[cx, cy]]},
                       {"object": "ground", "points": [[1, H - 2]], "labels": [1]}]  # fmt: skip
        elif k == 3:
            prompts = [{"object": 1, "mask": "rough.png"}]
        else:
            prompts = [{"object": "square", "points": [[cx, cy], [1, 1]], "labels": [1, 0]}]
        line: dict[str, Any] = {"id": f"img{k:02d}", "input": name, "prompts": prompts}
        if k % 4 == 0:
            line["outputs"] = ["overlay", "masks", "json"]
        if k == 5:
            line["options"] = {"multimask": True}
        lines.append(line)
    (root / "images" / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)
    lines.append({"id": "corrupt", "input": "images/corrupt.png",
                  "prompts": [{"object": 1, "points": [[10, 10]]}]})  # fmt: skip
    _square_image(root / "images" / "outside.png", 3)
    lines.append({"id": "outside", "input": "images/outside.png",
                  "prompts": [{"object": 1, "points": [[W + 30, 10]]}]})  # fmt: skip
    return lines


def _video_lines(root: Path) -> list[dict[str, Any]]:
    (root / "videos").mkdir()
    for k in range(4):
        write_square_clip(root / "videos" / f"clip{k}.mp4", 5, (W, H), 24, step=2 + k)
    every = ["masks", "json"]
    return [
        {"id": "clip0", "input": "videos/clip0.mp4", "click_coordinates": "[20,20]",
         "click_object_ids": "square", "outputs": every},
        {"id": "clip1", "input": "videos/clip1.mp4", "click_coordinates": "[20,20],[50,40]",
         "click_labels": "1,1", "click_object_ids": "square,ground", "outputs": every},
        {"id": "clip2", "input": "videos/clip2.mp4",
         "prompts": [{"object": "square", "frame": 1, "box": [10, 8, 36, 32]}], "outputs": every},
        {"id": "clip3", "input": "videos/clip3.mp4", "click_coordinates": "[30,20]",
         "click_frames": "2", "outputs": every,
         "options": {"direction": "both", "start_frame": 2}},
    ]  # fmt: skip


def cli_argv(line: dict[str, Any], root: Path, out: Path, k: int) -> list[str]:
    """The `masklet image` / `masklet video` command for one manifest line."""
    source = str(root / line["input"])
    argv = []
    if "prompts" in line:
        prompt_file = root / f"prompts_{k}.json"  # beside the manifest: mask paths resolve alike
        prompt_file.write_text(json.dumps(line["prompts"]))
        argv += ["--prompts", str(prompt_file)]
    for key in ("click_coordinates", "click_labels", "click_frames", "click_object_ids"):
        if key in line:
            argv += ["--" + key.replace("_", "-"), line[key]]
    wanted = line.get("outputs", ["masks", "json"])
    options = line.get("options", {})
    if line["input"].endswith(".png"):
        argv += ["--masks", str(out / "masks.png"), "--json", str(out / "masks.json")]
        if "overlay" in wanted:
            argv += ["-o", str(out / "overlay.png")]
        if options.get("multimask"):
            argv.append("--multimask")
        return ["image", source, *argv]
    argv += ["--masks", str(out / "masks"), "--json", str(out / "masks.json")]
    for key in ("direction", "start_frame"):
        if key in options:
            argv += ["--" + key.replace("_", "-"), str(options[key])]
    return ["video", source, *argv]


@pytest.fixture(scope="session")
def bundled_model() -> Any:
    from masklet import load_model

    return load_model(MODEL)


@pytest.fixture(scope="session")
def dataset(tmp_path_factory: pytest.TempPathFactory, bundled_model: Any) -> Iterator[Dataset]:
    root = tmp_path_factory.mktemp("batch")
    lines = _image_lines(root) + _video_lines(root)
    manifest = root / "items.jsonl"
    manifest.write_text("".join(json.dumps(line) + "\n" for line in lines))
    expected = root / "expected"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as each batch worker runs here (2 workers on 2 cores)
    with pytest.MonkeyPatch.context() as mp:
        for cli in (image_cli, video_cli):
            mp.setattr(cli, "load_model_from_args", lambda args: bundled_model)
        try:
            for k, line in enumerate(lines):
                if line["id"] in FAILING:
                    continue
                (expected / line["id"]).mkdir(parents=True)
                argv = cli_argv(line, root, expected / line["id"], k)
                assert main([*argv, "--model", MODEL]) == 0, argv
        finally:
            torch.set_num_threads(threads)
    yield Dataset(root, manifest, lines, expected)


def output_files(folder: Path) -> dict[str, bytes]:
    """Every output file under an item folder (relative path -> bytes), done record aside."""
    return {
        str(p.relative_to(folder)): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.name != "done.json"
    }


def assert_matches_cli(out: Path, dataset: Dataset) -> None:
    """Every good item's masks (id PNGs, JSON, image overlays) equal its single-item CLI run,
    and those masks are not degenerate."""
    from masklet.io.masks import read_palette_png

    for item_id in dataset.good:
        got, want = output_files(out / item_id), output_files(dataset.expected / item_id)
        assert sorted(got) == sorted(want), item_id
        for name, data in want.items():
            assert got[name] == data, f"{item_id}/{name} differs from the CLI's"
        pngs = [p for p in (dataset.expected / item_id).rglob("*.png") if "overlay" not in p.name]
        ids = np.stack([read_palette_png(p) for p in pngs])
        assert 0 < (ids > 0).mean() < 1, f"{item_id}: degenerate masks"


# segment everything on the nano model: its predicted IoU tops ~0.82 and its stability ~0.79,
# below the reference's defaults (see tests/everything/test_generator.py)
EVERYTHING = {"points_per_side": 16, "pred_iou_thresh": 0.5, "stability_score_thresh": 0.5}
EVERYTHING_VIDEO = {**EVERYTHING, "every": 4}
EVERYTHING_FLAGS = ["--everything", "--points-per-side", "16", "--pred-iou-thresh", "0.5",
                    "--stability-score-thresh", "0.5"]  # fmt: skip


@dataclass(frozen=True)
class EverythingInputs:
    folder: Path  # shapes.png (a square and a disc) and demo.mp4 (the demo clip, 8 frames)
    expected: Path  # <expected>/<stem>/: `masklet image|video --everything` on each alone


@pytest.fixture(scope="session")
def everything_inputs(
    tmp_path_factory: pytest.TempPathFactory, bundled_model: Any
) -> EverythingInputs:
    from masklet.io.video import VideoWriter
    from masklet.train.synthetic import demo_config, make_video

    root = tmp_path_factory.mktemp("everything")
    folder = root / "inputs"
    folder.mkdir()
    yy, xx = np.mgrid[:96, :128]
    image = np.full((96, 128, 3), 25, np.uint8)
    image[(xx >= 14) & (xx < 50) & (yy >= 20) & (yy < 56)] = (230, 190, 40)
    image[(xx - 92) ** 2 + (yy - 50) ** 2 < 18**2] = (60, 170, 240)
    Image.fromarray(image).save(folder / "shapes.png")
    with VideoWriter(folder / "demo.mp4", fps=24, size=(256, 192)) as writer:
        for frame in make_video(0, demo_config(8, (256, 192))).frames:  # two moving objects
            writer.write(frame)
    expected = root / "expected"
    runs = {
        "shapes": ["image", str(folder / "shapes.png"), *EVERYTHING_FLAGS,
                   "--masks", str(expected / "shapes" / "masks.png")],
        "demo": ["video", str(folder / "demo.mp4"), *EVERYTHING_FLAGS, "--everything-every",
                 "4", "--masks", str(expected / "demo" / "masks")],
    }  # fmt: skip
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as each batch worker runs here
    with pytest.MonkeyPatch.context() as mp:
        for cli in (image_cli, video_cli):
            mp.setattr(cli, "load_model_from_args", lambda args: bundled_model)
        try:
            for stem, argv in runs.items():
                (expected / stem).mkdir(parents=True)
                json_path = expected / stem / "masks.json"
                assert main([*argv, "--json", str(json_path), "--model", MODEL]) == 0, argv
        finally:
            torch.set_num_threads(threads)
    return EverythingInputs(folder, expected)


def assert_everything_matches_cli(out: Path, inputs: EverythingInputs) -> None:
    """Both items equal their single-item `--everything` runs byte for byte, and those found
    several regions (on every frame of the video), not one mask over everything."""
    from masklet.io.masks import read_palette_png

    for stem in ("shapes", "demo"):
        got, want = output_files(out / stem), output_files(inputs.expected / stem)
        assert sorted(got) == sorted(want), stem
        for name, data in want.items():
            assert got[name] == data, f"{stem}/{name} differs from the CLI's"
        pngs = sorted((inputs.expected / stem).rglob("*.png"))
        assert len(pngs) == (1 if stem == "shapes" else 8)
        for png in pngs:
            ids = read_palette_png(png)
            assert len(np.unique(ids[ids > 0])) >= 2 and 0 < (ids > 0).mean() < 1, png
