"""Options shared by the commands that take text prompts (`masklet image`, `masklet video`)."""

from __future__ import annotations

import argparse

from masklet.text.detector import (
    DEFAULT_BOX_THRESHOLD,
    DEFAULT_NEW_OBJECT_IOU,
    DEFAULT_TEXT_THRESHOLD,
)
from masklet.text.grounding_dino import DEFAULT_DETECTOR


def add_text_options(parser: argparse.ArgumentParser, video: bool = False) -> None:
    """--text and its tuning flags; with video=True also --redetect-every / --new-object-iou."""
    group = parser.add_argument_group("text prompts (GroundingDINO; pip install 'masklet[text]')")
    group.add_argument(
        "--text", default=None, metavar='"A DOG. A RED CAR."',
        help="segment every object these phrases name (phrases end with '.')",
    )  # fmt: skip
    group.add_argument(
        "--box-threshold", type=float, default=DEFAULT_BOX_THRESHOLD, metavar="P",
        help=f"keep boxes scoring at least P (default {DEFAULT_BOX_THRESHOLD})",
    )  # fmt: skip
    group.add_argument(
        "--text-threshold", type=float, default=DEFAULT_TEXT_THRESHOLD, metavar="P",
        help=f"a box must match a phrase with at least P (default {DEFAULT_TEXT_THRESHOLD})",
    )  # fmt: skip
    group.add_argument(
        "--max-objects", type=int, default=None, metavar="N",
        help="segment at most N objects from the text (best scores first)",
    )  # fmt: skip
    group.add_argument(
        "--detector", default=DEFAULT_DETECTOR, metavar="MODEL_ID_OR_PATH",
        help=f"GroundingDINO hub id, 'tiny', 'base' or a local directory "
        f"(default {DEFAULT_DETECTOR})",
    )  # fmt: skip
    if video:
        group.add_argument(
            "--redetect-every", type=int, default=None, metavar="N",
            help="run the detector again every N frames and track objects that appeared",
        )  # fmt: skip
        group.add_argument(
            "--new-object-iou", type=float, default=DEFAULT_NEW_OBJECT_IOU, metavar="IOU",
            help="a re-detected box overlapping a tracked object by less than IOU is a new "
            f"object (default {DEFAULT_NEW_OBJECT_IOU})",
        )  # fmt: skip


def load_detector_from_args(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    """The GroundingDINO detector the user asked for, on the model's device."""
    from masklet.text.grounding_dino import GroundingDINODetector

    return GroundingDINODetector(args.detector, device=getattr(args, "device", None))


def text_query(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    """The `--text` options as a pipeline `TextQuery` (None without `--text`)."""
    from masklet.pipelines.requests import TextQuery

    if args.text is None:
        return None
    return TextQuery(
        text=args.text, box_threshold=args.box_threshold, text_threshold=args.text_threshold,
        max_objects=args.max_objects, redetect_every=getattr(args, "redetect_every", None),
        new_object_iou=getattr(args, "new_object_iou", DEFAULT_NEW_OBJECT_IOU),
    )  # fmt: skip
