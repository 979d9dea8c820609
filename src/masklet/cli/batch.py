"""`masklet batch MANIFEST.jsonl --out DIR` or `masklet batch --inputs FOLDER_OR_GLOB --text "a dog." --out DIR` (or `--everything`)

Runs many images and videos, each item one `masklet image` / `masklet video` request, on local
worker processes (`--workers N`) or a Ray cluster (`--ray [ADDRESS]`). Each item's outputs go
to DIR/<item id>/ when it finishes; a rerun skips finished items and redoes changed ones; a
failing item is listed in DIR/report.jsonl and the others go on. Exit status: 0 all items
succeeded, 1 some failed, 2 the manifest is invalid (every bad line is named).
"""

from __future__ import annotations

import argparse
import glob
import sys
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from masklet.cli.common import DEFAULT_MODEL, add_model_options
from masklet.cli.everything_options import add_everything_options, everything_query
from masklet.cli.text_options import add_text_options
from masklet.errors import InvalidInputError

if TYPE_CHECKING:
    from masklet.batch.runner import BatchSummary

DESCRIPTION = __doc__.split("\n\n", 1)[1]
EXIT_SOME_FAILED = 1
SHOWN_FAILURES = 10
INPUT_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi")


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "batch", help="segment many images and videos (local processes or Ray), resumable",
        description=DESCRIPTION,
    )  # fmt: skip
    p.add_argument("manifest", nargs="?", default=None, metavar="MANIFEST.jsonl",
                   help="one JSON item per line (docs/batch-manifest.schema.json)")  # fmt: skip
    p.add_argument("--out", required=True, metavar="DIR", help="where every item's folder goes")
    i = p.add_argument_group("the same prompt for many files (instead of a manifest)")
    i.add_argument("--inputs", default=None, metavar="FOLDER_OR_GLOB",
                   help="images / videos: a folder (its files) or a glob ('data/**/*.jpg')")  # fmt: skip
    i.add_argument("--outputs", default="masks,json", metavar="masks,json,overlay",
                   help="outputs of each --inputs item (default masks,json)")  # fmt: skip
    r = p.add_argument_group("running")
    r.add_argument("--workers", type=int, default=None, metavar="N",
                   help="worker processes (or Ray actors), each holding the model (default 1; "
                   "Ray: cluster CPUs / --num-cpus)")  # fmt: skip
    r.add_argument("--threads", type=int, default=None, metavar="N",
                   help="torch threads per local worker (default: cores / workers)")  # fmt: skip
    r.add_argument("--ray", nargs="?", const="", default=None, metavar="ADDRESS",
                   help="run on Ray: join the cluster at ADDRESS, or start a local one "
                   "(pip install 'masklet[ray]')")  # fmt: skip
    r.add_argument("--num-cpus", type=float, default=1.0, metavar="N",
                   help="CPUs each Ray worker reserves (default 1)")  # fmt: skip
    r.add_argument("--num-gpus", type=float, default=0.0, metavar="N",
                   help="GPUs each Ray worker reserves (default 0)")  # fmt: skip
    r.add_argument("--retry-failed", action="store_true",
                   help="run again the items that failed in an earlier run")  # fmt: skip
    r.add_argument("--max-retries", type=int, default=2, metavar="N",
                   help="times an item is retried when its worker dies (default 2)")  # fmt: skip
    add_text_options(p)
    add_everything_options(p, video=True)
    add_model_options(p)
    p.set_defaults(run=run)


