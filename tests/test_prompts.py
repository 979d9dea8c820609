"""Prompt parsing: the Replicate click-string rules with the readme's own examples, CLI point
and box flags, JSON prompt files, bounds checks, and errors that quote the bad text."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from masklet.errors import InvalidPromptError
from masklet.prompt_file import load_prompt_file
from masklet.prompts import (
    ObjectPrompt,
    parse_box,
    parse_click_strings,
    parse_point,
    validate_in_bounds,
)


def summary(parsed: object) -> list[tuple[int, str, int, list[list[float]], list[int]]]:
    return [
        (p.obj_id, p.name, p.frame, p.points.tolist(), p.labels.tolist())  # type: ignore[union-attr]
        for p in parsed  # type: ignore[attr-defined]
    ]


# -- Replicate rules, with the examples of the meta/sam-2-video readme ---------------------------


def test_readme_multiple_objects_example() -> None:
    parsed = parse_click_strings(
        "[100,100],[200,200],[300,300],[400,400],[500,500]",
        "1,1,0,1,1",
        "0,0,10,20,20",
        "dog,dog,background,cat,cat",
    )
    assert parsed.names == {1: "dog", 2: "background", 3: "cat"}
    assert summary(parsed) == [
        (1, "dog", 0, [[100, 100], [200, 200]], [1, 1]),
        (2, "background", 10, [[300, 300]], [0]),
        (3, "cat", 20, [[400, 400], [500, 500]], [1, 1]),
    ]
    assert parsed[0].points.dtype == np.float32 and parsed[0].labels.dtype == np.int32


def test_same_and_different_ids() -> None:
    same = parse_click_strings("[100,100],[300,300]", object_ids="bird,bird")
    assert summary(same) == [(1, "bird", 0, [[100, 100], [300, 300]], [1, 1])]
    different = parse_click_strings("[100,100],[300,300]", object_ids="bird_1,bird_2")
    assert summary(different) == [
        (1, "bird_1", 0, [[100, 100]], [1]),
        (2, "bird_2", 0, [[300, 300]], [1]),
    ]
    refine = parse_click_strings("[100,100],[150,150],[200,200]", object_ids="dog,dog,dog")
    assert len(refine) == 1 and refine[0].points.shape == (3, 2)


def test_defaults_and_last_value_repeats() -> None:
    # No labels -> all include; no frames -> frame 0; no ids -> one object per click.
    parsed = parse_click_strings("[100,100],[200,200],[300,300]")
    assert summary(parsed) == [
        (1, "object_1", 0, [[100, 100]], [1]),
        (2, "object_2", 0, [[200, 200]], [1]),
        (3, "object_3", 0, [[300, 300]], [1]),
    ]
    # Shorter labels/frames lists repeat their LAST value.
    parsed = parse_click_strings("[1,1],[2,2],[3,3],[4,4]", "1,0", "0,10", "a,a,a,a")
    assert summary(parsed) == [
        (1, "a", 0, [[1, 1]], [1]),
        (1, "a", 10, [[2, 2], [3, 3], [4, 4]], [0, 0, 0]),
    ]


def test_missing_names_are_generated_by_click_position() -> None:
    parsed = parse_click_strings("[1,1],[2,2],[3,3]", object_ids="dog")
    assert parsed.names == {1: "dog", 2: "object_2", 3: "object_3"}
    assert [p.obj_id for p in parsed] == [1, 2, 3]


def test_generated_names_never_join_a_given_object() -> None:
    parsed = parse_click_strings("[1,1],[2,2]", object_ids="object_2")
    assert len(parsed.names) == 2, "the unnamed click must be its own object"
    assert parsed.names[1] == "object_2"
    assert parsed.names[2] != "object_2"
    assert [p.points.tolist() for p in parsed] == [[[1, 1]], [[2, 2]]]


def test_generated_names_skip_every_taken_name() -> None:
    parsed = parse_click_strings("[1,1],[2,2],[3,3],[4,4]", object_ids="object_3,object_4")
    names = list(parsed.names.values())
    assert len(names) == 4 and len(set(names)) == 4
    assert names[:2] == ["object_3", "object_4"]
    assert all(name.startswith("object_") for name in names[2:])


def test_numeric_ids_are_names_in_order_of_appearance() -> None:
    parsed = parse_click_strings("[1,1],[2,2],[3,3]", object_ids="7,3,7")
    assert parsed.names == {1: "7", 2: "3"}
    assert summary(parsed) == [(1, "7", 0, [[1, 1], [3, 3]], [1, 1]), (2, "3", 0, [[2, 2]], [1])]


def test_grouping_per_object_and_frame_keeps_click_order() -> None:
    parsed = parse_click_strings(
        "[5,5],[6,6],[7,7],[8,8]", labels="1,0,1,1", frames="3,0,3,0", object_ids="a,a,a,b"
    )
    assert summary(parsed) == [
        (1, "a", 3, [[5, 5], [7, 7]], [1, 1]),
        (1, "a", 0, [[6, 6]], [0]),
        (2, "b", 0, [[8, 8]], [1]),
    ]


def test_spaces_and_json_style_brackets_are_accepted() -> None:
    spaced = parse_click_strings(" [391, 239] , [178 ,320]", "1, 0", " 0 , 2", "bee_1, bee_2")
    assert summary(spaced) == [
        (1, "bee_1", 0, [[391, 239]], [1]),
        (2, "bee_2", 2, [[178, 320]], [0]),
    ]
    nested = parse_click_strings("[[391,239],[178,320]]")
    assert [p.points.tolist() for p in nested] == [[[391, 239]], [[178, 320]]]
    decimals = parse_click_strings("[10.5,20.25]")
    assert decimals[0].points.tolist() == [[10.5, 20.25]]
    assert summary(parse_click_strings("[1,1]", labels="", frames=" ", object_ids="")) == [
        (1, "object_1", 0, [[1, 1]], [1])
    ]


@pytest.mark.parametrize(
    ("kwargs", "quoted"),
    [
        ({"coordinates": "[391,abc]"}, '"[391,abc]"'),
        ({"coordinates": "[391,239],[178]"}, '"[178]"'),
        ({"coordinates": "391,239"}, '"391,239"'),
        ({"coordinates": "[391,239"}, '"[391,239"'),
        ({"coordinates": "[1,2][3,4]"}, '"[3,4]"'),
        ({"coordinates": "[1,2],"}, "nothing after the last"),
        ({"coordinates": "[-5,10]"}, '"[-5,10]"'),
        ({"coordinates": "   "}, "click_coordinates is empty"),
        ({"coordinates": "[1,1]", "labels": "2"}, '"2"'),
        ({"coordinates": "[1,1],[2,2]", "labels": "1,yes"}, '"yes"'),
        ({"coordinates": "[1,1],[2,2]", "labels": "1,,0"}, "empty entry"),
        ({"coordinates": "[1,1]", "labels": "1,0"}, 'has 2 values ("1,0")'),
        ({"coordinates": "[1,1]", "frames": "-3"}, '"-3"'),
        ({"coordinates": "[1,1]", "frames": "1.5"}, '"1.5"'),
        ({"coordinates": "[1,1]", "frames": "0,1"}, "click_frames has 2 values"),
        ({"coordinates": "[1,1]", "object_ids": "a,b"}, "click_object_ids has 2 values"),
        ({"coordinates": "[1,1],[2,2]", "object_ids": "a,,b"}, "empty entry"),
    ],
)
def test_malformed_click_strings_quote_the_bad_part(kwargs: dict[str, str], quoted: str) -> None:
    with pytest.raises(InvalidPromptError) as info:
        parse_click_strings(**kwargs)
    assert quoted in str(info.value)


def test_error_message_format_for_bad_pair() -> None:
    with pytest.raises(InvalidPromptError, match=r'expected "\[x,y\]" pairs.*got "\[391,abc\]"'):
        parse_click_strings("[1,2],[391,abc]")


# -- CLI flags -----------------------------------------------------------------------------------


def test_parse_point_and_box() -> None:
    assert parse_point("100,200") == (100.0, 200.0, 1)
    assert parse_point(" 100 , 200 , 0 ") == (100.0, 200.0, 0)
    assert parse_point("1.5,2.5,1") == (1.5, 2.5, 1)
    assert parse_box("10,20,30,40") == (10.0, 20.0, 30.0, 40.0)


@pytest.mark.parametrize(
    ("text", "quoted"),
    [("100", '"100"'), ("100,abc", '"100,abc"'), ("1,2,3,4", '"1,2,3,4"'), ("1,2,2", '"2"')],
)
def test_bad_points_quote_text(text: str, quoted: str) -> None:
    with pytest.raises(InvalidPromptError) as info:
        parse_point(text)
    assert quoted in str(info.value) and "--point" in str(info.value)


@pytest.mark.parametrize("text", ["1,2,3", "a,b,c,d"])
def test_bad_boxes_quote_text(text: str) -> None:
    """Malformed text; the numbers of a well-formed box are the prompt rules' (below)."""
    with pytest.raises(InvalidPromptError) as info:
        parse_box(text)
    assert f'"{text}"' in str(info.value) and "--box" in str(info.value)


