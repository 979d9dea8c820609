"""Run the app with the tiny random model on 127.0.0.1 (for the real-server tests).

`python -m tests.server.serve_tiny PORT DATA_DIR LIFETIME_SECONDS`; exits by itself after the
lifetime, so a failed test can never leave a server behind.
"""

from __future__ import annotations

import sys
import threading
from pathlib import Path

import torch
import uvicorn

from masklet.modeling.sam2 import build_model
from masklet.server.app import create_app
from masklet.server.settings import ServerSettings
from tests.parity.reference import small_config


def main(port: int, data_dir: Path, lifetime: float) -> None:
    torch.manual_seed(0)
    torch.set_num_threads(1)  # the test machine is shared; one thread per worker is plenty
    model = build_model(small_config("sam2.1_hiera_tiny", image_size=128)).eval()
    settings = ServerSettings(port=port, data_dir=data_dir, model_factory=lambda _: model)
    server = uvicorn.Server(
        uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="warning")
    )
    threading.Timer(lifetime, lambda: setattr(server, "should_exit", True)).start()
    server.run()


if __name__ == "__main__":
    main(int(sys.argv[1]), Path(sys.argv[2]), float(sys.argv[3]))
