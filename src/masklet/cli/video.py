"""`masklet video INPUT --click-coordinates "[x,y],..." ... -o overlay.mp4 --masks DIR --json FILE`

Segments objects from clicks (Replicate `meta/sam-2-video` click strings) and/or a JSON prompt
file (and/or a text prompt), tracks them through the video and streams every frame's result to
the requested outputs. Everything is checked before the model loads (`masklet.pipelines`);
nothing is left under an output's final name unless the run finishes.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from masklet.cli.common import add_model_options, load_model_from_args
from masklet.cli.everything_options import add_everything_options, everything_query
from masklet.cli.progress import progress_bar
from masklet.cli.text_options import add_text_options, load_detector_from_args, text_query
from masklet.errors import InvalidInputError, InvalidPromptError

if TYPE_CHECKING:
    from masklet.pipelines.requests import VideoRequest
    from masklet.prompts import ParsedPrompts

DIRECTIONS = ("forward", "backward", "both")
MASK_TYPES = ("binary", "highlighted", "greenscreen")
DEFAULT_MASK_TYPE = "highlighted"
DESCRIPTION = __doc__.split("\n\n", 1)[1]


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "video", help="track objects through a video from clicks, a prompt file or text",
        description=DESCRIPTION,
    )  # fmt: skip
    p.add_argument("input", help="MP4/MOV/MKV/WebM/AVI video or a folder of JPEG/PNG frames")
    g = p.add_argument_group("prompts (Replicate sam-2-video click strings and/or a JSON file)")
    g.add_argument("--click-coordinates", metavar='"[x,y],[x,y]"', help="clicks in pixels")
    g.add_argument("--click-labels", metavar='"1,0"', help="1 include / 0 exclude (default 1)")
    g.add_argument("--click-frames", metavar='"0,10"', help="frame of each click (default 0)")
    g.add_argument("--click-object-ids", metavar='"dog,cat"', help="object name of each click")
    g.add_argument("--prompts", metavar="FILE.json", help="JSON list of prompt entries")
    t = p.add_argument_group("tracking")
    t.add_argument(
        "--direction", default="forward", metavar="|".join(DIRECTIONS),
        help="track forward from the first prompted frame, backward, or both (default forward)",
    )  # fmt: skip
    t.add_argument("--start-frame", type=int, default=None, metavar="N",
                   help="frame to start tracking from (default: the first prompted frame)")  # fmt: skip
    t.add_argument("--max-frames", type=int, default=None, metavar="N",
                   help="track at most N frames beyond the start frame in each direction")  # fmt: skip
    t.add_argument("--fps", type=float, default=None, metavar="F",
                   help="frame rate of a frame folder (default 30); overrides a video's")  # fmt: skip
    o = p.add_argument_group("outputs (at least one)")
    o.add_argument("-o", "--output", metavar="OVERLAY.mp4", help="video with the masks drawn in")
    o.add_argument("--masks", metavar="DIR",
                   help="one DAVIS palette PNG per frame, pixel value = object id")  # fmt: skip
    o.add_argument("--json", metavar="FILE.json", help="COCO RLE masks with scores and boxes")
    o.add_argument(
        "--mask-type", default=DEFAULT_MASK_TYPE, metavar="|".join(MASK_TYPES),
        help=f"how the overlay shows masks (default {DEFAULT_MASK_TYPE})",
    )  # fmt: skip
    o.add_argument("--output-frame-interval", type=int, default=1, metavar="N",
                   help="output every Nth frame: 1 = all, 2 = every other, ...")  # fmt: skip
    add_text_options(p, video=True)
    add_everything_options(p, video=True)
    add_model_options(p)
    p.set_defaults(run=run)


def read_prompts(args: argparse.Namespace) -> ParsedPrompts:
    """The click strings and / or the prompt file, one prompt per click group or entry."""
    from masklet.prompt_file import join_prompts, load_prompt_file
    from masklet.prompts import ParsedPrompts, parse_click_strings

    if args.click_coordinates is None:
        for flag in ("click_labels", "click_frames", "click_object_ids"):
            if getattr(args, flag) is not None:
                raise InvalidPromptError(
                    f"--{flag.replace('_', '-')} needs --click-coordinates (the clicks it "
                    "describes)"
                )
        if args.prompts is None:
            if getattr(args, "text", None) or getattr(args, "everything", False):
                return ParsedPrompts(prompts=[], names={})  # objects come from the text
            raise InvalidPromptError(
                'give prompts: --click-coordinates "[x,y],..." and/or --prompts FILE.json '
                '(or --text "a dog.")',
                field="prompts",
            )
        return load_prompt_file(args.prompts, merge=False)
    clicks = parse_click_strings(
        args.click_coordinates, args.click_labels, args.click_frames, args.click_object_ids
    )
    if args.prompts is None:
        return clicks
    return join_prompts(clicks, load_prompt_file(args.prompts, merge=False))


def build_request(args: argparse.Namespace) -> VideoRequest:
    from masklet.pipelines.requests import VideoOutputs, VideoRequest

    if not (args.output or args.masks or args.json):
        raise InvalidInputError(
            "no output requested: give -o OVERLAY.mp4, --masks DIR and/or --json FILE.json"
        )
    parsed = read_prompts(args)
    outputs = VideoOutputs(
        overlay=Path(args.output) if args.output else None,
        masks_dir=Path(args.masks) if args.masks else None,
        json=Path(args.json) if args.json else None,
        mask_type=args.mask_type, output_frame_interval=args.output_frame_interval,
    )  # fmt: skip
    return VideoRequest(
        source=args.input, prompts=parsed.prompts, names=parsed.names, text=text_query(args),
        everything=everything_query(args),
        direction=args.direction, start_frame=args.start_frame, max_frames=args.max_frames,
        fps=args.fps, outputs=outputs,
    )  # fmt: skip


def run(args: argparse.Namespace) -> int:
    from masklet.pipelines.video import prepare_video, track_video
    from masklet.video.predictor import VideoPredictor

    prepared = prepare_video(build_request(args))
    try:
        detector = load_detector_from_args(args) if args.text else None
        predictor = VideoPredictor(load_model_from_args(args))
        with progress_bar("tracking", unit="frame", total=len(prepared.planned)) as progress:
            summary = track_video(prepared, predictor, detector=detector, progress=progress)
    finally:
        prepared.close()
    names = ", ".join(summary.names[i] for i in sorted(summary.names))
    print(
        f"tracked {summary.frames_tracked} of {summary.num_frames} frames, "
        f"{len(summary.names)} object(s): {names}"
    )
    for path in summary.outputs:
        print(f"wrote {path}")
    return 0
