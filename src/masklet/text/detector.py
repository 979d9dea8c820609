"""Text-prompted detection: the `Detector` interface, its result type, prompt normalisation,
box overlap helpers, and a scripted detector for tests and demos.

A detector turns an image and a text prompt ("a dog. a red car.") into boxes, each labelled with
the prompt phrase it grounds to; SAM 2 then turns each box into a mask.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np

from masklet.errors import InvalidPromptError

# shared with segment everything; re-exported here, where text code has always found them
from masklet.regions import DEFAULT_NEW_OBJECT_IOU as DEFAULT_NEW_OBJECT_IOU
from masklet.regions import box_iou as box_iou
from masklet.regions import label_to_name as label_to_name
from masklet.regions import mask_box as mask_box

DEFAULT_BOX_THRESHOLD = 0.35  # GroundingDINO's recommended thresholds
DEFAULT_TEXT_THRESHOLD = 0.25
# boxes of one detection round overlapping more than this are one object seen twice
DUPLICATE_IOU = 0.7
# words that carry no meaning in a label ("a dog" and "the dog" are both "dog")
_ARTICLES = frozenset({"a", "an", "the"})
_PHRASE_SEPARATORS = re.compile(r"[.\n;]+")


@dataclass
class Detections:
    """Boxes found in one image, best first.

    boxes: [N, 4] float32 x1, y1, x2, y2 in pixels. scores: [N] float32 in [0, 1].
    labels: N cleaned prompt phrases ("dog", "red car").
    """

    boxes: np.ndarray
    scores: np.ndarray
    labels: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.boxes = np.asarray(self.boxes, dtype=np.float32).reshape(-1, 4)
        self.scores = np.asarray(self.scores, dtype=np.float32).reshape(-1)
        self.labels = list(self.labels)
        n = self.boxes.shape[0]
        if self.scores.shape[0] != n or len(self.labels) != n:
            raise ValueError(
                f"Detections needs as many scores and labels as boxes: {n} boxes, "
                f"{self.scores.shape[0]} scores, {len(self.labels)} labels"
            )

    @classmethod
    def empty(cls) -> Detections:
        return cls(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), [])

    def __len__(self) -> int:
        return int(self.boxes.shape[0])

    def take(self, indices: Sequence[int] | np.ndarray) -> Detections:
        """The detections at `indices`, in that order."""
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        return Detections(self.boxes[idx], self.scores[idx], [self.labels[i] for i in idx])

    def sorted(self) -> Detections:
        """Best score first (stable, so equal scores keep the detector's order)."""
        return self.take(np.argsort(-self.scores, kind="stable"))

    def clipped(self, width: int, height: int) -> Detections:
        """Boxes clipped to a width x height image (detectors may overshoot the border)."""
        boxes = self.boxes.copy()
        boxes[:, 0::2] = boxes[:, 0::2].clip(0, width)
        boxes[:, 1::2] = boxes[:, 1::2].clip(0, height)
        return Detections(boxes, self.scores, self.labels)


@runtime_checkable
class Detector(Protocol):
    """Anything that finds boxes for a text prompt (GroundingDINO, a scripted fake, ...)."""

    def detect(
        self,
        image: np.ndarray,
        text: str,
        box_threshold: float = DEFAULT_BOX_THRESHOLD,
        text_threshold: float = DEFAULT_TEXT_THRESHOLD,
    ) -> Detections:
        """Boxes for `text` in `image` ([H, W, 3] uint8 RGB), best first."""
        ...


# ---- prompt text --------------------------------------------------------------------------------


def split_phrases(text: str) -> list[str]:
    """The phrases of a prompt, lowercased: "A dog. a Red car" -> ["a dog", "a red car"].

    Phrases are separated by ".", ";" or new lines, the way GroundingDINO reads prompts.
    """
    if not isinstance(text, str):
        raise InvalidPromptError(f"a text prompt must be a string, got {type(text).__name__}")
    phrases = [" ".join(p.split()).lower() for p in _PHRASE_SEPARATORS.split(text)]
    phrases = [p for p in phrases if p]
    if not phrases:
        raise InvalidPromptError(
            f'the text prompt {text!r} names nothing; give phrases such as "a dog. a red car."'
        )
    return phrases


def normalize_text(text: str) -> str:
    """The prompt as GroundingDINO expects it: lowercase phrases, each ending with "." ."""
    return " ".join(f"{p}." for p in split_phrases(text))


def clean_label(phrase: str) -> str:
    """A phrase as an object label: no punctuation, no leading article ("a red car" -> "red
    car"). Falls back to the phrase itself when nothing else is left."""
    words = re.sub(r"[^\w\s-]", " ", phrase.lower()).split()
    while len(words) > 1 and words[0] in _ARTICLES:
        words = words[1:]
    return " ".join(words) or phrase.strip()


# ---- boxes ----------------------------------------------------------------------------------


def suppress_duplicates(detections: Detections, iou: float = DUPLICATE_IOU) -> Detections:
    """Greedy non-maximum suppression across labels: a box overlapping a better one by more than
    `iou` is the same object found twice (GroundingDINO often grounds one object to two
    phrases). Returns the survivors, best first."""
    dets = detections.sorted()
    keep: list[int] = []
    overlaps = box_iou(dets.boxes, dets.boxes)  # [N, N]
    for i in range(len(dets)):
        if all(overlaps[i, j] <= iou for j in keep):
            keep.append(i)
    return dets.take(keep)


# ---- a detector for tests and demos ---------------------------------------------------------------


DetectFn = Callable[[np.ndarray, str], Detections]


class ScriptedDetector:
    """A `Detector` that returns what it is told: a list of `Detections` handed out one per call
    (the last one repeats), or a function of (image, text).

    Every call is recorded in `calls` as (image shape, normalised text, box_threshold) so tests
    can check when detection ran. Boxes below `box_threshold` are dropped, like a real detector.
    """

    def __init__(self, script: Sequence[Detections] | DetectFn) -> None:
        if not callable(script) and not script:
            raise ValueError("ScriptedDetector needs at least one Detections or a function")
        self._script = script
        self.calls: list[tuple[tuple[int, ...], str, float]] = []

    def detect(
        self,
        image: np.ndarray,
        text: str,
        box_threshold: float = DEFAULT_BOX_THRESHOLD,
        text_threshold: float = DEFAULT_TEXT_THRESHOLD,
    ) -> Detections:
        text = normalize_text(text)
        n = len(self.calls)
        self.calls.append((tuple(image.shape), text, box_threshold))
        if callable(self._script):
            dets = self._script(image, text)
        else:
            dets = self._script[min(n, len(self._script) - 1)]
        keep = np.flatnonzero(dets.scores >= box_threshold)
        return dets.take(keep).sorted()
