"""`masklet` command line: one sub-command per module, errors as one line with exit code 2.

Only the module of the command being run is imported: `masklet --help`, `masklet models` and
argument errors never import PyTorch (importing it takes seconds), so they answer at once.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from dataclasses import dataclass

from masklet.errors import MaskletError

EXIT_BAD_INPUT = 2
_DESCRIPTION = "Segment and track anything in images and videos (SAM 2)."
_EPILOG = (
    "Offline start: `masklet demo demo.mp4` writes a clip and prints the command that tracks it "
    "with the bundled model masklet-nano-synthetic. `masklet COMMAND --help` for a command's options."
)


@dataclass(frozen=True)
class _Command:
    module: str  # masklet.cli.<module>, which registers the sub-parser
    summary: str  # one line in `masklet --help`; the command's description if it sets none


_COMMANDS: dict[str, _Command] = {
    "image": _Command(
        "masklet.cli.image",
        "segment objects in an image from clicks, boxes, a mask or text; writes an overlay, "
        "an id mask and COCO JSON",
    ),
    "video": _Command(
        "masklet.cli.video",
        "track objects through a video from clicks or a prompt file; writes an overlay video, "
        "id PNGs and COCO JSON",
    ),
    "models": _Command(
        "masklet.cli.models",
        "list the models: the bundled one (offline) and the official ones, with cache status",
    ),
    "download": _Command("masklet.cli.models", "download official checkpoints into the cache"),
    "demo": _Command(
        "masklet.cli.demo",
        "write a synthetic demo clip and sample image (no download) and print the clicks "
        "that track their objects",
    ),
    "serve": _Command("masklet.cli.serve", "run the HTTP API and the web page"),
    "eval": _Command(
        "masklet.cli.eval", "score predicted masks against DAVIS-style annotations (J&F)"
    ),
    "train": _Command("masklet.cli.train", "fine-tune a model on videos in the DAVIS layout"),
    "batch": _Command(
        "masklet.cli.batch",
        "segment many images and videos from a manifest, on local cores or Ray; resumable",
    ),
    "export": _Command(
        "masklet.cli.export",
        "export the image encoder, mask decoder, memory attention and memory encoder to ONNX",
    ),
}


def _new_parser() -> tuple[argparse.ArgumentParser, argparse._SubParsersAction]:  # type: ignore[type-arg]
    parser = argparse.ArgumentParser(
        prog="masklet",
        description=_DESCRIPTION,
        epilog=_EPILOG,
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    return parser, sub


def _register(sub: argparse._SubParsersAction, name: str) -> None:  # type: ignore[type-arg]
    """Adds command `name` (and any command its module also registers) to `sub`."""
    command = _COMMANDS[name]
    if name in sub.choices:
        return
    module = importlib.import_module(command.module)
    register = getattr(module, "add_parser", None) or module.add_parsers
    register(sub)
    for registered, parser in sub.choices.items():
        if registered in _COMMANDS and not parser.description:
            parser.description = _COMMANDS[registered].summary[0].upper() + (
                _COMMANDS[registered].summary[1:] + "."
            )


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser for `command` alone (only its module is imported), or for every command."""
    parser, sub = _new_parser()
    for name in [command] if command in _COMMANDS else list(_COMMANDS):
        _register(sub, name)  # type: ignore[arg-type]
    return parser


def _summary_parser() -> argparse.ArgumentParser:
    """Every command with its one-line summary and no options: for `--help` and typos."""
    parser, sub = _new_parser()
    for name, command in _COMMANDS.items():
        sub.add_parser(name, help=command.summary)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from masklet.cli.common import join_negative_values

    arguments = join_negative_values(list(sys.argv[1:] if argv is None else argv))
    if arguments and arguments[0] in _COMMANDS:
        parser = build_parser(arguments[0])
    else:
        parser = _summary_parser()  # exits with the help or the usage error
    args = parser.parse_args(arguments)
    if not hasattr(args, "run"):  # a command reached by an unforeseen spelling: load it
        args = build_parser(args.command).parse_args(arguments)
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
