"""`masklet serve --precision`: the setting reaches the model, and /healthz says the mode."""

from __future__ import annotations

import pytest

from masklet.errors import InvalidInputError
from masklet.modeling.sam2 import build_model
from masklet.server.app import create_app
from masklet.server.settings import ServerSettings, settings_from_env
from tests.parity.reference import small_config
from tests.server.conftest import AppFactory


def test_healthz_says_the_precision_before_and_after_loading(make_client: AppFactory) -> None:
    fresh = build_model(small_config(image_size=128)).eval()  # not the shared tiny model
    client = make_client(precision="bf16", model_factory=lambda _settings: fresh)
    assert client.get("/healthz").json()["precision"] == "precision bf16"  # nothing loaded
    model = client.app.state.context.models.model()  # type: ignore[attr-defined]
    health = client.get("/healthz").json()
    assert health["model_loaded"] and health["precision"] == "precision bf16 (requested)"
    assert model.precision.mode.value == "bf16"
    predictor = client.app.state.context.models.video_predictor()  # type: ignore[attr-defined]
    assert predictor.precision is model.precision  # sessions track in that mode


def test_precision_comes_from_the_environment_and_is_checked(tmp_path) -> None:  # type: ignore[no-untyped-def]
    assert settings_from_env({"MASKLET_PRECISION": "auto"}).precision == "auto"
    with pytest.raises(InvalidInputError, match="fp32, bf16, fp16, auto"):
        create_app(ServerSettings(precision="half", data_dir=tmp_path))
