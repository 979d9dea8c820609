"""Manifest checks: the JSON Schema accepts its examples and every bad line is refused, with
its line number, before any model work (exit code 2); the schema and the checker agree."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import numpy as np
import pytest
from PIL import Image

from masklet.batch.manifest import ManifestError, items_from_specs, line_digest, read_manifest
from masklet.cli.main import main
from masklet.errors import InvalidInputError

SCHEMA = json.loads((Path(__file__).parents[2] / "docs" / "batch-manifest.schema.json").read_text())

BAD_LINES = [
    ({"input": 3, "text": "a dog."}, "input"),
    ({"input": "a.png"}, "prompts"),
    ({"input": "a.png", "text": "a dog.", "colour": 1}, "colour"),
    ({"input": "a.png", "prompts": [{"object": 1, "points": [[1]]}]}, "prompts[0].points[0]"),
    ({"input": "a.png", "prompts": []}, "prompts"),
    ({"input": "a.png", "text": "a dog.", "outputs": ["pdf"]}, "outputs[0]"),
    ({"input": "v.mp4", "text": "a dog.", "options": {"direction": "up"}}, "options.direction"),
    ({"input": "a.png", "id": "../x", "text": "a dog."}, "id"),
    ({"input": "a.png", "click_coordinates": 5}, "click_coordinates"),
    ({"input": "a.png", "text": {"txt": "a dog."}}, "text"),
    ({"input": "a.png", "everything": False}, "everything"),
    ({"input": "a.png", "everything": {"points_per_side": "8"}}, "everything.points_per_side"),
    ({"input": "a.png", "everything": {"points_per_side": 0}}, "points_per_side"),
    ({"input": "a.png", "everything": {"pred_iou": 0.5}}, "everything.pred_iou"),
    ({"input": "v.mp4", "everything": {"every": 0}}, "everything.every"),
    ({"input": "a.png", "text": "a dog.", "everything": True}, "not both"),
]
# a video setting on an image: the checker's, the schema does not know the kinds apart
KIND_LINES = [
    ({"input": "a.png", "text": "a dog.", "options": {"direction": "both"}}, "options.direction"),
    ({"input": "a.png", "everything": {"every": 4}}, "everything.every"),
]


def write_lines(path: Path, lines: list[object]) -> Path:
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return path


def test_schema_examples_validate_and_pass_the_checker(tmp_path: Path) -> None:
    jsonschema.Draft202012Validator.check_schema(SCHEMA)
    examples = SCHEMA["examples"]
    assert len(examples) >= 5
    for example in examples:
        jsonschema.validate(example, SCHEMA)
    (tmp_path / "masks").mkdir()
    Image.fromarray(np.full((8, 8), 255, np.uint8)).save(tmp_path / "masks" / "cat_rough.png")
    items = read_manifest(write_lines(tmp_path / "m.jsonl", examples))
    assert [i.kind for i in items] == ["image"] * 6 + ["video"] * 3
    assert items[1].item_id == "street-01" and items[0].item_id == "dog"


@pytest.mark.parametrize(("line", "field"), BAD_LINES + KIND_LINES)
def test_schema_and_checker_refuse_the_same_lines(tmp_path: Path, line: dict, field: str) -> None:
    if (line, field) in KIND_LINES:
        jsonschema.validate(line, SCHEMA)
    else:
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(line, SCHEMA)
    good = {"input": "b.png", "text": "a cat."}
    path = write_lines(tmp_path / "m.jsonl", [good, good | {"id": "b2"}, line])
    with pytest.raises(ManifestError) as error:
        read_manifest(path)
    message = str(error.value)
    assert "1 invalid line(s): line 3: " in message and field in message


def test_every_bad_line_is_named_and_the_command_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "m.jsonl"
    path.write_text(
        '{"input": "a.png", "text": "a dog."}\n# a comment\n\n{"input": "a.png", "text": 1}\n'
        "not json\n"
        '{"input": "b.png", "id": "a", "text": "a dog."}\n'
    )
    assert main(["batch", str(path), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "3 invalid line(s)" in err
    assert "line 4: text:" in err and "line 5: not valid JSON" in err
    assert "line 6: id 'a' is already used on line 1" in err
    assert not (tmp_path / "out").exists()  # refused before anything ran


def test_derived_ids_are_file_stems_numbered_on_collision(tmp_path: Path) -> None:
    lines = [{"input": f"{d}/cat.png", "text": "a cat."} for d in ("a", "b", "c")]
    items = read_manifest(write_lines(tmp_path / "m.jsonl", lines))
    assert [i.item_id for i in items] == ["cat", "cat-2", "cat-3"]
    assert [i.line for i in items] == [1, 2, 3]
    assert items[0].input == tmp_path / "a" / "cat.png"


def test_the_digest_ignores_key_order_and_spacing_but_not_values() -> None:
    a = {"input": "a.png", "prompts": [{"object": 1, "points": [[1, 2]]}]}
    b = json.loads('{ "prompts": [{"points": [[1, 2]], "object": 1}],  "input": "a.png"}')
    assert line_digest(a) == line_digest(b)
    assert line_digest(a) != line_digest(a | {"prompts": [{"object": 1, "points": [[1, 3]]}]})


def test_inputs_shortcut_gives_every_file_the_same_prompt(tmp_path: Path) -> None:
    from argparse import Namespace

    from masklet.cli.batch import inputs_specs

    for name in ("b.jpg", "a.png", "c.mp4", "notes.txt"):
        (tmp_path / name).write_bytes(b"")
    args = Namespace(inputs=str(tmp_path), everything=False, text="a dog.", box_threshold=0.3,
                     text_threshold=0.25, max_objects=None, outputs="masks,json")  # fmt: skip
    specs = inputs_specs(args)
    assert [Path(s["input"]).name for s in specs] == ["a.png", "b.jpg", "c.mp4"]
    assert all(s["text"]["text"] == "a dog." for s in specs)
    args.inputs = str(tmp_path / "*.png")
    assert [Path(s["input"]).name for s in inputs_specs(args)] == ["a.png"]


def test_the_everything_shortcut_gives_images_no_video_settings(tmp_path: Path) -> None:
    from masklet.cli.batch import inputs_specs
    from masklet.cli.main import build_parser

    for name in ("a.png", "c.mp4"):
        (tmp_path / name).write_bytes(b"")
    argv = ["batch", "--inputs", str(tmp_path), "--everything", "--pred-iou-thresh", "0.5",
            "--everything-every", "4", "--out", str(tmp_path / "out")]  # fmt: skip
    image, video = inputs_specs(build_parser("batch").parse_args(argv))
    defaults = {"points_per_side": 32, "points_per_batch": 64, "stability_score_thresh": 0.95,
                "box_nms_thresh": 0.7, "crop_n_layers": 0, "min_mask_region_area": 0}  # fmt: skip
    assert image["everything"] == {**defaults, "pred_iou_thresh": 0.5}
    assert video["everything"] == {**defaults, "pred_iou_thresh": 0.5, "every": 4}
    assert [i.kind for i in items_from_specs([image, video])] == ["image", "video"]
    with pytest.raises(InvalidInputError, match="not both"):
        inputs_specs(build_parser("batch").parse_args([*argv, "--text", "a dog."]))
