"""Precision modes on the bundled nano model's held-out synthetic videos: J&F of bf16 and fp16
within 0.01 of fp32 (issue 20), with the same clips, clicks and scoring (`evaluate_heldout`)."""

from __future__ import annotations

import pytest

from masklet.checkpoints import load_model
from masklet.eval.heldout import evaluate_heldout
from masklet.train.synthetic import SyntheticConfig

MAX_JF_DROP = 0.01
VIDEOS = 3  # 8-frame clips with 1-3 objects each, forward and backward tracked


@pytest.fixture(scope="module")
def fp32_jf() -> float:
    report = evaluate_heldout(
        load_model("masklet-nano-synthetic", precision="fp32"),
        VIDEOS,
        SyntheticConfig(num_frames=8),
    )
    assert len(report.forward.objects) >= 3 and 0.3 < report.forward.jf_mean < 1.0
    return report.forward.jf_mean


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_reduced_precision_keeps_heldout_jf(fp32_jf: float, precision: str) -> None:
    model = load_model("masklet-nano-synthetic", precision=precision)
    assert model.precision.mode.value == precision  # every predictor built on it uses it
    report = evaluate_heldout(model, VIDEOS, SyntheticConfig(num_frames=8))
    assert abs(report.forward.jf_mean - fp32_jf) <= MAX_JF_DROP, (
        f"{precision}: J&F {report.forward.jf_mean:.4f}, fp32 {fp32_jf:.4f}"
    )
