"""Test-session settings shared by every test."""

from __future__ import annotations

import os

import torch

# The models under test are small: one intra-op thread is as fast, and it avoids the heavy
# oversubscription measured on 2-core machines when a test also starts a server or a CLI
# subprocess (up to 20x slower with two threads each). Subprocesses inherit the variable.
os.environ.setdefault("OMP_NUM_THREADS", "1")
torch.set_num_threads(1)
