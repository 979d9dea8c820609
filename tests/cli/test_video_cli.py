"""`masklet video`: click strings and prompt files to overlay MP4, id PNGs and COCO JSON that
equal the public API's masks; every bad input is one line with exit code 2; an interrupted run
leaves no output under a final name."""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from masklet.cli import video as video_cli
from masklet.cli.main import main
from masklet.io.masks import decode_rle, id_mask, read_palette_png
from masklet.io.sinks import CocoJsonSink
from masklet.pipelines.video import apply_prompts, planned_frames, record_of
from masklet.prompts import parse_click_strings
from masklet.video.predictor import VideoPredictor
from masklet.video.tracking import track
from tests.media import write_two_squares_clip
from tests.nondegenerate import assert_informative

W, H, N, FPS = 64, 48, 8, 24
CLICK_POINTS = "[20,20],[54,34]"  # one on each square
CLICKS = ["--click-coordinates", CLICK_POINTS, "--click-object-ids", "dog,cat"]


@pytest.fixture
def tiny_model(nano_model):  # type: ignore[no-untyped-def]
    """The bundled nano model: its masks follow both squares (a random model's are empty)."""
    return nano_model


@pytest.fixture(autouse=True)
def patched_model(monkeypatch: pytest.MonkeyPatch, tiny_model):  # type: ignore[no-untyped-def]
    monkeypatch.setattr(video_cli, "load_model_from_args", lambda args: tiny_model)
    return tiny_model


@pytest.fixture
def clip(tmp_path: Path) -> Path:
    """8 frames 64x48 at 24 fps: two squares moving towards each other on a dark background."""
    return write_two_squares_clip(tmp_path / "clip.mp4", N, (W, H), FPS)


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def outputs(tmp_path: Path) -> tuple[Path, Path, Path, list[str]]:
    o, m, j = tmp_path / "out" / "o.mp4", tmp_path / "out" / "masks", tmp_path / "out" / "m.json"
    return o, m, j, ["-o", str(o), "--masks", str(m), "--json", str(j)]


def overlay_info(path: Path) -> tuple[int, Fraction, tuple[int, int]]:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        count = sum(1 for _ in container.decode(stream))
        return count, Fraction(stream.average_rate), (stream.width, stream.height)


def api_masks(model, clip: Path, direction: str = "forward") -> dict[int, dict[int, np.ndarray]]:  # type: ignore[no-untyped-def]
    """frame -> object id -> mask, through the public API the CLI must not add logic to."""
    predictor = VideoPredictor(model)
    session = predictor.init_state(clip)
    parsed = parse_click_strings(CLICK_POINTS, None, None, "dog,cat")
    apply_prompts(predictor, session, parsed.prompts, dict(parsed.names))
    # outputs never overlap (masklet.io.records): the API's raw masks with that one policy
    return {r.frame_idx: record_of(r).masks() for r in track(predictor, session, direction)}


def test_click_strings_write_three_consistent_outputs(
    clip: Path, tmp_path: Path, tiny_model, capsys
) -> None:  # type: ignore[no-untyped-def]
    o, m, j, flags = outputs(tmp_path)
    code, out, err = run(["video", str(clip), *CLICKS, *flags], capsys)
    assert code == 0, err
    assert "tracked 8 of 8 frames, 2 object(s): dog, cat" in out
    assert overlay_info(o) == (N, Fraction(FPS), (W, H))
    data = json.loads(j.read_text())
    assert data["video"] == {
        "file_name": "clip.mp4", "fps": FPS, "width": W, "height": H, "num_frames": N,
    }  # fmt: skip
    assert data["objects"] == [{"id": 1, "name": "dog"}, {"id": 2, "name": "cat"}]
    assert [f["frame"] for f in data["frames"]] == list(range(N))
    expected = api_masks(tiny_model, clip)
    assert_informative(expected, min_pixels=100)
    assert sorted(p.name for p in m.iterdir()) == [f"{i:05d}.png" for i in range(N)]
    for frame in data["frames"]:
        i = frame["frame"]
        masks = {a["id"]: decode_rle(a["segmentation"]) for a in frame["annotations"]}
        assert sorted(masks) == sorted(expected[i]) == [1, 2]
        for obj_id, mask in masks.items():
            assert np.array_equal(mask, expected[i][obj_id])
        scores = {a["id"]: a["score"] for a in frame["annotations"]}
        ids = read_palette_png(m / f"{i:05d}.png")
        assert np.array_equal(ids, id_mask(masks, (H, W), scores=scores))
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["m.json", "masks", "o.mp4"]


