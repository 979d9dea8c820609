"""`masklet eval PRED_DIR GT_DIR [--csv out.csv] [--sequences a,b]`: DAVIS 2017 J&F.

Both folders hold one folder per sequence of id-valued PNGs (`<seq>/00000.png`, pixel value =
object id, as `masklet video --masks` and DAVIS's Annotations write them); a DAVIS root with
`Annotations/` works too. Scoring follows the DAVIS semi-supervised protocol (see
`masklet.eval.davis`).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from masklet.errors import InvalidInputError
from masklet.eval.davis import OBJECT_POLICIES, evaluate
from masklet.eval.metrics import DAVIS_BOUND_TH


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("eval", help="score predicted masks against DAVIS-style annotations (J&F)")
    p.add_argument("pred_dir", metavar="PRED_DIR", help="folder of <sequence>/<frame>.png masks")
    p.add_argument(
        "gt_dir", metavar="GT_DIR", help="annotations in the same layout (or DAVIS root)"
    )
    p.add_argument("--csv", type=Path, metavar="FILE", help="also write the scores as CSV")
    p.add_argument(
        "--sequences", metavar="a,b", help="comma-separated sequences (default: all in GT_DIR)"
    )
    p.add_argument(
        "--bound-th",
        type=float,
        default=DAVIS_BOUND_TH,
        help="boundary tolerance: fraction of the image diagonal, or pixels if >= 1 "
        f"(default {DAVIS_BOUND_TH}, as DAVIS)",
    )
    p.add_argument(
        "--objects",
        choices=OBJECT_POLICIES,
        default="davis",
        help="davis (default, the DAVIS 2017 protocol): ids 1..max of each first annotation, "
        "an id missing there counts as perfect unless predicted; present: only the ids on "
        "the first annotation (not comparable with published numbers)",
    )
    p.set_defaults(run=run)


def parse_sequences(text: str | None) -> list[str] | None:
    if text is None:
        return None
    names = [name.strip() for name in text.split(",")]
    if not all(names):
        raise InvalidInputError(
            f"--sequences expects comma-separated names like 'bear,bmx-trees', got {text!r}"
        )
    return names


def run(args: argparse.Namespace) -> int:
    result = evaluate(
        args.pred_dir,
        args.gt_dir,
        parse_sequences(args.sequences),
        bound_th=args.bound_th,
        objects=args.objects,
    )
    print(result.table())
    if args.csv is not None:
        result.write_csv(args.csv)
        print(f"scores written to {args.csv}", file=sys.stderr)
    return 0
