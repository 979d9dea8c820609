"""Segment everything: automatic mask generation from a grid of point prompts."""

from masklet.everything.config import OUTPUT_MODES, MaskGeneratorConfig, OutputMode
from masklet.everything.generator import AutomaticMaskGenerator

__all__ = ["OUTPUT_MODES", "AutomaticMaskGenerator", "MaskGeneratorConfig", "OutputMode"]
