"""`masklet` command line: one sub-command per module, errors as one line with exit code 2."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from masklet.errors import MaskletError

EXIT_BAD_INPUT = 2


def build_parser() -> argparse.ArgumentParser:
    from masklet.cli import batch, demo, image, models, serve, train, video
    from masklet.cli import eval as evaluation

    parser = argparse.ArgumentParser(
        prog="masklet", description="Segment and track anything in images and videos (SAM 2)."
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    image.add_parser(sub)
    video.add_parser(sub)
    models.add_parsers(sub)
    demo.add_parser(sub)
    serve.add_parser(sub)
    evaluation.add_parser(sub)
    train.add_parser(sub)
    batch.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.run(args) or 0)
    except MaskletError as err:
        print(f"masklet {args.command}: error: {_in_flag_words(err, args)}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print(f"masklet {args.command}: interrupted", file=sys.stderr)
        return 130


def _in_flag_words(error: MaskletError, args: argparse.Namespace) -> str:
    """The message, its leading request field (`start_frame`) named as the flag that set it
    (`--start-frame`)."""
    message, field = str(error), error.field
    if field and field in vars(args) and message.startswith(field):
        return "--" + field.replace("_", "-") + message[len(field) :]
    return message


if __name__ == "__main__":
    sys.exit(main())
