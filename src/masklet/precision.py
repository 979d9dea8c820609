"""Compute precision: fp32, or bf16 / fp16 autocast, and the `auto` choice for a device.

Reduced precision runs the model's matrix products and convolutions under `torch.autocast`
(CUDA and CPU alike); everything the user gets back (masks, scores, logits) is float32, and the
video memory bank stores its spatial memories in bfloat16 in every mode, as the reference does.

`auto` picks a reduced precision only where the device computes it faster: CUDA (bf16 where
supported, else fp16), a CPU with AMX tiles (bf16), AVX512-FP16 (fp16) or AVX512-BF16 dot
products (bf16: the whole model measured 1.4-1.7x fp32's speed on such a CPU without AMX; fp16
ran 7x slower there, its depthwise convolutions falling back to a slow path). Other CPUs only
convert the narrow types around fp32 arithmetic, so fp32 stays. Where the hardware suggests a
reduced mode, a short one-time timing of the model's own image encoder confirms it
(`measure_encoder`): a mode measured slower than fp32 is never picked.
"""

from __future__ import annotations

import contextlib
import enum
import functools
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Concatenate, ParamSpec, Protocol, TypeVar

from masklet.errors import InvalidInputError

if TYPE_CHECKING:  # torch is imported where it runs: the CLI builds its parsers without it
    import torch
    from torch import nn

log = logging.getLogger("masklet.precision")

AUTO = "auto"
# a reduced mode must beat fp32 by this fraction in the probe: timing noise on a busy machine
# must not flip the choice towards a mode that is not really faster
REQUIRED_SPEEDUP = 0.05
PROBE_RUNS = 1  # timed image-encoder forwards per timer call (after one warm-up)
PROBE_ROUNDS = 2  # timer calls per mode, alternating the modes


