"""The benchmarks' model pair (benchmarks/_common.py): one seed gives one model, whatever the
global random state, so benchmarks that run each side in its own process compare the same
weights. Unseeded, benchmarks/everything.py's memory runs compared two different random models
at 4000x3000 (1 record for masklet, 3 for the reference); on one model the records are equal."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import torch

from tests.parity.reference import small_config

BENCHMARKS = Path(__file__).parents[2] / "benchmarks"


def _common() -> ModuleType:
    spec = importlib.util.spec_from_file_location("_common", BENCHMARKS / "_common.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("_common", module)
    spec.loader.exec_module(module)
    return module


def _weights(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v for k, v in model.state_dict().items() if v.is_floating_point()}


def test_one_seed_gives_one_model_pair_whatever_the_global_random_state() -> None:
    model_pair = _common().model_pair
    cfg = small_config("sam2.1_hiera_tiny", image_size=128)
    torch.manual_seed(1)  # as if another process, or other work before, drew other numbers
    ours_a, ref_a = model_pair(cfg, seed=0)
    torch.manual_seed(2)
    ours_b, ref_b = model_pair(cfg, seed=0)
    ours_c, _ = model_pair(cfg, seed=1)
    a, b, c = _weights(ours_a), _weights(ours_b), _weights(ours_c)
    assert a.keys() == b.keys() and len(a) > 100
    assert all(torch.equal(a[k], b[k]) for k in a), "one seed, two models"
    assert all(torch.equal(a[k], _weights(ref_a)[k]) for k in a)  # both sides hold them
    assert all(torch.equal(_weights(ref_a)[k], _weights(ref_b)[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)  # the seed matters
