"""masklet: segment and track anything in images and videos (a pure-PyTorch SAM 2).

import masklet
model = masklet.load_model("sam2.1_hiera_tiny")          # or a .pt / .safetensors path
predictor = masklet.ImagePredictor(model)
predictor.set_image(masklet.read_image("photo.jpg"))
masks, ious, logits = predictor.predict(point_coords=[[320, 240]], point_labels=[1])
"""

from masklet.checkpoints import download, load_model
from masklet.config import ModelConfig
from masklet.errors import (
    BusyError,
    CheckpointError,
    InvalidInputError,
    InvalidPromptError,
    MaskletError,
    SessionNotFoundError,
)
from masklet.everything import AutomaticMaskGenerator, MaskGeneratorConfig
from masklet.image_predictor import ImagePredictor
from masklet.io.images import read_image
from masklet.modeling.sam2 import SAM2Model, build_model
from masklet.video.predictor import VideoPredictor

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
