"""masklet: segment and track anything in images and videos (a pure-PyTorch SAM 2)."""

from masklet.config import ModelConfig

__all__ = ["ModelConfig"]
__version__ = "0.1.0"
