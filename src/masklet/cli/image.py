"""`masklet image INPUT --point X,Y[,LABEL] ... --box X1,Y1,X2,Y2 ... --text "a dog."`

Each `--box` is one object; `--point`s go with the single box if there is one, or form one
object on their own; `--mask-input` is a rough mask for that first object; `--prompts FILE.json`
adds objects from a prompt file (the `masklet video` format, frame 0). `--text` adds one object
per box GroundingDINO finds. Writes an overlay, an id PNG (DAVIS palette, pixel value = object
id) and COCO RLE JSON. Everything is checked before the model loads (`masklet.pipelines`).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from masklet.cli.common import add_model_options, load_model_from_args
from masklet.cli.everything_options import add_everything_options, everything_query
from masklet.cli.progress import progress_bar
from masklet.cli.text_options import add_text_options, load_detector_from_args, text_query
from masklet.errors import InvalidPromptError

if TYPE_CHECKING:
    from masklet.pipelines.requests import ImageOutputs, ImageRequest
    from masklet.prompts import ObjectPrompt

DESCRIPTION = __doc__.split("\n\n", 1)[1]


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "image", help="segment objects in an image from clicks, boxes, masks or text",
        description=DESCRIPTION,
    )  # fmt: skip
    p.add_argument("input", help="JPEG, PNG or WebP image")
    p.add_argument(
        "--point", action="append", default=[], metavar="X,Y[,LABEL]",
        help="a click in pixels; LABEL 1 = include (default), 0 = exclude; repeatable",
    )  # fmt: skip
    p.add_argument(
        "--box", action="append", default=[], metavar="X1,Y1,X2,Y2",
        help="a box in pixels; each box is one object; repeatable",
    )  # fmt: skip
    p.add_argument("--mask-input", default=None, metavar="PNG",
                   help="a rough mask of the first object as a prompt")  # fmt: skip
    p.add_argument("--prompts", default=None, metavar="FILE.json",
                   help="prompt file (JSON list of {object, points, labels, box, mask})")  # fmt: skip
    p.add_argument("--multimask", action="store_true", help="pick the best of 3 candidate masks")
    p.add_argument("-o", "--output", default=None, metavar="PNG|JPG", help="overlay image")
    p.add_argument(
        "--masks", default=None, metavar="PNG",
        help="id mask: DAVIS palette PNG, pixel value = object id (overlaps go to the higher "
        "score)",
    )  # fmt: skip
    p.add_argument("--json", default=None, metavar="JSON", help="COCO RLE masks with scores, boxes")
    add_text_options(p)
    add_everything_options(p)
    add_model_options(p)
    p.set_defaults(run=run)


def flag_prompts(
    points: list[str], boxes: list[str], mask: object | None, mask_name: str = "--mask-input"
) -> list[ObjectPrompt]:
    """`--point`s and `--box`es as prompts: one object per box, the clicks (and the mask) with
    the first object. Field names are the flags (`--point[1]`, `--box[0]`)."""
    from masklet.prompts import ObjectPrompt, parse_box, parse_point

    parsed_points = [parse_point(p) for p in points]
    if parsed_points and len(boxes) > 1:
        raise InvalidPromptError(
            "--point with several --box is ambiguous (which box does a click refine?); "
            "segment one box with its clicks per run",
            field="--point",
        )
    clicks = {}
    if parsed_points:
        clicks = {
            "points": [p[:2] for p in parsed_points],
            "labels": [p[2] for p in parsed_points],
            "point_names": tuple(f"--point[{k}]" for k in range(len(parsed_points))),
        }
    first = {**clicks, "mask": mask} if mask is not None else clicks
    mask_field = {"mask": mask_name} if mask is not None else {}
    prompts = [
        ObjectPrompt(frame=0, obj_id=k + 1, name="", box=np.asarray(parse_box(b)), where=f"--box[{k}]",
                     fields={"box": f"--box[{k}]", **(mask_field if k == 0 else {})},
                     **(first if k == 0 else {}))  # type: ignore[arg-type]
        for k, b in enumerate(boxes)
    ]  # fmt: skip
    if not boxes and first:
        prompts.append(
            ObjectPrompt(frame=0, obj_id=1, name="", where="--point", fields=mask_field, **first)  # type: ignore[arg-type]
        )
    return prompts


def build_request(args: argparse.Namespace) -> tuple[ImageRequest, ImageOutputs]:
    from masklet.io.images import read_mask
    from masklet.pipelines.requests import ImageOutputs, ImageRequest
    from masklet.prompt_file import load_prompt_file

    mask = read_mask(args.mask_input) if args.mask_input else None
    prompts = flag_prompts(args.point, args.box, mask, f"--mask-input {args.mask_input}")
    names: dict[int, str] = {}
    if args.prompts:
        file = load_prompt_file(args.prompts, merge=False)
        if prompts and set(file.names) & {p.obj_id for p in prompts}:
            raise InvalidPromptError(
                f"--prompts {args.prompts!r} uses object ids of the --point/--box objects "
                "(1, 2, ...); give every object in the file, or number them after",
                field="--prompts",
            )
        prompts += file.prompts
        names = {i: n for i, n in file.names.items()}
    text, everything = text_query(args), everything_query(args)
    if not prompts and text is None and everything is None:
        raise InvalidPromptError(
            "give at least one --point X,Y[,LABEL], --box X1,Y1,X2,Y2, --prompts FILE.json, "
            '--text "a dog." or --everything',
            field="prompts",
        )
    request = ImageRequest(
        image=args.input,
        prompts=prompts,
        names=names,
        text=text,
        everything=everything,
        multimask=args.multimask,
    )
    outputs = ImageOutputs(
        overlay=Path(args.output) if args.output else None,
        id_png=Path(args.masks) if args.masks else None,
        json=Path(args.json) if args.json else None,
    )
    return request, outputs


def run(args: argparse.Namespace) -> int:
    from masklet.pipelines.image import prepare_image, segment_image, write_image_outputs

    request, outputs = build_request(args)
    prepared = prepare_image(request, outputs)
    # the detector loads first: a missing GroundingDINO fails before the SAM 2 model loads
    detector = load_detector_from_args(args) if request.text is not None else None
    model = load_model_from_args(args)
    with progress_bar("segmenting", unit="step") as progress:
        result = segment_image(prepared, model, detector=detector, progress=progress)
    if request.text is not None and not result.detections:
        print(f"text: nothing found for {request.text.text!r} above box threshold "
              f"{request.text.box_threshold}")  # fmt: skip
    for obj in result.record.objects:
        found = (
            ""
            if obj.label is None
            else f" ({obj.label}, detection score {obj.detection_score:.2f})"
        )
        print(f"object {obj.obj_id}{found}: {int(obj.mask.sum())} px, predicted IoU "
              f"{obj.score:.3f}")  # fmt: skip
    for path in write_image_outputs(result, outputs):
        print(f"wrote {path}")
    return 0