@pytest.mark.parametrize(
    ("box", "message"),
    [([30, 20, 10, 40], "needs x2 > x1"), ([10, 40, 30, 40], "needs x2 > x1"),
     ([-1, 0, 5, 5], "pixel coordinates must be >= 0")],
)  # fmt: skip
def test_bad_box_numbers_name_the_field(box: list[float], message: str) -> None:
    with pytest.raises(InvalidPromptError, match=rf"--box\[0\]: {message}") as info:
        ObjectPrompt(
            frame=0, obj_id=1, name="", box=box, where="--box[0]", fields={"box": "--box[0]"}
        )
    assert info.value.field == "--box[0]"


# -- ObjectPrompt and bounds ---------------------------------------------------------------------


def test_object_prompt_normalises_and_validates() -> None:
    prompt = ObjectPrompt(frame=2, obj_id=1, name="a", points=[[1, 2], [3, 4]], box=[0, 0, 5, 5])
    assert prompt.labels.tolist() == [1, 1] and prompt.box.dtype == np.float32
    with pytest.raises(InvalidPromptError, match="at least one of"):
        ObjectPrompt(frame=0, obj_id=1, name="a")
    with pytest.raises(
        InvalidPromptError, match=r"a label is 1 \(include\) or 0 \(exclude\), got 3"
    ):
        ObjectPrompt(frame=0, obj_id=1, name="a", points=[[1, 2]], labels=[3])
    with pytest.raises(InvalidPromptError, match="x2 > x1"):
        ObjectPrompt(frame=0, obj_id=1, name="a", box=[5, 0, 5, 5])


