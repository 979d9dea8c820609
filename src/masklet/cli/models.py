"""`masklet models` (variants and cache status) and `masklet download NAME`."""

from __future__ import annotations

import argparse

from masklet import checkpoints
from masklet.cli.common import in_cli_words
from masklet.errors import CheckpointError


def add_parsers(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "models",
        help="list the models: the bundled one (offline) and the official ones",
        description="List the models --model accepts: the bundled model, which works offline, "
        "and the official SAM 2 checkpoints, each with its size and whether it is in the cache.",
    )
    p.set_defaults(run=run_models)
    d = sub.add_parser(
        "download",
        help="download official checkpoints into the cache",
        description="Download official SAM 2 checkpoints into the cache ($MASKLET_CACHE, default "
        "~/.cache/masklet). The bundled model needs no download.",
    )
    d.add_argument("names", nargs="*", metavar="NAME", help="model names (see `masklet models`)")
    d.add_argument("--all", action="store_true", help="download every official checkpoint")
    d.add_argument("--force", action="store_true", help="download again even if cached")
    d.set_defaults(run=run_download)


def run_models(args: argparse.Namespace) -> int:
    print(f"cache: {checkpoints.cache_dir()}")
    print(f"{'name':<24} {'size':>9}  status")
    for name, filename in checkpoints.BUNDLED_MODELS.items():
        bundled = checkpoints.BUNDLED_DIR / filename
        size = f"{bundled.stat().st_size / 1e6:.0f} MB" if bundled.is_file() else "?"
        status = (
            "bundled, works offline (trained on synthetic shapes only; see its model card)"
            if bundled.is_file()
            else f"missing from this installation ({bundled}); reinstall masklet"
        )
        print(f"{name:<24} {size:>9}  {status}")
    for info in checkpoints.CHECKPOINTS.values():
        path = checkpoints.cached_path(info.name)
        size = f"{info.size_bytes / 1e6:.0f} MB" if info.size_bytes else "?"
        status = f"cached ({path})" if path else "not downloaded"
        print(f"{info.name:<24} {size:>9}  {status}")
    return 0


def run_download(args: argparse.Namespace) -> int:
    names = list(checkpoints.CHECKPOINTS) if args.all else args.names
    if not names:
        from masklet.errors import InvalidInputError

        raise InvalidInputError("name a model to download (see `masklet models`) or pass --all")
    for name in names:
        try:
            path = checkpoints.download(name, force=args.force)
        except CheckpointError as err:
            raise in_cli_words(err) from err
        print(f"{name}: {path}")
    return 0
