"""`masklet demo OUT.mp4 [--image SAMPLE.png]`: write the synthetic demo clip (and a sample
image) and print the clicks and ready-to-run commands that segment them offline."""

from __future__ import annotations

import argparse
from pathlib import Path

from masklet.errors import InvalidInputError

_VIDEO_SUFFIXES = (".mp4", ".mov", ".mkv", ".m4v")
_IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
NANO = "masklet-nano-synthetic"
# The default clip: one whose two objects the bundled model tracks through their short
# occlusions (J 0.78 and 0.88 through `masklet video`). On clips where an object stays hidden
# for long, the bundled model moves that object's mask onto the other object (the model
# card's "Known failure"), which is not what a first run should show.
DEMO_SEED = 4


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "demo",
        help="write a synthetic demo clip and sample image (no download needed)",
        description="Write a short synthetic video with two moving objects (hidden for a while, "
        "leaving the frame and coming back) and, with --image, its first frame as a sample "
        "image. Prints a click inside each object and the commands that track / segment them "
        f"with the bundled model {NANO}, offline. The clip and the clicks are the same on "
        "every machine.",
    )
    p.add_argument("output", help="MP4 file to write")
    p.add_argument(
        "--image", default=None, metavar="PNG|JPG", help="also write frame 0 as a sample image"
    )
    p.add_argument(
        "--seed", type=int, default=DEMO_SEED, help=f"which synthetic clip (default {DEMO_SEED})"
    )
    p.add_argument("--frames", type=int, default=48, help="number of frames (default 48)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    if args.frames < 2:
        raise InvalidInputError(f"--frames must be at least 2, got {args.frames}")
    if not str(args.output).lower().endswith(_VIDEO_SUFFIXES):
        raise InvalidInputError(f"the demo is an H.264 video; name it *.mp4, got {args.output!r}")
    if args.image is not None and not str(args.image).lower().endswith(_IMAGE_SUFFIXES):
        raise InvalidInputError(
            f"--image writes a PNG or JPEG; name it *.png or *.jpg, got {args.image!r}"
        )
    from masklet.train.synthetic import make_demo_video

    clicks = make_demo_video(
        args.output, seed=args.seed, num_frames=args.frames, image_path=args.image
    )
    coords = ",".join(f"[{x},{y}]" for x, y in clicks.values())
    ids = ",".join(f"object_{i}" for i in clicks)
    print(f"wrote {args.output}: {args.frames} frames, objects at {coords} on frame 0")
    print(
        f'try: masklet video {args.output} --model {NANO} --click-coordinates "{coords}" '
        f'--click-object-ids "{ids}" --direction both -o tracked.mp4 --masks masks/ '
        "--json masks.json"
    )
    if args.image is not None:
        first_x, first_y = next(iter(clicks.values()))
        stem = Path(args.image).stem
        print(f"wrote {args.image}: frame 0 of the clip, objects at {coords}")
        print(
            f"try: masklet image {args.image} --model {NANO} --point {first_x},{first_y} "
            f"-o {stem}_overlay.png --masks {stem}_ids.png --json {stem}_masks.json"
        )
    return 0
