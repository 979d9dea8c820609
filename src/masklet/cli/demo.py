"""`masklet demo OUT.mp4`: write the synthetic demo clip and print a ready-to-run command."""

from __future__ import annotations

import argparse

from masklet.errors import InvalidInputError


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("demo", help="write a short synthetic demo video (no download needed)")
    p.add_argument("output", help="MP4 file to write")
    p.add_argument("--seed", type=int, default=0, help="which synthetic clip (default 0)")
    p.add_argument("--frames", type=int, default=48, help="number of frames (default 48)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from masklet.train.synthetic import make_demo_video

    if args.frames < 2:
        raise InvalidInputError(f"--frames must be at least 2, got {args.frames}")
    if not str(args.output).lower().endswith((".mp4", ".mov", ".mkv", ".m4v")):
        raise InvalidInputError(f"the demo is an H.264 video; name it *.mp4, got {args.output!r}")
    clicks = make_demo_video(args.output, seed=args.seed, num_frames=args.frames)
    coords = ",".join(f"[{x},{y}]" for x, y in clicks.values())
    ids = ",".join(f"object_{i}" for i in clicks)
    print(f"wrote {args.output}: {args.frames} frames, objects at {coords} on frame 0")
    print(
        f'try: masklet video {args.output} --model masklet-nano-synthetic --click-coordinates "{coords}" '
        f'--click-object-ids "{ids}" --direction both -o tracked.mp4 --masks masks/ --json masks.json'
    )
    return 0
