"""GroundingDINO (open-vocabulary box detection) through Hugging Face transformers.

Needs the optional extra: `pip install 'masklet[text]'`. Weights come from the Hugging Face
hub (cached after the first download) or from a local directory saved with
`save_pretrained`.

Each box is labelled with the prompt phrase it grounds to most strongly: the phrase whose
tokens have the highest probability for that box. Boxes whose best phrase scores below
`text_threshold` ground to no phrase and are dropped.
"""

from __future__ import annotations

import inspect
import os
from pathlib import Path
from typing import Any

import numpy as np

from masklet.errors import CheckpointError, InvalidInputError, MaskletError
from masklet.hub import hub_unreachable, quiet_hub
from masklet.text.detector import (
    DEFAULT_BOX_THRESHOLD,
    DEFAULT_TEXT_THRESHOLD,
    Detections,
    clean_label,
    normalize_text,
    split_phrases,
)

DEFAULT_DETECTOR = "IDEA-Research/grounding-dino-tiny"
# short names accepted wherever a model id is
DETECTOR_ALIASES = {
    "tiny": "IDEA-Research/grounding-dino-tiny",
    "base": "IDEA-Research/grounding-dino-base",
    "grounding-dino-tiny": "IDEA-Research/grounding-dino-tiny",
    "grounding-dino-base": "IDEA-Research/grounding-dino-base",
}
INSTALL_HINT = "install masklet[text] (pip install 'masklet[text]')"


class TextExtraMissingError(MaskletError, ImportError):
    """transformers, needed for text prompts, is not installed."""


def _require_transformers() -> Any:
    try:
        import transformers
    except ImportError as e:
        raise TextExtraMissingError(f"text prompts need transformers: {INSTALL_HINT}") from e
    return transformers


def resolve_model_id(model_id_or_path: str) -> str:
    """An alias ("tiny", "base") as its hub id; ids and paths unchanged."""
    return DETECTOR_ALIASES.get(model_id_or_path, model_id_or_path)


def _looks_like_path(name: str) -> bool:
    # hub ids are "name" or "owner/name"; anything else is meant as a directory
    return name.startswith(("/", ".", "~")) or name.count("/") > 1 or "\\" in name


def _offline() -> bool:
    # read at call time: huggingface_hub reads HF_HUB_OFFLINE only once, at import
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


class GroundingDINODetector:
    """GroundingDINO as a `Detector`: `GroundingDINODetector("IDEA-Research/grounding-dino-tiny")`.

    model_id_or_path: a hub id, "tiny" / "base", or a local `save_pretrained` directory.
    device: "cuda", "mps" or "cpu" (default: CUDA when available, else CPU).
    local_files_only: never touch the network (also implied by HF_HUB_OFFLINE=1).
    """

    def __init__(
        self,
        model_id_or_path: str = DEFAULT_DETECTOR,
        device: str | None = None,
        local_files_only: bool | None = None,
    ) -> None:
        model, processor = load_grounding_dino(model_id_or_path, local_files_only)
        self._setup(model, processor, device, resolve_model_id(model_id_or_path))

    @classmethod
    def from_model(
        cls, model: Any, processor: Any, device: str | None = None
    ) -> GroundingDINODetector:
        """A detector around an already built `GroundingDinoForObjectDetection` and its
        `GroundingDinoProcessor` (e.g. a tiny random one in tests)."""
        self = cls.__new__(cls)
        self._setup(model, processor, device, getattr(model, "name_or_path", "") or "custom")
        return self

    def _setup(self, model: Any, processor: Any, device: str | None, name: str) -> None:
        from masklet.checkpoints import resolve_device

        self.device = resolve_device(device)  # cuda -> mps -> cpu, as for SAM 2
        self.model = model.to(self.device).eval()
        self.processor = processor
        self.name = name

    def detect(
        self,
        image: np.ndarray,
        text: str,
        box_threshold: float = DEFAULT_BOX_THRESHOLD,
        text_threshold: float = DEFAULT_TEXT_THRESHOLD,
    ) -> Detections:
        """Boxes for the phrases of `text` in `image` ([H, W, 3] uint8 RGB), best first."""
        import torch

        if not isinstance(image, np.ndarray) or image.ndim != 3 or image.shape[2] != 3:
            shape = getattr(image, "shape", None)
            raise InvalidInputError(f"detect expects an [H, W, 3] uint8 image, got shape {shape}")
        for name, value in (("box_threshold", box_threshold), ("text_threshold", text_threshold)):
            if not 0.0 <= value <= 1.0:
                raise InvalidInputError(f"{name} must be in [0, 1], got {value}")
        phrases = split_phrases(text)
        h, w = image.shape[:2]
        inputs = self.processor(images=image, text=normalize_text(text), return_tensors="pt")
        inputs = inputs.to(self.device)
        with torch.inference_mode():
            outputs = self.model(**inputs)
        input_ids = inputs["input_ids"]
        result = post_process(
            self.processor, outputs, input_ids, box_threshold, text_threshold, (h, w)
        )
        # the rows post-processing kept: the queries whose best token clears box_threshold
        probs = outputs.logits[0].float().sigmoid()  # [Q, T]
        kept = probs[probs.max(dim=-1).values > box_threshold]  # [N, T]
        boxes = result["boxes"].float().cpu().numpy().reshape(-1, 4)
        if kept.shape[0] != boxes.shape[0]:
            raise RuntimeError(
                f"transformers kept {boxes.shape[0]} boxes where {kept.shape[0]} were expected; "
                "this transformers version post-processes differently than masklet assumes"
            )
        spans = phrase_spans(input_ids[0].tolist(), self.processor.tokenizer)[: len(phrases)]
        if not spans:
            raise InvalidInputError(f"the text prompt {text!r} has no tokens the detector reads")
        # [N, P]: per box, the strongest token of each phrase
        phrase_probs = torch.stack([kept[:, s].max(dim=-1).values for s in spans], dim=-1)
        best_prob, best = phrase_probs.max(dim=-1)
        keep = (best_prob >= text_threshold).cpu().numpy()
        labels = [clean_label(phrases[int(i)]) for i in best.cpu().tolist()]
        dets = Detections(
            boxes=boxes,
            scores=result["scores"].float().cpu().numpy(),
            labels=labels,
        )
        return dets.take(np.flatnonzero(keep)).clipped(w, h).sorted()


