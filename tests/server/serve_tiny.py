"""Run the app with the tiny random model on 127.0.0.1 (for the real-server tests).

`python -m tests.server.serve_tiny PORT DATA_DIR LIFETIME_SECONDS [SETTINGS_JSON]`; exits by
itself after the lifetime, so a failed test can never leave a server behind. It runs like
`masklet serve` (`masklet.server.app.serve`: SIGTERM cancels jobs, exits within the grace).
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
from pathlib import Path
from typing import Any

import torch

from masklet.modeling.sam2 import build_model
from masklet.server.app import create_app, serve
from masklet.server.settings import ServerSettings
from tests.parity.reference import small_config
from tests.server.browser_helpers import show_random_masks


def main(port: int, data_dir: Path, lifetime: float, extra: dict[str, Any]) -> None:
    torch.manual_seed(0)
    torch.set_num_threads(1)  # the test machine is shared; one thread per worker is plenty
    model = build_model(small_config("sam2.1_hiera_tiny", image_size=128)).eval()
    if extra.pop("show_masks", False):  # random weights blank every mask unless told
        show_random_masks(model)
    settings = ServerSettings(
        host="127.0.0.1", port=port, data_dir=data_dir, model_factory=lambda _: model, **extra
    )
    timer = threading.Timer(lifetime, lambda: os.kill(os.getpid(), signal.SIGTERM))
    timer.daemon = True
    timer.start()
    serve(create_app(settings), settings, log_level="warning")


if __name__ == "__main__":
    extra = json.loads(sys.argv[4]) if len(sys.argv) > 4 else {}
    main(int(sys.argv[1]), Path(sys.argv[2]), float(sys.argv[3]), extra)