class Precision(str, enum.Enum):
    """The dtype the model computes in."""

    FP32 = "fp32"
    BF16 = "bf16"
    FP16 = "fp16"

    @property
    def dtype(self) -> torch.dtype:
        import torch

        return {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[self.value]

    def autocast(self, device: torch.device) -> contextlib.AbstractContextManager[Any]:
        """The context the model runs in: nothing for fp32, `torch.autocast` otherwise."""
        import torch

        if self is Precision.FP32:
            return contextlib.nullcontext()
        return torch.autocast(device_type=device.type, dtype=self.dtype)


PRECISIONS: tuple[str, ...] = (*(p.value for p in Precision), AUTO)


@dataclass(frozen=True)
class PrecisionChoice:
    """The mode a model runs in, what was asked for, and why this mode (said to the user)."""

    mode: Precision
    requested: str
    reason: str

    def describe(self) -> str:
        return f"precision {self.mode.value} ({self.reason})"


@dataclass(frozen=True)
class DeviceCaps:
    """What `auto` looks at: the device type and, for a CPU, its instruction-set flags."""

    device_type: str
    cuda_bf16: bool = False
    cpu_flags: frozenset[str] = frozenset()


def cpu_flags(cpuinfo: Path = Path("/proc/cpuinfo")) -> frozenset[str]:
    """The CPU's feature flags (Linux); empty where /proc/cpuinfo does not exist."""
    try:
        text = cpuinfo.read_text()
    except OSError:
        return frozenset()
    for line in text.splitlines():
        if line.startswith(("flags", "Features")):
            return frozenset(line.split(":", 1)[1].split())
    return frozenset()


def detect_caps(device: torch.device) -> DeviceCaps:
    import torch

    if device.type == "cuda":
        return DeviceCaps("cuda", cuda_bf16=bool(torch.cuda.is_bf16_supported()))
    if device.type == "cpu":
        return DeviceCaps("cpu", cpu_flags=cpu_flags())
    return DeviceCaps(device.type)


def hardware_choice(caps: DeviceCaps) -> tuple[Precision, str]:
    """The mode the hardware computes fastest, before any measurement, and why."""
    flags = caps.cpu_flags
    if caps.device_type == "cuda":
        if caps.cuda_bf16:
            return Precision.BF16, "CUDA with bf16 support"
        return Precision.FP16, "CUDA without bf16 support"
    if caps.device_type == "cpu":
        if {"amx_bf16", "amx_tile"} <= flags:
            return Precision.BF16, "CPU with AMX bf16 tiles"
        if "avx512_fp16" in flags:
            return Precision.FP16, "CPU with AVX512-FP16"
        if "avx512_bf16" in flags:
            return Precision.BF16, "CPU with AVX512-BF16"
        return Precision.FP32, "CPU without AMX, AVX512-FP16 or AVX512-BF16: no faster mode"
    return Precision.FP32, f"no measured gain from reduced precision on {caps.device_type}"


Timer = Callable[[Precision], float]  # seconds one model step takes in a mode


def choose(caps: DeviceCaps, timer: Timer | None) -> PrecisionChoice:
    """`auto`: the hardware's mode, kept only if `timer` measures it faster than fp32 by
    REQUIRED_SPEEDUP (without a timer the hardware's mode is taken as it is)."""
    mode, why = hardware_choice(caps)
    if mode is Precision.FP32 or timer is None:
        return PrecisionChoice(mode, AUTO, why)
    # alternate the modes and keep each one's best: a burst of load from elsewhere then
    # hits both alike instead of deciding the comparison
    times: dict[Precision, list[float]] = {mode: [], Precision.FP32: []}
    for _ in range(PROBE_ROUNDS):
        for m in times:
            times[m].append(timer(m))
    ratio = min(times[mode]) / min(times[Precision.FP32])
    if ratio <= 1.0 - REQUIRED_SPEEDUP:
        return PrecisionChoice(mode, AUTO, f"{why}; measured {1 / ratio:.2f}x fp32's speed")
    return PrecisionChoice(
        Precision.FP32, AUTO, f"{why}, but {mode.value} measured {1 / ratio:.2f}x fp32's speed"
    )


def parse_precision(value: str | Precision) -> str:
    name = value.value if isinstance(value, Precision) else str(value).lower()
    if name not in PRECISIONS:
        raise InvalidInputError(
            f"unknown precision {value!r}; expected one of {', '.join(PRECISIONS)}"
        )
    return name


_PROBED: dict[tuple[str, str, int], PrecisionChoice] = {}


def resolve_precision(
    value: str | Precision, model: nn.Module, device: torch.device
) -> PrecisionChoice:
    """The mode `model` runs in on `device` for a requested precision (`auto` is decided once
    per device and model configuration in a process, and logged)."""
    name = parse_precision(value)
    if name != AUTO:
        return PrecisionChoice(Precision(name), name, "requested")
    key = (str(device), repr(getattr(model, "config", type(model).__name__)), id(type(model)))
    if key not in _PROBED:
        timer = functools.partial(measure_encoder, model, device=device)
        _PROBED[key] = choose(detect_caps(device), timer)
        log.info("auto picked %s", _PROBED[key].describe())
    return _PROBED[key]


def measure_encoder(model: nn.Module, mode: Precision, *, device: torch.device) -> float:
    """Best of PROBE_RUNS image-encoder forwards (after a warm-up) in `mode`, in seconds."""
    import torch

    size = int(model.image_size)  # type: ignore[arg-type]
    images = torch.randn(1, 3, size, size, device=device)
    best = float("inf")
    with torch.inference_mode(), mode.autocast(device):
        for k in range(PROBE_RUNS + 1):
            start = time.perf_counter()
            model.forward_image(images)  # type: ignore[operator]
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            if k:  # the first run warms caches and kernels up
                best = min(best, time.perf_counter() - start)
    return best


def apply_precision(model: nn.Module, value: str | Precision) -> PrecisionChoice:
    """Decide `value` for `model` on its device and record it as `model.precision`, the mode
    every predictor built on the model runs in."""
    device = next(model.parameters()).device
    choice = resolve_precision(value, model, device)
    model.precision = choice  # type: ignore[assignment]  # a plain attribute, like a config
    return choice


def model_precision(model: nn.Module) -> PrecisionChoice | None:
    """The choice `load_model(..., precision=)` recorded on the model (None: not given)."""
    choice = getattr(model, "precision", None)
    return choice if isinstance(choice, PrecisionChoice) else None


def predictor_precision(
    model: nn.Module, value: str | Precision | None, device: torch.device
) -> PrecisionChoice:
    """A predictor's mode: `value` if given, else the model's recorded choice, else fp32."""
    if value is not None:
        return resolve_precision(value, model, device)
    return model_precision(model) or PrecisionChoice(Precision.FP32, "fp32", "the default")


class _RunsInPrecision(Protocol):
    @property
    def device(self) -> torch.device: ...

    precision: PrecisionChoice


S = TypeVar("S", bound=_RunsInPrecision)
P = ParamSpec("P")
R = TypeVar("R")


def in_precision(method: Callable[Concatenate[S, P], R]) -> Callable[Concatenate[S, P], R]:
    """Runs a predictor method (the model calls) in the predictor's precision."""

    @functools.wraps(method)
    def run(self: S, *args: P.args, **kwargs: P.kwargs) -> R:
        with self.precision.mode.autocast(self.device):
            return method(self, *args, **kwargs)

    return run
