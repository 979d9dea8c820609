"""masklet: segment and track anything in images and videos (a pure-PyTorch SAM 2).

import masklet
model = masklet.load_model("sam2.1_hiera_tiny")          # or a .pt / .safetensors path
predictor = masklet.ImagePredictor(model)
predictor.set_image(masklet.read_image("photo.jpg"))
masks, ious, logits = predictor.predict(point_coords=[[320, 240]], point_labels=[1])

The names below are imported on first use, so `import masklet` (and the `masklet` command's
help) does not import PyTorch until a model is needed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from masklet.errors import (
    BusyError,
    CheckpointError,
    InvalidInputError,
    InvalidPromptError,
    MaskletError,
    SessionNotFoundError,
)
from masklet.lazy import lazy_exports

if TYPE_CHECKING:
    from masklet.checkpoints import download, load_model
    from masklet.config import ModelConfig
    from masklet.everything import AutomaticMaskGenerator, MaskGeneratorConfig
    from masklet.image_predictor import ImagePredictor
    from masklet.io.images import read_image
    from masklet.modeling.sam2 import SAM2Model, build_model
    from masklet.video.predictor import VideoPredictor

_LAZY: dict[str, str] = {
    "download": "masklet.checkpoints",
    "load_model": "masklet.checkpoints",
    "ModelConfig": "masklet.config",
    "AutomaticMaskGenerator": "masklet.everything",
    "MaskGeneratorConfig": "masklet.everything",
    "ImagePredictor": "masklet.image_predictor",
    "read_image": "masklet.io.images",
    "SAM2Model": "masklet.modeling.sam2",
    "build_model": "masklet.modeling.sam2",
    "VideoPredictor": "masklet.video.predictor",
}


__getattr__, __dir__ = lazy_exports(__name__, _LAZY, globals())

__all__ = [
    "AutomaticMaskGenerator",
    "BusyError",
    "CheckpointError",
    "ImagePredictor",
    "InvalidInputError",
    "InvalidPromptError",
    "MaskGeneratorConfig",
    "MaskletError",
    "ModelConfig",
    "SAM2Model",
    "SessionNotFoundError",
    "VideoPredictor",
    "build_model",
    "download",
    "load_model",
    "read_image",
]
__version__ = "0.1.0"
