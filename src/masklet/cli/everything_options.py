"""Options of `--everything` (segment everything), shared by `masklet image` and `masklet video`."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from masklet.pipelines.requests import EverythingQuery


def add_everything_options(parser: argparse.ArgumentParser, video: bool = False) -> None:
    """--everything and the generator's main settings (the reference's defaults)."""
    g = parser.add_argument_group("segment everything (SAM 2's automatic mask generator)")
    g.add_argument("--everything", action="store_true",
                   help="every region found becomes an object (region_1, region_2, ...)")  # fmt: skip
    g.add_argument("--points-per-side", type=int, default=32, metavar="N",
                   help="grid of N x N point prompts (default 32)")  # fmt: skip
    g.add_argument("--pred-iou-thresh", type=float, default=0.8, metavar="P",
                   help="keep masks with predicted IoU above P (default 0.8)")  # fmt: skip
    g.add_argument("--stability-score-thresh", type=float, default=0.95, metavar="P",
                   help="keep masks at least this stable (default 0.95)")  # fmt: skip
    g.add_argument("--crop-n-layers", type=int, default=0, metavar="N",
                   help="extra layers of image crops for small objects (default 0)")  # fmt: skip
    g.add_argument("--min-mask-region-area", type=int, default=0, metavar="PX",
                   help="fill holes / remove islands up to this area (default 0: off)")  # fmt: skip
    g.add_argument("--max-regions", type=int, default=None, metavar="N",
                   help="keep at most N regions (best predicted IoU first)")  # fmt: skip
    if video:
        g.add_argument("--everything-every", type=int, default=None, metavar="N",
                       help="every N frames, regions no tracked object covers become new objects")  # fmt: skip
        g.add_argument("--everything-frame", type=int, default=None, metavar="F",
                       help="frame to segment first (default: the start frame)")  # fmt: skip


def everything_query(args: argparse.Namespace) -> EverythingQuery | None:
    """The options as a pipeline `EverythingQuery` (None without `--everything`)."""
    from masklet.pipelines.requests import EverythingQuery

    if not args.everything:
        return None
    return EverythingQuery(
        points_per_side=args.points_per_side, pred_iou_thresh=args.pred_iou_thresh,
        stability_score_thresh=args.stability_score_thresh, crop_n_layers=args.crop_n_layers,
        min_mask_region_area=args.min_mask_region_area, max_objects=args.max_regions,
        every=getattr(args, "everything_every", None),
        frame=getattr(args, "everything_frame", None),
    )  # fmt: skip
