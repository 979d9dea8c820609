"""Test-session settings shared by every test."""

from __future__ import annotations

import os

import pytest
import torch

from masklet.checkpoints import load_model
from masklet.modeling.sam2 import SAM2Model

NANO_MODEL = "masklet-nano-synthetic"

# The models under test are small: one intra-op thread is as fast, and it avoids the heavy
# oversubscription measured on 2-core machines when a test also starts a server or a CLI
# subprocess (up to 20x slower with two threads each). Subprocesses inherit the variable.
os.environ.setdefault("OMP_NUM_THREADS", "1")
torch.set_num_threads(1)


@pytest.fixture(scope="session")
def nano_model() -> SAM2Model:
    """The bundled trained nano model (offline, 128 px): unlike randomly initialised test
    models, its masks are non-empty and follow the objects, so comparisons of masks see
    something. Shared read-only: tests must not change its weights."""
    return load_model(NANO_MODEL).eval()
