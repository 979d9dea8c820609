"""Options shared by the commands that run a model."""

from __future__ import annotations

import argparse
import sys

from masklet.backends import BACKENDS
from masklet.config import DEFAULT_MODEL

BACKEND_HELP = (
    "runtime of the heavy modules: pytorch, or onnxruntime with a folder from `masklet export "
    "onnx` as --model (default: onnxruntime for such a folder, else pytorch)"
)


def add_model_options(
    parser: argparse.ArgumentParser, *, backend: bool = True, precision: bool = True
) -> None:
    group = parser.add_argument_group("model")
    choice = group.add_mutually_exclusive_group()
    choice.add_argument(
        "--model",
        default=None,
        help=f"model name (see `masklet models`; default {DEFAULT_MODEL}, downloaded on first "
        "use; masklet-nano-synthetic is bundled and works offline)",
    )
    choice.add_argument("--checkpoint", default=None, help="path to a .pt or .safetensors file")
    group.add_argument("--device", default=None, help="cuda, mps or cpu (default: the best one)")
    if backend:
        group.add_argument("--backend", choices=BACKENDS, default=None, help=BACKEND_HELP)
    if precision:
        add_precision_option(group, default="fp32")


def add_precision_option(group: argparse._ActionsContainer, *, default: str | None) -> None:
    from masklet.precision import PRECISIONS

    group.add_argument(
        "--precision", default=default, choices=PRECISIONS,
        help="compute precision (default fp32); bf16 / fp16 run under autocast; auto picks a "
        "reduced one only on hardware that runs it faster (CUDA, CPUs with AMX, AVX512-FP16 or "
        "AVX512-BF16, confirmed by a short timing) and says what it picked; masks and scores "
        "are float32 in every mode",
    )  # fmt: skip


def load_model_from_args(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    """The model the user asked for (downloading a registry model on first use)."""
    from masklet.checkpoints import load_model
    from masklet.errors import CheckpointError
    from masklet.precision import model_precision

    source = args.checkpoint if args.checkpoint else (args.model or DEFAULT_MODEL)
    try:
        model = load_model(
            source,
            device=args.device,
            backend=getattr(args, "backend", None),
            precision=getattr(args, "precision", None),
        )
    except CheckpointError as err:
        raise in_cli_words(err, flag_given=bool(args.checkpoint)) from err
    choice = model_precision(model)
    if choice is not None and choice.requested == "auto":
        print(f"auto: {choice.describe()}", file=sys.stderr)
    return model


def in_cli_words(err: Exception, *, flag_given: bool = False) -> Exception:
    """A checkpoint error as the command line says it: the library's `load_model(path)` becomes
    the `--checkpoint PATH` flag."""
    from masklet.checkpoints import LOCAL_FILE_HINT
    from masklet.errors import CheckpointError

    message = str(err).replace(LOCAL_FILE_HINT, "--checkpoint PATH")
    if flag_given:
        message = message.replace("give the path of", "--checkpoint takes the path of")
        message = message.replace("or a model name such as", "or use --model with a name such as")
    return CheckpointError(message)


VALUE_FLAGS = ("--point", "--box")  # flags whose value may start with "-" (a negative number)


def join_negative_values(argv: list[str]) -> list[str]:
    """`--point -5,20` as `--point=-5,20`: argparse takes a value starting with "-" for a flag,
    so a negative coordinate would fail with "expected one argument" instead of reaching the
    prompt check that says what is wrong with it."""
    out: list[str] = []
    k = 0
    while k < len(argv):
        arg = argv[k]
        value = argv[k + 1] if k + 1 < len(argv) else ""
        if arg in VALUE_FLAGS and value[:1] == "-" and value[1:2] in tuple("0123456789."):
            out.append(f"{arg}={value}")
            k += 2
        else:
            out.append(arg)
            k += 1
    return out
