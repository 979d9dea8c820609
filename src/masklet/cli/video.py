"""`masklet video INPUT --click-coordinates "[x,y],..." ... -o overlay.mp4 --masks DIR --json FILE`

Segments objects from clicks (Replicate `meta/sam-2-video` click strings) and/or a JSON prompt
file, tracks them through the video and streams every frame's result to the requested outputs
(see `masklet.io.sinks`). Input errors are found before the model loads; nothing is left under
an output's final name unless the run finishes.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

import numpy as np

from masklet.cli.common import add_model_options, load_model_from_args
from masklet.cli.text_options import add_text_options, load_detector_from_args
from masklet.errors import InvalidInputError, InvalidPromptError
from masklet.io.masks import MAX_OBJECT_ID
from masklet.io.overlay import MASK_TYPES
from masklet.prompts import ObjectPrompt, ParsedPrompts, validate_in_bounds
from masklet.video.order import processing_order
from masklet.video.tracking import DIRECTIONS

VIDEO_SUFFIXES = (".mp4", ".m4v", ".mov", ".mkv")  # containers that carry H.264 (+ audio)
DEFAULT_MASK_TYPE = "highlighted"


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("video", help="track objects through a video from clicks or a prompt file")
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
    o.add_argument("--masks", metavar="DIR", help="one PNG per frame, pixel value = object id")
    o.add_argument("--json", metavar="FILE.json", help="COCO RLE masks with scores and boxes")
    o.add_argument(
        "--mask-type", default=DEFAULT_MASK_TYPE, metavar="|".join(MASK_TYPES),
        help=f"how the overlay shows masks (default {DEFAULT_MASK_TYPE})",
    )  # fmt: skip
    o.add_argument("--output-frame-interval", type=int, default=1, metavar="N",
                   help="output every Nth frame: 1 = all, 2 = every other, ...")  # fmt: skip
    add_text_options(p, video=True)
    add_model_options(p)
    p.set_defaults(run=run)


# ---- prompts ------------------------------------------------------------------------------


def _combine(a: ObjectPrompt, b: ObjectPrompt) -> ObjectPrompt:
    """Prompts for the same object and frame from two sources: clicks add up."""
    for field in ("box", "mask"):
        if getattr(a, field) is not None and getattr(b, field) is not None:
            raise InvalidPromptError(
                f"object {a.name!r} has a {field} on frame {a.frame} in both the click strings "
                f"and the prompt file; give one {field} per object and frame"
            )
    points, labels = a.points, a.labels
    if b.points is not None:
        points = b.points if points is None else np.concatenate([points, b.points])
        labels = b.labels if labels is None or b.labels is None else np.concatenate([labels, b.labels])  # fmt: skip
    return ObjectPrompt(
        frame=a.frame, obj_id=a.obj_id, name=a.name, points=points, labels=labels,
        box=a.box if a.box is not None else b.box, mask=a.mask if a.mask is not None else b.mask,
    )  # fmt: skip


def merge_prompts(clicks: ParsedPrompts, file: ParsedPrompts) -> ParsedPrompts:
    """Click-string prompts plus prompt-file prompts; objects with the same name are one object.

    Click objects keep their ids; a file object takes the id of the click object of the same
    name, else its own id when free, else the next unused id.
    """
    names = dict(clicks.names)
    by_name = {name: obj_id for obj_id, name in names.items()}
    next_free = max([*names, *file.names, 0]) + 1
    remap: dict[int, int] = {}
    for obj_id, name in file.names.items():
        if name in by_name:
            remap[obj_id] = by_name[name]
        elif obj_id not in names:
            remap[obj_id] = obj_id
        else:
            remap[obj_id], next_free = next_free, next_free + 1
        names[remap[obj_id]] = name
        by_name[name] = remap[obj_id]
    merged = {(p.obj_id, p.frame): p for p in clicks}
    for p in file:
        p = dataclasses.replace(p, obj_id=remap[p.obj_id], name=names[remap[p.obj_id]])
        key = (p.obj_id, p.frame)
        merged[key] = _combine(merged[key], p) if key in merged else p
    return ParsedPrompts(prompts=list(merged.values()), names=names)


def read_prompts(args: argparse.Namespace) -> ParsedPrompts:
    from masklet.prompts import load_prompt_file, parse_click_strings

    if args.click_coordinates is None:
        for flag in ("click_labels", "click_frames", "click_object_ids"):
            if getattr(args, flag) is not None:
                raise InvalidPromptError(
                    f"--{flag.replace('_', '-')} needs --click-coordinates (the clicks it "
                    "describes)"
                )
        if args.prompts is None:
            if getattr(args, "text", None):
                return ParsedPrompts(prompts=[], names={})  # objects come from the text
            raise InvalidPromptError(
                'give prompts: --click-coordinates "[x,y],..." and/or --prompts FILE.json '
                '(or --text "a dog.")'
            )
        return load_prompt_file(args.prompts)
    clicks = parse_click_strings(
        args.click_coordinates, args.click_labels, args.click_frames, args.click_object_ids
    )
    return clicks if args.prompts is None else merge_prompts(clicks, load_prompt_file(args.prompts))


def check_prompts(parsed: ParsedPrompts, width: int, height: int, num_frames: int) -> None:
    """Every prompt inside the video: frame index and pixel bounds."""
    for p in parsed:
        if p.frame >= num_frames:
            raise InvalidPromptError(
                f"object {p.name!r}: frame {p.frame} is beyond the video, which has "
                f"{num_frames} frames (0..{num_frames - 1})"
            )
        validate_in_bounds(p, width, height)


# ---- options ------------------------------------------------------------------------------


def check_options(args: argparse.Namespace) -> None:
    """Option values that need no file: fail before opening the video or loading the model."""
    if not (args.output or args.masks or args.json):
        raise InvalidInputError(
            "no output requested: give -o OVERLAY.mp4, --masks DIR and/or --json FILE.json"
        )
    if args.mask_type not in MASK_TYPES:
        raise InvalidInputError(
            f"unknown --mask-type {args.mask_type!r}; valid values are {', '.join(MASK_TYPES)}"
        )
    if args.direction not in DIRECTIONS:
        raise InvalidInputError(
            f"unknown --direction {args.direction!r}; valid values are {', '.join(DIRECTIONS)}"
        )
    if args.output_frame_interval < 1:
        raise InvalidInputError(
            f"--output-frame-interval must be >= 1 (1 = every frame), got "
            f"{args.output_frame_interval}"
        )
    if args.max_frames is not None and args.max_frames < 0:
        raise InvalidInputError(f"--max-frames must be >= 0, got {args.max_frames}")
    if args.start_frame is not None and args.start_frame < 0:
        raise InvalidInputError(f"--start-frame must be >= 0, got {args.start_frame}")
    if args.fps is not None and not args.fps > 0:
        raise InvalidInputError(f"--fps must be positive, got {args.fps}")
    if args.output and Path(args.output).suffix.lower() not in VIDEO_SUFFIXES:
        raise InvalidInputError(
            f"-o {args.output!r}: the overlay is an H.264 video; name it "
            f"{' / '.join('*' + s for s in VIDEO_SUFFIXES)}"
        )


def planned_frames(num_frames: int, start: int, max_frames: int | None, direction: str) -> range:
    """The frames `tracking.track` will yield, as one ascending range."""
    forward = processing_order(start, num_frames, max_frames, reverse=False)
    backward = processing_order(start, num_frames, max_frames, reverse=True)
    if direction == "forward":
        return forward
    if direction == "backward":
        return range(backward[-1], backward[0] + 1) if len(backward) else range(0)
    first = backward[-1] if len(backward) else start
    return range(first, forward[-1] + 1)


# ---- run ----------------------------------------------------------------------------------


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from masklet.io.sinks import CocoJsonSink, FrameSink, IdPngSink, OverlayVideoSink
    from masklet.video.frames import open_frames
    from masklet.video.predictor import VideoPredictor
    from masklet.video.tracking import apply_prompts, track

    check_options(args)
    parsed = read_prompts(args)
    if args.masks or args.json:
        # text objects take the ids after the click objects
        top = max(parsed.names, default=0) + ((args.max_objects or 0) if args.text else 0)
        bad = sorted(i for i in parsed.names if not 1 <= i <= MAX_OBJECT_ID)
        bad = bad or ([top] if top > MAX_OBJECT_ID else [])
        if bad:
            raise InvalidPromptError(
                f"object id {bad[0]} cannot be stored in --masks/--json: ids must be in "
                f"1..{MAX_OBJECT_ID} (0 is the background)"
            )
    source = open_frames(args.input, fps=args.fps)
    try:
        n = len(source)
        check_prompts(parsed, source.width, source.height, n)
        first_prompt = min((p.frame for p in parsed), default=0)
        start = args.start_frame if args.start_frame is not None else first_prompt
        if start >= n:
            raise InvalidInputError(
                f"--start-frame {start} is beyond the video, which has {n} frames (0..{n - 1})"
            )
        planned = planned_frames(n, start, args.max_frames, args.direction)

        detector = load_detector_from_args(args) if args.text else None
        predictor = VideoPredictor(load_model_from_args(args))
        session = predictor.init_state(source)
        apply_prompts(predictor, session, parsed.prompts, parsed.names)

        interval = args.output_frame_interval
        sinks: list[FrameSink] = []
        tracked = 0
        try:
            if args.output:
                sinks.append(
                    OverlayVideoSink(
                        args.output,
                        source,
                        mask_type=args.mask_type,
                        output_frame_interval=interval,
                        tracked_frames=planned,
                    )  # fmt: skip
                )
            if args.masks:
                sinks.append(IdPngSink(args.masks, output_frame_interval=interval))
            if args.json:
                sinks.append(CocoJsonSink(args.json, source, Path(args.input).name, interval))
            if detector is not None:
                from masklet.text.video import track_with_text

                results = track_with_text(
                    predictor, session, detector, args.text, detect_frame=start,
                    redetect_every=args.redetect_every, new_object_iou=args.new_object_iou,
                    box_threshold=args.box_threshold, text_threshold=args.text_threshold,
                    max_objects=args.max_objects, direction=args.direction,
                    max_frames=args.max_frames,
                )  # fmt: skip
            else:
                results = track(predictor, session, args.direction, start, args.max_frames)
            # disable=None: a bar on a terminal, silence in pipes and logs
            with tqdm(total=len(planned), unit="frame", desc="tracking", file=sys.stderr,
                      disable=None, dynamic_ncols=True) as bar:  # fmt: skip
                for result in results:
                    for sink in sinks:
                        sink.write(result)
                    tracked += 1
                    bar.set_postfix(objects=len(result.obj_ids), refresh=False)
                    bar.update(1)
            for sink in sinks:
                sink.close()
        except BaseException:
            for sink in sinks:
                sink.abort()
            raise
    finally:
        source.close()

    all_names = {**parsed.names, **session.names}
    names = ", ".join(all_names[i] for i in sorted(all_names))
    print(f"tracked {tracked} of {n} frames, {len(all_names)} object(s): {names}")
    for sink in sinks:
        for path in sink.outputs:
            print(f"wrote {path}")
    return 0
