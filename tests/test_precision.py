"""The `auto` decision with faked hardware and timings, and how modes are named and applied."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from masklet.errors import InvalidInputError
from masklet.modeling.sam2 import build_model
from masklet.precision import (
    PROBE_ROUNDS,
    REQUIRED_SPEEDUP,
    DeviceCaps,
    Precision,
    apply_precision,
    choose,
    cpu_flags,
    detect_caps,
    hardware_choice,
    parse_precision,
    resolve_precision,
)
from tests.parity.reference import small_config

AVX2 = frozenset({"sse4_2", "avx", "avx2", "fma"})
# this project's CI machine: AVX512 with bf16 dot products, no AMX, no FP16
AVX512_BF16 = AVX2 | {"avx512f", "avx512bw", "avx512_bf16", "avx512_vnni"}
AMX = AVX512_BF16 | {"amx_bf16", "amx_tile", "amx_int8"}
FP16 = AVX2 | {"avx512f", "avx512_fp16"}


class FakeTimer:
    """Seconds per mode; records which modes were measured."""

    def __init__(self, seconds: dict[Precision, float]) -> None:
        self.seconds = seconds
        self.asked: list[Precision] = []

    def __call__(self, mode: Precision) -> float:
        self.asked.append(mode)
        return self.seconds[mode]


def test_cpu_without_reduced_precision_units_stays_fp32_without_measuring() -> None:
    timer = FakeTimer({})  # any measurement would raise KeyError
    choice = choose(DeviceCaps("cpu", cpu_flags=AVX2), timer)
    assert choice.mode is Precision.FP32 and timer.asked == []
    assert "AMX" in choice.reason and choice.requested == "auto"


@pytest.mark.parametrize(
    ("flags", "mode"),
    [(AMX, Precision.BF16), (FP16, Precision.FP16), (AVX512_BF16, Precision.BF16)],
)
def test_cpu_reduced_mode_is_kept_only_when_measured_faster(
    flags: frozenset[str], mode: Precision
) -> None:
    faster = FakeTimer({mode: 0.5, Precision.FP32: 1.0})
    assert choose(DeviceCaps("cpu", cpu_flags=flags), faster).mode is mode
    assert faster.asked == [mode, Precision.FP32] * PROBE_ROUNDS  # alternated, not in a row
    slower = FakeTimer({mode: 1.2, Precision.FP32: 1.0})
    picked = choose(DeviceCaps("cpu", cpu_flags=flags), slower)
    assert picked.mode is Precision.FP32 and "measured 0.83x" in picked.reason
    # a gain inside timing noise is no gain
    marginal = FakeTimer({mode: 1.0 - REQUIRED_SPEEDUP / 2, Precision.FP32: 1.0})
    assert choose(DeviceCaps("cpu", cpu_flags=flags), marginal).mode is Precision.FP32


def test_amx_wins_over_fp16_and_cuda_prefers_bf16() -> None:
    assert hardware_choice(DeviceCaps("cpu", cpu_flags=AMX | FP16))[0] is Precision.BF16
    # AVX512-FP16 computes fp16 natively; bf16 dot products alone come after it
    assert hardware_choice(DeviceCaps("cpu", cpu_flags=AVX512_BF16 | FP16))[0] is Precision.FP16
    assert hardware_choice(DeviceCaps("cuda", cuda_bf16=True))[0] is Precision.BF16
    assert hardware_choice(DeviceCaps("cuda", cuda_bf16=False))[0] is Precision.FP16
    assert hardware_choice(DeviceCaps("mps"))[0] is Precision.FP32
    # CUDA is measured too: a GPU slower in bf16 keeps fp32
    timer = FakeTimer({Precision.BF16: 2.0, Precision.FP32: 1.0})
    assert choose(DeviceCaps("cuda", cuda_bf16=True), timer).mode is Precision.FP32


def test_cpu_flags_are_read_from_cpuinfo(tmp_path: Path) -> None:
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nflags\t\t: fpu avx512f amx_tile amx_bf16\n\nprocessor\t: 1\n")
    assert cpu_flags(info) == {"fpu", "avx512f", "amx_tile", "amx_bf16"}
    assert cpu_flags(tmp_path / "missing") == frozenset()


def test_names_are_checked_and_explicit_modes_are_taken_as_given() -> None:
    with pytest.raises(InvalidInputError, match="fp32, bf16, fp16, auto"):
        parse_precision("int4")
    assert parse_precision(Precision.BF16) == "bf16" and parse_precision("FP16") == "fp16"
    model = build_model(small_config(image_size=128)).eval()
    choice = resolve_precision("fp16", model, torch.device("cpu"))
    assert choice.mode is Precision.FP16 and choice.reason == "requested"


def test_auto_on_this_machine_follows_its_hardware() -> None:
    """The real detection: whatever the CPU, auto picks the hardware's mode or (if the probe
    measured it slower) fp32 and says which; it never names a mode the hardware lacks."""
    model = build_model(small_config(image_size=128)).eval()
    choice = apply_precision(model, "auto")
    expected, why = hardware_choice(detect_caps(torch.device("cpu")))
    assert choice.mode in (expected, Precision.FP32) and choice.reason.startswith(why)
    assert model.precision is choice  # recorded for the predictors
