"""Segment everything: automatic mask generation from a grid of point prompts."""

from masklet.everything.config import OUTPUT_MODES, MaskGeneratorConfig, OutputMode
from masklet.everything.generator import AutomaticMaskGenerator
from masklet.everything.video import EverythingFinder, track_everything

__all__ = [
    "OUTPUT_MODES",
    "AutomaticMaskGenerator",
    "EverythingFinder",
    "MaskGeneratorConfig",
    "OutputMode",
    "track_everything",
]
