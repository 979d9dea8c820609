"""Shared helpers for the side-by-side benchmarks: model pairs, alternating timing, tables, RSS.

Every benchmark builds masklet and the reference (`sam2==1.1.0`) from the same `ModelConfig`,
loads ONE perturbed state dict into both, and times them in alternation (masklet, reference,
masklet, ...) so that load from other processes on the machine hits both sides alike. Medians,
not means, summarise the runs for the same reason.
"""

from __future__ import annotations

import argparse
import functools
import os
import statistics
import sys
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

# the reference's import scripts a helper with the deprecated torch.jit.script
warnings.filterwarnings("ignore", message=".*torch.jit.script.*", category=FutureWarning)

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    # tests/parity/reference.py builds the reference model from a masklet config
    sys.path.insert(0, str(REPO_ROOT))

from tests.media import structured_image  # noqa: E402,F401  (re-exported for the scripts)

from masklet.config import ModelConfig  # noqa: E402
from masklet.modeling.sam2 import SAM2Model, build_model  # noqa: E402

KIB_PER_MIB = 1024.0


# ---- command line --------------------------------------------------------------------------


def add_common_args(parser: argparse.ArgumentParser, profile: bool = True) -> None:
    """--threads, --quick, --seed, --clock (and --profile if `profile`)."""
    parser.add_argument(
        "--threads",
        type=int,
        default=os.cpu_count() or 1,
        help="torch intra-op threads for both sides (default: all cores)",
    )
    parser.add_argument(
        "--quick", action="store_true", help="few repetitions and small sizes: a smoke run"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the weights and inputs")
    parser.add_argument(
        "--clock",
        choices=tuple(CLOCKS),
        default="wall",
        help="wall: elapsed time (default); cpu: this process's CPU time, steadier on a busy "
        "machine (use with --threads 1)",
    )
    if not profile:
        return
    parser.add_argument(
        "--profile",
        action="store_true",
        help="after timing, print the top torch operators of one run of each side",
    )


CLOCKS: dict[str, Callable[[], float]] = {
    "wall": time.perf_counter,
    # CPU seconds of this process: time lost to other processes is not counted, so figures
    # from a busy machine are usable; with more than one thread, spin-waiting is counted
    "cpu": time.process_time,
}
_clock: list[Callable[[], float]] = [time.perf_counter]


def now() -> float:
    """The selected clock (see --clock), in seconds."""
    return _clock[0]()


def set_clock(name: str) -> None:
    _clock[0] = CLOCKS[name]


def set_threads(threads: int) -> None:
    if threads < 1:
        raise SystemExit(f"--threads must be >= 1, got {threads}")
    torch.set_num_threads(threads)


def apply_common_args(args: argparse.Namespace) -> None:
    """Act on --threads and --clock."""
    set_threads(args.threads)
    set_clock(args.clock)


def describe_machine(args: argparse.Namespace) -> str:
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return (
        f"torch {torch.__version__}, {args.threads} thread(s) of {os.cpu_count()} core(s), "
        f"{args.clock} clock, 1-min load average {load:.2f}"
    )


# ---- model pairs ---------------------------------------------------------------------------


def model_pair(
    cfg: ModelConfig, seed: int = 0, video: bool = False
) -> tuple[SAM2Model, torch.nn.Module]:
    """masklet `SAM2Model` and reference `SAM2Base` (or `SAM2VideoPredictor` if `video`) for
    `cfg`, both in eval mode and holding the same perturbed weights: the same in every process
    for one `seed` (benchmarks that run each side in its own process compare one model)."""
    from tests.parity.reference import perturbed_state_dict, reference_model, reference_video_model

    quiet_reference()
    # the reference's random init, to which the (separately seeded) noise is added, draws from
    # the global generator: unseeded, each process had other weights
    torch.manual_seed(seed)
    ref = reference_video_model(cfg) if video else reference_model(cfg)
    state = perturbed_state_dict(ref, seed)
    ref.load_state_dict(state, strict=True)
    ours = build_model(cfg).eval()
    ours.load_state_dict(state, strict=True)
    return ours, ref.eval()


def quiet_reference() -> None:
    """Turn off the reference's progress bars (frame loading, propagation): they would garble
    the tables. torch has imported tqdm already, so TQDM_DISABLE would come too late."""
    import sam2.sam2_video_predictor
    import sam2.utils.misc
    from tqdm import tqdm

    quiet = functools.partial(tqdm, disable=True)
    sam2.sam2_video_predictor.tqdm = quiet  # type: ignore[attr-defined]
    sam2.utils.misc.tqdm = quiet  # type: ignore[attr-defined]


def upcast_reference_memory(ref: torch.nn.Module) -> None:
    """Wrap the reference's memory attention so memories arrive as float32.

    The reference stores memories in bf16 and, on CPU, fails to concatenate them with fp32
    object pointers in some cases; this does the promotion `torch.cat` would do otherwise
    (as tests/parity/test_video_predictor_parity.py does).
    """
    original = ref.memory_attention.forward

    def forward(curr, memory, curr_pos, memory_pos, num_obj_ptr_tokens=0):  # type: ignore[no-untyped-def]
        return original(curr, memory.float(), curr_pos, memory_pos.float(), num_obj_ptr_tokens)

    ref.memory_attention.forward = forward


# ---- timing --------------------------------------------------------------------------------


def timed(fn: Callable[[], object]) -> float:
    """Seconds one call of `fn` takes."""
    start = now()
    fn()
    return now() - start


def alternate(
    ours: Callable[[], float], ref: Callable[[], float], repeats: int, warmup: int = 1
) -> tuple[list[float], list[float]]:
    """Run `ours` and `ref` in alternation `repeats` times each after `warmup` untimed rounds.

    Each callable returns the figure it measured (seconds), so it can exclude its own set-up.
    """
    for _ in range(warmup):
        ours()
        ref()
    a: list[float] = []
    b: list[float] = []
    for _ in range(repeats):
        a.append(ours())
        b.append(ref())
    return a, b


@dataclass(frozen=True)
class Row:
    """One measured figure for both sides (seconds)."""

    label: str
    masklet: Sequence[float]
    reference: Sequence[float]

    @property
    def masklet_median(self) -> float:
        return statistics.median(self.masklet)

    @property
    def reference_median(self) -> float:
        return statistics.median(self.reference)

    @property
    def ratio(self) -> float:
        return self.masklet_median / self.reference_median


def print_table(rows: Sequence[Row], unit: str = "ms") -> None:
    scale = {"ms": 1e3, "s": 1.0}[unit]
    head = f"{'measure':<34} {'masklet':>11} {'reference':>11} {'ratio':>7} {'runs':>5}"
    print(head)
    print("-" * len(head))
    for r in rows:
        print(
            f"{r.label:<34} {r.masklet_median * scale:>9.1f}{unit:>2} "
            f"{r.reference_median * scale:>9.1f}{unit:>2} {r.ratio:>7.3f} {len(r.masklet):>5}"
        )


def summary(row: Row, limit: float) -> bool:
    """Print one `TARGET ... PASS/FAIL` line: masklet/reference median ratio <= limit."""
    ok = row.ratio <= limit
    print(
        f"TARGET {row.label}: masklet/reference = {row.ratio:.3f} "
        f"(target <= {limit:g}) {'PASS' if ok else 'FAIL'}"
    )
    return ok


PROFILE_ROWS = 18


def print_profile(label: str, fn: Callable[[], object], rows: int = PROFILE_ROWS) -> None:
    """Run `fn` once under torch.profiler and print its operators by self CPU time."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        fn()
    print(f"\n== profile: {label} ==")
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=rows))


def print_components(label: str, model: torch.nn.Module, fn: Callable[[], object]) -> None:
    """Run `fn` once and print the wall time spent in each top-level sub-module of `model`.

    masklet's parameter names equal the reference's, so the two sides have the same top-level
    modules (image_encoder, memory_attention, sam_mask_decoder, ...) and line up row by row;
    "outside modules" is the glue around them (memory selection, resizing, copies).
    """
    spent: dict[str, float] = {}
    started: dict[str, float] = {}
    handles = []
    for name, child in model.named_children():

        def pre(_m: object, _a: object, name: str = name) -> None:
            started[name] = now()

        def post(_m: object, _a: object, _o: object, name: str = name) -> None:
            spent[name] = spent.get(name, 0.0) + now() - started[name]

        handles += [child.register_forward_pre_hook(pre), child.register_forward_hook(post)]
    try:
        total = timed(fn)
    finally:
        for h in handles:
            h.remove()
    print(f"\n== time by module: {label} ({total:.2f} s) ==")
    for name, sec in sorted(spent.items(), key=lambda kv: -kv[1]):
        print(f"  {name:<28} {sec:8.3f} s {100 * sec / total:5.1f}%")
    rest = total - sum(spent.values())
    print(f"  {'(outside modules)':<28} {rest:8.3f} s {100 * rest / total:5.1f}%")


# ---- memory --------------------------------------------------------------------------------


def proc_status_mib(field: str) -> float:
    """A `kB` field of /proc/self/status (VmRSS now, VmHWM peak) in MiB; NaN if unavailable."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / KIB_PER_MIB
    except OSError:
        pass
    return float("nan")


try:
    import psutil  # type: ignore[import-untyped]
except ImportError:  # optional: /proc/self/status gives the same figure on Linux
    psutil = None


def rss_mib() -> float:
    """Resident set size of this process now, in MiB (psutil if installed, else /proc)."""
    if psutil is not None:
        return float(psutil.Process().memory_info().rss) / KIB_PER_MIB**2
    return proc_status_mib("VmRSS")


def peak_rss_mib() -> float:
    """Peak resident set size of this process so far, in MiB."""
    peak = proc_status_mib("VmHWM")
    if peak == peak:  # not NaN
        return peak
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / KIB_PER_MIB  # Linux: kB


def median_frame_time(outputs: Iterator[object]) -> float:
    """Median seconds (on the chosen clock) between consecutive outputs of a propagation; the
    first output (the prompted frame, which also writes the prompts into memory) is not a
    propagated frame and is skipped unless it is the only one."""
    times = []
    last = now()
    for _ in outputs:
        t = now()
        times.append(t - last)
        last = t
    return statistics.median(times[1:] or times)