def test_prompt_file_and_clicks_merge_by_name(clip: Path, tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    prompts = tmp_path / "prompts.json"
    prompts.write_text(json.dumps([
        {"frame": 2, "object": "cat", "points": [[50, 30]]},
        {"frame": 0, "object": "ball", "box": [5, 5, 25, 25]},
    ]))  # fmt: skip
    _, _, j, _ = outputs(tmp_path)
    code, out, err = run(
        ["video", str(clip), *CLICKS, "--prompts", str(prompts), "--json", str(j)], capsys
    )
    assert code == 0, err
    data = json.loads(j.read_text())
    assert data["objects"] == [
        {"id": 1, "name": "dog"}, {"id": 2, "name": "cat"}, {"id": 3, "name": "ball"},
    ]  # fmt: skip
    # the prompt file alone works too
    code, _, err = run(["video", str(clip), "--prompts", str(prompts), "--json", str(j)], capsys)
    assert code == 0, err
    assert [o["name"] for o in json.loads(j.read_text())["objects"]] == ["cat", "ball"]


@pytest.mark.parametrize(
    "direction, start, max_frames",
    [("both", None, None), ("backward", None, None), ("both", "5", "2"), ("forward", "2", "3")],
)
def test_directions_cover_the_planned_frames(
    clip: Path, tmp_path: Path, capsys, direction: str, start: str | None, max_frames: str | None
) -> None:  # type: ignore[no-untyped-def]
    o, m, j, flags = outputs(tmp_path)
    argv = ["video", str(clip), *CLICKS, "--click-frames", "3", "--direction", direction, *flags]
    argv += ["--start-frame", start] if start else []
    argv += ["--max-frames", max_frames] if max_frames else []
    code, _, err = run(argv, capsys)
    assert code == 0, err
    start_frame = int(start) if start else 3
    planned = planned_frames(N, start_frame, int(max_frames) if max_frames else None, direction)  # fmt: skip
    frames = [f["frame"] for f in json.loads(j.read_text())["frames"]]
    assert frames == list(planned) and len(planned) > 0
    assert sorted(p.name for p in m.iterdir()) == [f"{i:05d}.png" for i in planned]
    assert overlay_info(o)[0] == N  # the overlay always covers the whole video


def test_output_frame_interval_and_mask_type(clip: Path, tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    o, m, j, flags = outputs(tmp_path)
    code, _, err = run(
        ["video", str(clip), *CLICKS, *flags, "--output-frame-interval", "2",
         "--mask-type", "greenscreen"],
        capsys,
    )  # fmt: skip
    assert code == 0, err
    assert overlay_info(o) == (N // 2, Fraction(FPS, 2), (W, H))
    assert sorted(p.name for p in m.iterdir()) == [f"{i:05d}.png" for i in (0, 2, 4, 6)]


def test_frame_folder_with_fps(clip: Path, tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    from PIL import Image

    folder = tmp_path / "frames"
    folder.mkdir()
    with av.open(str(clip)) as container:
        for i, frame in enumerate(container.decode(video=0)):
            Image.fromarray(frame.to_ndarray(format="rgb24")).save(folder / f"{i}.png")
    o = tmp_path / "o.mp4"
    code, _, err = run(["video", str(folder), *CLICKS, "-o", str(o), "--fps", "12.5"], capsys)
    assert code == 0, err
    assert overlay_info(o) == (N, Fraction(25, 2), (W, H))


def _assert_one_line_error(code: int, err: str, *needles: str) -> None:
    assert code == 2, err
    lines = [line for line in err.strip().splitlines() if line]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    for needle in needles:
        assert needle in lines[0], lines[0]


@pytest.mark.parametrize(
    "extra, needles",
    [
        (["--click-coordinates", "[20,20],[48"], ["[48"]),
        (["--click-coordinates", "[200,20]"], ["outside", "64x48"]),
        (["--click-coordinates", "[20,20]", "--click-frames", "12"], ["frame 12", "8 frames"]),
        ([*CLICKS, "--mask-type", "sepia"], ["sepia", "binary"]),
        ([*CLICKS, "--direction", "sideways"], ["sideways"]),
        ([*CLICKS, "--start-frame", "9"], ["--start-frame 9"]),
        ([*CLICKS, "--output-frame-interval", "0"], ["--output-frame-interval"]),
        (["--click-labels", "1"], ["--click-coordinates"]),
        ([], ["--click-coordinates", "--prompts"]),
        ([*CLICKS, "--prompts", "/nonexistent/p.json"], ["p.json"]),
    ],
)
def test_bad_input_is_one_line_exit_2(
    clip: Path, tmp_path: Path, capsys, extra: list[str], needles: list[str]
) -> None:  # type: ignore[no-untyped-def]
    _, _, _, flags = outputs(tmp_path)
    code, _, err = run(["video", str(clip), *extra, *flags], capsys)
    _assert_one_line_error(code, err, *needles)
    assert not (tmp_path / "out").exists()


def test_bad_files_and_missing_outputs_exit_2(clip: Path, tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    _, _, _, flags = outputs(tmp_path)
    code, _, err = run(["video", str(tmp_path / "nope.mp4"), *CLICKS, *flags], capsys)
    _assert_one_line_error(code, err, "nope.mp4")
    corrupt = tmp_path / "corrupt.mp4"
    corrupt.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(200))
    code, _, err = run(["video", str(corrupt), *CLICKS, *flags], capsys)
    _assert_one_line_error(code, err, "corrupt.mp4")
    empty = tmp_path / "empty"
    empty.mkdir()
    code, _, err = run(["video", str(empty), *CLICKS, *flags], capsys)
    _assert_one_line_error(code, err, "empty", "images")
    code, _, err = run(["video", str(clip), *CLICKS], capsys)
    _assert_one_line_error(code, err, "no output", "-o")
    code, _, err = run(["video", str(clip), *CLICKS, "-o", str(tmp_path / "o.png")], capsys)
    _assert_one_line_error(code, err, "o.png", ".mp4")
    assert not (tmp_path / "out").exists()


def test_interrupt_mid_run_leaves_no_output(
    clip: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:  # type: ignore[no-untyped-def]
    calls = []
    original = CocoJsonSink.write

    def write_then_interrupt(self, result):  # type: ignore[no-untyped-def]
        calls.append(result.frame_idx)
        if len(calls) > 3:
            raise KeyboardInterrupt
        original(self, result)

    monkeypatch.setattr(CocoJsonSink, "write", write_then_interrupt)
    _, _, _, flags = outputs(tmp_path)
    code, out, err = run(["video", str(clip), *CLICKS, *flags], capsys)
    assert code == 130 and "interrupted" in err
    assert calls == [0, 1, 2, 3]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == []
