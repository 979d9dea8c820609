"""Text prompts: an open-vocabulary detector (GroundingDINO) finds boxes for phrases such as
"a dog. a red car.", and SAM 2 turns each box into a mask (images) or a track (videos).

from masklet.text import GroundingDINODetector, segment_text, track_with_text
detector = GroundingDINODetector()                       # IDEA-Research/grounding-dino-tiny
objects = segment_text(ImagePredictor(model), image, "a dog. a red car.", detector)
for result in track_with_text(VideoPredictor(model), session, detector, "a dog.",
                              redetect_every=15):
    ...

GroundingDINO needs the optional extra: pip install 'masklet[text]'.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from masklet.lazy import lazy_exports
from masklet.text.detector import (
    DEFAULT_BOX_THRESHOLD,
    DEFAULT_TEXT_THRESHOLD,
    Detections,
    Detector,
    ScriptedDetector,
    box_iou,
    clean_label,
    normalize_text,
    split_phrases,
    suppress_duplicates,
)
from masklet.text.grounding_dino import (
    DEFAULT_DETECTOR,
    GroundingDINODetector,
    TextExtraMissingError,
    load_grounding_dino,
)

if TYPE_CHECKING:
    from masklet.text.image import TextObject, detect_objects, segment_boxes, segment_text
    from masklet.text.video import DEFAULT_NEW_OBJECT_IOU, TextTrackingOptions, track_with_text

# The SAM 2 side imports PyTorch: loaded on first use, so the CLI's help and option parsing
# (which read the detector's defaults) stay fast.
_LAZY = {
    "TextObject": "masklet.text.image",
    "detect_objects": "masklet.text.image",
    "segment_boxes": "masklet.text.image",
    "segment_text": "masklet.text.image",
    "DEFAULT_NEW_OBJECT_IOU": "masklet.text.video",
    "TextTrackingOptions": "masklet.text.video",
    "track_with_text": "masklet.text.video",
}


__getattr__, __dir__ = lazy_exports(__name__, _LAZY, globals())


__all__ = [
    "DEFAULT_BOX_THRESHOLD",
    "DEFAULT_DETECTOR",
    "DEFAULT_NEW_OBJECT_IOU",
    "DEFAULT_TEXT_THRESHOLD",
    "Detections",
    "Detector",
    "GroundingDINODetector",
    "ScriptedDetector",
    "TextExtraMissingError",
    "TextObject",
    "TextTrackingOptions",
    "box_iou",
    "clean_label",
    "detect_objects",
    "load_grounding_dino",
    "normalize_text",
    "segment_boxes",
    "segment_text",
    "split_phrases",
    "suppress_duplicates",
    "track_with_text",
]
