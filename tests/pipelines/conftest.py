"""The server tests' fixtures (tiny model, app factory, clip), shared with the pipeline tests."""

from tests.server.conftest import make_client, tiny_model, video_bytes  # noqa: F401
