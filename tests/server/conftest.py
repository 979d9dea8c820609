"""Fixtures for the server tests: a tiny random model, a small video, an app factory."""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient
from PIL import Image

from masklet.io.video import VideoWriter
from masklet.modeling.sam2 import SAM2Model, build_model
from masklet.server.app import create_app
from masklet.server.settings import ServerSettings
from tests.parity.reference import small_config

WIDTH, HEIGHT, FRAMES = 64, 48, 5
IMAGE_SIZE = 128  # model input size: the smallest that keeps every feature map valid
AppFactory = Callable[..., TestClient]


@pytest.fixture(scope="session")
def tiny_model() -> SAM2Model:
    torch.manual_seed(0)
    return build_model(small_config("sam2.1_hiera_tiny", image_size=IMAGE_SIZE)).eval()


def moving_square(count: int = FRAMES, width: int = WIDTH, height: int = HEIGHT) -> np.ndarray:
    """[T, H, W, 3] uint8: a bright square moving right over a dark background."""
    frames = np.full((count, height, width, 3), 30, np.uint8)
    for t in range(count):
        x = 8 + 3 * t
        frames[t, 14:34, x : x + 20] = (230, 200, 40)
    return frames


def two_squares(count: int = FRAMES) -> np.ndarray:
    """`moving_square` plus a blue 12x14 square at rows 35..47 moving left: two objects the
    bundled nano model tracks with non-empty, disjoint masks on every frame."""
    frames = moving_square(count)
    for t in range(count):
        frames[t, 35:47, 48 - 2 * t : 62 - 2 * t] = (40, 90, 220)
    return frames


def encode(frames: np.ndarray, path: Path) -> bytes:
    with VideoWriter(path, fps=10, size=(WIDTH, HEIGHT)) as writer:
        for frame in frames:
            writer.write(frame)
    return path.read_bytes()


@pytest.fixture(scope="session")
def two_squares_bytes(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    return encode(two_squares(), tmp_path_factory.mktemp("video") / "two.mp4")


@pytest.fixture
def nano_client(make_client: AppFactory, nano_model: SAM2Model) -> TestClient:
    """A client on the bundled nano model, for tests that compare mask content."""
    return make_client(model_factory=lambda _settings: nano_model)


@pytest.fixture(scope="session")
def video_bytes(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    return encode(moving_square(), tmp_path_factory.mktemp("video") / "clip.mp4")


@pytest.fixture(scope="session")
def image_bytes() -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(moving_square(1)[0]).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture
def make_client(tiny_model: SAM2Model, tmp_path: Path) -> Iterator[AppFactory]:
    """`make_client(**settings)` -> a TestClient on a fresh app with the tiny model."""
    clients: list[TestClient] = []

    def factory(**overrides: Any) -> TestClient:
        values: dict[str, Any] = {
            "data_dir": tmp_path / f"data{len(clients)}",
            "model_factory": lambda _settings: tiny_model,
        }
        values.update(overrides)
        client = TestClient(create_app(ServerSettings(**values)))
        client.__enter__()  # runs the lifespan (sweeper, shutdown)
        clients.append(client)
        return client

    yield factory
    for client in clients:
        client.__exit__(None, None, None)


@pytest.fixture
def client(make_client: AppFactory) -> TestClient:
    return make_client()