def test_validate_in_bounds() -> None:
    inside = ObjectPrompt(
        frame=0, obj_id=1, name="dog", points=[[0, 0], [640, 480]], box=[0, 0, 640, 480]
    )
    validate_in_bounds(inside, 640, 480)
    outside = ObjectPrompt(frame=3, obj_id=1, name="dog", points=[[10, 10], [700, 20]])
    with pytest.raises(
        InvalidPromptError, match=r"points\[1\]: \(700, 20\) is outside the 640x480"
    ):
        validate_in_bounds(outside, 640, 480)
    box = ObjectPrompt(frame=0, obj_id=1, name="dog", box=[10, 10, 100, 500])
    with pytest.raises(InvalidPromptError, match=r"box \(10, 10, 100, 500\) is outside"):
        validate_in_bounds(box, 640, 480)
    mask = ObjectPrompt(frame=0, obj_id=1, name="dog", mask=np.ones((10, 20), bool))
    validate_in_bounds(mask, 20, 10)
    with pytest.raises(InvalidPromptError, match="mask is 20x10"):
        validate_in_bounds(mask, 640, 480)


# -- JSON prompt files ---------------------------------------------------------------------------


def write_json(path: Path, data: object) -> Path:
    path.write_text(json.dumps(data))
    return path


def test_prompt_file_happy_path(tmp_path: Path) -> None:
    (tmp_path / "masks").mkdir()
    mask = np.zeros((6, 8), np.uint8)
    mask[1:3, 2:5] = 255
    Image.fromarray(mask).save(tmp_path / "masks" / "cat.png")
    path = write_json(
        tmp_path / "prompts.json",
        [
            {"frame": 0, "object": "dog", "points": [[10, 20], [30, 40]], "labels": [1, 0]},
            {"frame": 0, "object": 1, "box": [1, 2, 3, 4]},
            {"frame": 5, "object": "cat", "mask": "masks/cat.png"},
            {"frame": 0, "object": "dog", "points": [[50, 60]], "box": [0, 0, 90, 90]},
        ],
    )
    parsed = load_prompt_file(path)
    # Integer ids are kept; names take the smallest free ids in order of appearance.
    assert parsed.names == {2: "dog", 1: "object_1", 3: "cat"}
    assert [(p.obj_id, p.frame) for p in parsed] == [(2, 0), (1, 0), (3, 5)]
    dog, first, cat = parsed
    assert dog.points.tolist() == [[10, 20], [30, 40], [50, 60]]
    assert dog.labels.tolist() == [1, 0, 1]  # merged entries; missing labels default to 1
    assert dog.box.tolist() == [0, 0, 90, 90]
    assert first.box.tolist() == [1, 2, 3, 4] and first.points is None
    assert cat.mask.dtype == bool and cat.mask.shape == (6, 8)
    assert cat.mask.sum() == 6 and cat.mask[1, 2] and not cat.mask[0, 0]


