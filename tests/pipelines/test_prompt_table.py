"""One prompt rule set: every case gets the same verdict and names the same field through the
Python API (`masklet.pipelines`), `masklet image --prompts FILE.json` and
`POST /v1/images:segment`. Object `i` of each front end's list is `prompts[i]`."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from masklet.cli import image as image_cli
from masklet.cli.main import main
from masklet.errors import MaskletError
from masklet.modeling.sam2 import SAM2Model
from masklet.pipelines import ImageRequest, prepare_image
from masklet.prompts import ObjectPrompt
from tests.server.conftest import HEIGHT, WIDTH, AppFactory, moving_square

NAN, INF = math.nan, math.inf


@dataclass(frozen=True)
class Case:
    """objects: `{"id", "points", "labels", "box", "mask"}` (mask: "ok" or "small" size);
    field: the field every front end must name, or None when the prompts are valid."""

    name: str
    objects: list[dict[str, Any]]
    field: str | None
    mask: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def obj(**kwargs: Any) -> dict[str, Any]:
    return {"id": 1, **kwargs}


W, H = WIDTH, HEIGHT
CASES = [
    # -- refused: numbers -----------------------------------------------------------------
    Case("nan point", [obj(points=[[NAN, 5]])], "prompts[0].points[0]"),
    Case("nan y", [obj(points=[[5, NAN]])], "prompts[0].points[0]"),
    Case("infinite x", [obj(points=[[INF, 5]])], "prompts[0].points[0]"),
    Case("minus infinity", [obj(points=[[5, -INF]])], "prompts[0].points[0]"),
    Case("negative x", [obj(points=[[-1, 5]])], "prompts[0].points[0]"),
    Case("negative y", [obj(points=[[3, -0.5]])], "prompts[0].points[0]"),
    Case("x past the width", [obj(points=[[W + 1, 5]])], "prompts[0].points[0]"),
    Case("y past the height", [obj(points=[[5, H + 0.5]])], "prompts[0].points[0]"),
    Case("second point outside", [obj(points=[[5, 5], [500, 5]])], "prompts[0].points[1]"),
    Case(
        "point in the second object",
        [obj(points=[[5, 5]]), obj(id=2, points=[[5, 99]])],
        "prompts[1].points[0]",
    ),  # fmt: skip
    Case("three coordinates", [obj(points=[[1, 2, 3]])], "prompts[0].points[0]"),
    Case("points not a list", [obj(points="abc")], "prompts[0].points"),
    Case("no points", [obj(points=[])], "prompts[0].points"),
    # -- refused: labels ------------------------------------------------------------------
    Case("label 2", [obj(points=[[5, 5]], labels=[2])], "prompts[0].labels[0]"),
    Case("label -1 (padding)", [obj(points=[[5, 5]], labels=[-1])], "prompts[0].labels[0]"),
    Case("label 0.5", [obj(points=[[5, 5]], labels=[0.5])], "prompts[0].labels[0]"),
    Case("too many labels", [obj(points=[[5, 5]], labels=[1, 0])], "prompts[0].labels"),
    Case("labels without points", [obj(box=[1, 1, 9, 9], labels=[1])], "prompts[0].labels"),
    # -- refused: boxes -------------------------------------------------------------------
    Case("box corners swapped", [obj(box=[20, 5, 10, 15])], "prompts[0].box"),
    Case("box of zero width", [obj(box=[10, 5, 10, 15])], "prompts[0].box"),
    Case("box with nan", [obj(box=[1, 1, NAN, 9])], "prompts[0].box"),
    Case("box negative", [obj(box=[-2, 1, 9, 9])], "prompts[0].box"),
    Case("box past the image", [obj(box=[1, 1, W + 10, 9])], "prompts[0].box"),
    Case("box of three numbers", [obj(box=[1, 1, 9])], "prompts[0].box"),
    Case(
        "two boxes for one object", [obj(box=[1, 1, 9, 9]), obj(box=[2, 2, 8, 8])], "prompts[1].box"
    ),  # fmt: skip
    # -- refused: objects, masks, emptiness -------------------------------------------------
    Case("no prompt at all", [obj()], "prompts[0]"),
    Case("empty prompt list", [], "prompts"),
    Case("object id 0", [obj(id=0, points=[[5, 5]])], "prompts[0].object"),
    Case("object id past 16 bits", [obj(id=70_000, points=[[5, 5]])], "prompts[0].object"),
    Case("mask of the wrong size", [obj(mask=True)], "prompts[0].mask", mask="small"),
    # -- accepted: edges of the rules ------------------------------------------------------
    Case("click on the far corner", [obj(points=[[W, H]])], None),
    Case("click at the origin", [obj(points=[[0, 0]])], None),
    Case("exclude-only click", [obj(points=[[30, 20]], labels=[0])], None),
    Case("fractional pixels", [obj(points=[[12.25, 20.5]])], None),
    Case("box over the whole image", [obj(box=[0, 0, W, H])], None),
    Case("box with clicks", [obj(box=[5, 10, 40, 40], points=[[20, 20]], labels=[1])], None),
    Case("two objects", [obj(points=[[20, 20]]), obj(id=2, box=[30, 5, 60, 40])], None),
    Case("one object over two entries", [obj(points=[[20, 20]]), obj(points=[[25, 25]])], None),
    Case("a mask prompt", [obj(mask=True)], None, mask="ok"),
]


def _mask(kind: str | None) -> np.ndarray | None:
    if kind is None:
        return None
    h, w = (H, W) if kind == "ok" else (H // 2, W // 2)
    mask = np.zeros((h, w), bool)
    mask[h // 4 : h // 2, w // 4 : w // 2] = True
    return mask


@pytest.fixture(scope="module")
def image_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("table") / "image.png"
    Image.fromarray(moving_square(1)[0]).save(path)
    return path


def python_prompts(case: Case) -> list[ObjectPrompt]:
    """The case as the Python API's typed prompts (their construction checks the numbers)."""
    mask = _mask(case.mask)
    return [
        ObjectPrompt(
            frame=0,
            obj_id=o["id"],
            name="",
            points=o.get("points"),
            labels=o.get("labels"),
            box=o.get("box"),
            mask=mask if o.get("mask") else None,
            where=f"prompts[{i}]",
        )  # fmt: skip
        for i, o in enumerate(case.objects)
    ]


