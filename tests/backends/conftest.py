"""A small perturbed model, exported once, for the backend tests."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from masklet.export import export_onnx
from masklet.modeling.sam2 import SAM2Model, build_model
from tests.parity.reference import perturbed_state_dict, small_config

VISIBLE_BIAS = 10.0


@pytest.fixture(scope="session")
def exported_present(tmp_path_factory: pytest.TempPathFactory) -> tuple[SAM2Model, Path]:
    """(model, export folder) of the tiny config at 256 px with seeded noise on every weight;
    the object-score head's bias is raised so that objects stay visible: tracked masks are
    then real logits (not the constant of an absent object) and memories depend on them."""
    pytest.importorskip("onnxruntime")
    torch.manual_seed(0)  # the initial weights, under the seeded noise
    model = build_model(small_config(image_size=256)).eval()
    state = perturbed_state_dict(model, seed=3)
    head = max(k for k in state if k.startswith("sam_mask_decoder.pred_obj_score_head."))
    bias = f"{head.rsplit('.', 1)[0]}.bias"
    state[bias] = state[bias] + VISIBLE_BIAS
    model.load_state_dict(state, strict=True)
    out = tmp_path_factory.mktemp("onnx_backend")
    export_onnx(model, out)
    return model, out
