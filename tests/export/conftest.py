"""A small perturbed model exported once for the export tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from masklet.export import export_onnx
from masklet.modeling.sam2 import SAM2Model, build_model
from tests.parity.reference import perturbed_state_dict, small_config


@pytest.fixture(scope="session")
def exported(tmp_path_factory: pytest.TempPathFactory) -> tuple[SAM2Model, Path]:
    model = build_model(small_config(image_size=256)).eval()
    model.load_state_dict(perturbed_state_dict(model))
    out = tmp_path_factory.mktemp("onnx")
    parts = export_onnx(model, out)
    assert [p.name for p in parts] == [
        "image_encoder",
        "prompt_decoder",
        "mask_decoder",
        "memory_attention",
        "memory_encoder",
        "object_pointer",
    ]
    assert not model.training  # export leaves the model in eval mode
    return model, out