def inputs_specs(args: argparse.Namespace) -> list[dict[str, Any]]:
    """One manifest line per file of `--inputs`, all with the same prompt."""
    pattern = args.inputs
    if Path(pattern).is_dir():
        files = sorted(str(f) for f in Path(pattern).iterdir()
                       if f.is_file() and f.suffix.lower() in INPUT_SUFFIXES)  # fmt: skip
    else:
        files = sorted(glob.glob(pattern, recursive=True))
    if not files:
        raise InvalidInputError(f"--inputs {pattern!r} matches no image or video files",
                                field="--inputs")  # fmt: skip
    query = everything_query(args)
    if query is not None and args.text:
        raise InvalidInputError("give --text or --everything, not both (one finder per item)",
                                field="--everything")  # fmt: skip
    if query is not None:
        prompt: dict[str, Any] = {"everything": {
            k: v for k, v in asdict(query).items() if v is not None}}  # fmt: skip
    elif args.text:
        prompt = {"text": {
            "text": args.text, "box_threshold": args.box_threshold,
            "text_threshold": args.text_threshold, "max_objects": args.max_objects,
        }}  # fmt: skip
    else:
        raise InvalidInputError('--inputs needs a prompt for every file: --text "a dog." or '
                                "--everything", field="--inputs")  # fmt: skip
    outputs = [o.strip() for o in args.outputs.split(",") if o.strip()]
    return [{"input": f, **_for_kind(prompt, f), "outputs": outputs} for f in files]


def _for_kind(prompt: dict[str, Any], file: str) -> dict[str, Any]:
    """The prompt without the video-only everything settings on an image."""
    from masklet.batch.manifest import VIDEO_EVERYTHING, item_kind

    if "everything" not in prompt or item_kind({}, Path(file)) == "video":
        return prompt
    settings = prompt["everything"]
    return {"everything": {k: v for k, v in settings.items() if k not in VIDEO_EVERYTHING}}


def executor_from_args(args: argparse.Namespace) -> Any:
    if args.ray is not None:
        from masklet.batch.ray import RayExecutor

        return RayExecutor(args.ray or None, workers=args.workers, num_cpus=args.num_cpus,
                           num_gpus=args.num_gpus)  # fmt: skip
    from masklet.batch.local import LocalExecutor

    return LocalExecutor(workers=args.workers or 1, threads=args.threads)


def run(args: argparse.Namespace) -> int:
    from masklet.batch.manifest import items_from_specs, read_manifest
    from masklet.batch.runner import run as run_batch

    if (args.manifest is None) == (args.inputs is None):
        raise InvalidInputError("give a MANIFEST.jsonl or --inputs FOLDER_OR_GLOB (one of them)")
    if args.manifest is not None and (args.text or args.everything):
        raise InvalidInputError("--text / --everything go with --inputs; a manifest gives each "
                                "item's prompts")  # fmt: skip
    items = read_manifest(args.manifest) if args.manifest else items_from_specs(inputs_specs(args))
    summary = run_batch(
        items, args.out, model=args.checkpoint or args.model or DEFAULT_MODEL,
        executor=executor_from_args(args), device=args.device, backend=args.backend,
        detector=args.detector, precision=args.precision,
        retry_failed=args.retry_failed, max_retries=args.max_retries,
    )  # fmt: skip
    print_summary(summary)
    return 0 if summary.all_ok else EXIT_SOME_FAILED


def print_summary(summary: BatchSummary) -> None:
    import json

    print(
        f"{summary.total} items: {summary.ok} done, {summary.failed} failed, {summary.skipped} "
        f"finished before, {summary.failed_before} failed before (--retry-failed runs them); "
        f"{summary.items_per_second:.2f} items/s, {summary.frames_per_second:.1f} frames/s "
        f"over {summary.seconds:.1f} s"
    )
    failures = [json.loads(line) for line in summary.report.read_text().splitlines()]
    failures = [f for f in failures if f["status"] in ("failed", "failed-before")]
    for f in failures[:SHOWN_FAILURES]:
        print(f"failed: {f['id']} (line {f['line']}): {f['error']}", file=sys.stderr)
    if len(failures) > SHOWN_FAILURES:
        print(f"... and {len(failures) - SHOWN_FAILURES} more", file=sys.stderr)
    print(f"report: {summary.report}")
    if summary.coco is not None:
        print(f"COCO: {summary.coco}")