def post_process(
    processor: Any,
    outputs: Any,
    input_ids: Any,
    box_threshold: float,
    text_threshold: float,
    size: tuple[int, int],
) -> dict[str, Any]:
    """The processor's `post_process_grounded_object_detection` for one image of size (h, w).

    transformers renamed `box_threshold` to `threshold` (4.51); the installed signature decides.
    """
    fn = processor.post_process_grounded_object_detection
    params = inspect.signature(fn).parameters
    key = "threshold" if "threshold" in params else "box_threshold"
    kwargs = {key: box_threshold, "text_threshold": text_threshold, "target_sizes": [size]}
    return dict(fn(outputs, input_ids, **kwargs)[0])


def phrase_spans(input_ids: list[int], tokenizer: Any) -> list[list[int]]:
    """Token positions of each phrase of a "p1. p2." prompt: [[1, 2], [4, 5, 6]] for
    [CLS] a dog . a red car . [SEP] (special tokens and the "." separators excluded)."""
    period = tokenizer.convert_tokens_to_ids(".")
    # [UNK] is a special token too, but an unknown word still belongs to its phrase
    special = {tokenizer.cls_token_id, tokenizer.sep_token_id, tokenizer.pad_token_id}
    spans: list[list[int]] = []
    current: list[int] = []
    for pos, token in enumerate(input_ids):
        if token == period or token in special:
            if current:
                spans.append(current)
            current = []
        else:
            current.append(pos)
    if current:
        spans.append(current)
    return spans


def load_grounding_dino(
    model_id_or_path: str = DEFAULT_DETECTOR, local_files_only: bool | None = None
) -> tuple[Any, Any]:
    """(model, processor) from the hub cache, the hub, or a local directory, with one-line
    errors saying what is missing and how to get it."""
    transformers = _require_transformers()
    name = resolve_model_id(model_id_or_path)
    local = Path(name).expanduser()
    if local.is_dir():
        source = str(local)
    elif _looks_like_path(name):
        raise CheckpointError(
            f"no GroundingDINO model directory at {name}; pass a hub id such as "
            f"{DEFAULT_DETECTOR} or a directory saved with save_pretrained"
        )
    else:
        source = name
    offline = bool(local_files_only) or _offline()
    # hub ids only: with no way to the Hub, read the cache alone (fast) instead of retrying
    unreachable = None if offline or source != name else hub_unreachable()
    cache_only = offline or unreachable is not None
    try:
        with quiet_hub():
            processor = transformers.AutoProcessor.from_pretrained(
                source, local_files_only=cache_only
            )
            model = transformers.GroundingDinoForObjectDetection.from_pretrained(
                source, local_files_only=cache_only
            )
    except (OSError, ValueError) as e:
        if source != name:  # a local directory that is not a GroundingDINO model
            raise CheckpointError(
                f"{source} is not a GroundingDINO model directory ({_first_line(e)})"
            ) from e
        if offline:
            why = "offline (HF_HUB_OFFLINE=1)"
        elif unreachable is not None:
            why = f"not cached and the Hub is out of reach: {unreachable}"
        else:
            why = "not cached and cannot be downloaded"
        raise CheckpointError(
            f"GroundingDINO weights {name!r} are {why}; run `hf download {name}` "
            "while online, or pass a local directory with the model"
        ) from e
    return model, processor


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__