@pytest.mark.parametrize(
    ("entries", "message"),
    [
        ([{"object": 1, "point": [[1, 2]]}], 'prompts[0]: unknown field "point"'),
        ([{"frame": 0, "points": [[1, 2]]}], 'prompts[0]: missing "object"'),
        ([{"object": 1, "box": [1, 2]}, {"object": 2, "frame": -1, "box": [0, 0, 1, 1]}], None),
        ([{"object": 1, "points": [[1, 2]]}, {"object": 1, "frame": -1}], "prompts[1].frame"),
        ([{"object": 1, "points": [[1, "a"]]}], "prompts[0].points"),
        (
            [{"object": 1, "points": [[1, 2]], "labels": [1, 0]}],
            "prompts[0].labels: 1 points need 1 labels",
        ),
        ([{"object": 1, "points": [[1, 2]], "labels": [2]}], "prompts[0].labels[0]"),
        ([{"object": 1, "labels": [1]}], "prompts[0].labels: labels were given without points"),
        ([{"object": 1, "box": [5, 5, 1, 1]}], "prompts[0].box: needs x2 > x1"),
        ([{"object": 1}], "prompts[0]: give at least one of"),
        ([{"object": True, "box": [0, 0, 1, 1]}], "prompts[0].object"),
        ([{"object": 1, "mask": "missing.png"}], "prompts[0].mask: cannot read"),
        (
            [{"object": "a", "box": [0, 0, 1, 1]}, {"object": "a", "box": [0, 0, 2, 2]}],
            "prompts[1].box: object 'a' already has a box",
        ),
        ([1, 2], "prompts[0]: expected an object"),
        ([], "non-empty JSON list"),
    ],
)
def test_prompt_file_errors_name_entry_and_field(
    tmp_path: Path, entries: list[object], message: str | None
) -> None:
    path = write_json(tmp_path / "p.json", entries)
    with pytest.raises(InvalidPromptError) as info:
        load_prompt_file(path)
    assert (message or "prompts[0].box") in str(info.value)


def test_prompt_file_unreadable(tmp_path: Path) -> None:
    with pytest.raises(InvalidPromptError, match="cannot read prompt file"):
        load_prompt_file(tmp_path / "nope.json")
    bad = tmp_path / "bad.json"
    bad.write_text("[{'frame': 0}]")
    with pytest.raises(InvalidPromptError, match="not valid JSON"):
        load_prompt_file(bad)