def python_field(case: Case, image_path: Path) -> str | None:
    try:
        prompts = python_prompts(case)
        prepare_image(ImageRequest(image=image_path, prompts=prompts))
    except MaskletError as error:
        assert error.field is not None, error
        return error.field
    return None


def cli_verdict(
    case: Case, input_path: Path, tmp_path: Path, capsys: Any, command: str = "image"
) -> tuple[int, str]:
    entries = []
    for o in case.objects:
        entry = {"object": o["id"], **{k: o[k] for k in ("points", "labels", "box") if k in o}}
        if o.get("mask"):
            mask = _mask(case.mask)
            assert mask is not None
            Image.fromarray(mask.astype(np.uint8) * 255).save(tmp_path / "mask.png")
            entry["mask"] = "mask.png"
        entries.append(entry)
    prompts = tmp_path / "prompts.json"
    prompts.write_text(json.dumps(entries))  # NaN and Infinity as Python's json writes them
    code = main(
        [command, str(input_path), "--prompts", str(prompts), "--json", str(tmp_path / "o.json")]
    )
    return code, capsys.readouterr().err


def http_verdict(case: Case, client: TestClient, image_path: Path) -> tuple[int, dict[str, Any]]:
    files: dict[str, Any] = {"image": ("i.png", image_path.read_bytes(), "image/png")}
    mask = _mask(case.mask)
    if mask is not None:
        buffer = __import__("io").BytesIO()
        Image.fromarray(mask.astype(np.uint8) * 255).save(buffer, format="PNG")
        files["mask"] = ("m.png", buffer.getvalue(), "image/png")
    prompts = json.dumps({"objects": case.objects})
    response = client.post("/v1/images:segment", files=files, data={"prompts": prompts})
    return response.status_code, response.json()


def test_the_table_is_big_enough() -> None:
    assert len(CASES) >= 30
    assert (
        sum(c.field is None for c in CASES) >= 5 and sum(c.field is not None for c in CASES) >= 25
    )
    assert len({c.name for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_same_verdict_and_field_everywhere(
    case: Case, image_path: Path, tmp_path: Path, capsys: Any, monkeypatch: pytest.MonkeyPatch,
    tiny_model: SAM2Model, make_client: AppFactory,
) -> None:  # fmt: skip
    monkeypatch.setattr(image_cli, "load_model_from_args", lambda args: tiny_model)
    python = python_field(case, image_path)
    assert python == case.field

    code, err = cli_verdict(case, image_path, tmp_path, capsys)
    assert_cli_verdict(code, err, case.field)

    status, body = http_verdict(case, make_client(), image_path)
    if case.field is None:
        assert status == 200, body
        assert {o["id"] for o in body["objects"]} == {o["id"] for o in case.objects}
    else:
        assert status == 422, body
        assert body["error"]["field"] == case.field, body


@pytest.fixture(scope="module")
def video_path(tmp_path_factory: pytest.TempPathFactory, video_bytes: bytes) -> Path:
    path = tmp_path_factory.mktemp("table") / "clip.mp4"
    path.write_bytes(video_bytes)
    return path


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_video_requests_follow_the_same_rules(
    case: Case, video_path: Path, tmp_path: Path, capsys: Any, monkeypatch: pytest.MonkeyPatch,
    tiny_model: SAM2Model,
) -> None:  # fmt: skip
    """The same prompts on frame 0 of a video of the image's size: `VideoRequest` and
    `masklet video --prompts FILE.json` give the image's verdict and field."""
    from masklet.cli import video as video_cli
    from masklet.pipelines import VideoOutputs, VideoRequest, prepare_video

    try:
        prompts = python_prompts(case)
        outputs = VideoOutputs(json=tmp_path / "v.json")
        prepare_video(VideoRequest(source=video_path, prompts=prompts, outputs=outputs)).close()
        python: str | None = None
    except MaskletError as error:
        python = error.field
    assert python == case.field

    monkeypatch.setattr(video_cli, "load_model_from_args", lambda args: tiny_model)
    code, err = cli_verdict(case, video_path, tmp_path, capsys, command="video")
    assert_cli_verdict(code, err, case.field)


def assert_cli_verdict(code: int, err: str, field: str | None) -> None:
    """A valid case exits 0; a bad one exits 2 with one line naming `field`."""
    if field is None:
        assert code == 0, err
    else:
        lines = [line for line in err.splitlines() if line]
        assert code == 2 and len(lines) == 1, err
        assert f" {field}: " in lines[0], lines[0]
