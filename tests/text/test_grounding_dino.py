"""GroundingDINO backend: runs offline on a tiny random model; labels are prompt phrases; boxes
are image pixels; thresholds, the transformers argument rename, local directories, missing
weights and a missing transformers give clear one-line errors; text -> boxes -> SAM 2 masks
for an image and a video."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from masklet.errors import CheckpointError, MaskletError
from masklet.image_predictor import ImagePredictor
from masklet.text import (
    GroundingDINODetector,
    TextExtraMissingError,
    load_grounding_dino,
    segment_text,
    track_with_text,
)
from masklet.text.grounding_dino import INSTALL_HINT, phrase_spans, post_process
from masklet.video.predictor import VideoPredictor

H, W = 48, 80
PROMPT = "A dog. a red car"


@pytest.fixture(scope="module")
def image() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 255, (H, W, 3), dtype=np.uint8)


def test_detect_returns_labelled_pixel_boxes(tiny_detector: Any, image: np.ndarray) -> None:
    dets = tiny_detector.detect(image, PROMPT, box_threshold=0.0, text_threshold=0.0)
    assert len(dets) > 0  # random weights: thresholds at zero keep every query
    assert dets.boxes.dtype == np.float32 and dets.boxes.shape == (len(dets), 4)
    assert dets.scores.dtype == np.float32 and dets.scores.shape == (len(dets),)
    x1, y1, x2, y2 = dets.boxes.T
    assert (x1 >= 0).all() and (x2 <= W).all() and (y1 >= 0).all() and (y2 <= H).all()
    assert (x2 >= x1).all() and (y2 >= y1).all()
    assert dets.boxes.max() > 1.0  # pixels, not [0, 1] coordinates
    assert ((dets.scores >= 0) & (dets.scores <= 1)).all()
    assert (np.diff(dets.scores) <= 0).all()  # best first
    assert set(dets.labels) <= {"dog", "red car"}  # cleaned prompt phrases, nothing else


def test_thresholds_filter(tiny_detector: Any, image: np.ndarray) -> None:
    everything = tiny_detector.detect(image, PROMPT, box_threshold=0.0, text_threshold=0.0)
    cut = float(np.median(everything.scores))
    some = tiny_detector.detect(image, PROMPT, box_threshold=cut, text_threshold=0.0)
    assert 0 < len(some) < len(everything) and (some.scores > cut).all()
    assert len(tiny_detector.detect(image, PROMPT, box_threshold=1.0)) == 0
    # a box must ground to some phrase with at least text_threshold
    assert len(tiny_detector.detect(image, PROMPT, box_threshold=0.0, text_threshold=1.0)) == 0


def test_phrase_spans_skip_separators(tiny_grounding_dino: tuple[Any, Any]) -> None:
    tokenizer = tiny_grounding_dino[1].tokenizer
    ids = tokenizer("a dog. a red car.")["input_ids"]  # [CLS] a dog . a red car . [SEP]
    assert phrase_spans(ids, tokenizer) == [[1, 2], [4, 5, 6]]


def test_post_process_handles_the_threshold_rename() -> None:
    seen: dict[str, Any] = {}

    class Old:  # transformers < 4.51 called it box_threshold
        def post_process_grounded_object_detection(
            self, outputs: Any, input_ids: Any, box_threshold: float = 0.25,
            text_threshold: float = 0.25, target_sizes: Any = None,
        ) -> list[dict[str, Any]]:  # fmt: skip
            seen.update(box_threshold=box_threshold, sizes=target_sizes)
            return [{"boxes": 1}]

    class New:
        def post_process_grounded_object_detection(
            self, outputs: Any, input_ids: Any = None, threshold: float = 0.25,
            text_threshold: float = 0.25, target_sizes: Any = None, text_labels: Any = None,
        ) -> list[dict[str, Any]]:  # fmt: skip
            seen.update(threshold=threshold)
            return [{"boxes": 2}]

    assert post_process(Old(), None, None, 0.4, 0.2, (H, W)) == {"boxes": 1}
    assert seen["box_threshold"] == 0.4 and seen["sizes"] == [(H, W)]
    assert post_process(New(), None, None, 0.6, 0.2, (H, W)) == {"boxes": 2}
    assert seen["threshold"] == 0.6


def test_local_directory_loads_offline(
    tiny_grounding_dino: tuple[Any, Any], image: np.ndarray, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    model, processor = tiny_grounding_dino
    model.save_pretrained(tmp_path / "gd")
    processor.save_pretrained(tmp_path / "gd")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    detector = GroundingDINODetector(str(tmp_path / "gd"), device="cpu")
    a = detector.detect(image, PROMPT, box_threshold=0.0, text_threshold=0.0)
    b = GroundingDINODetector.from_model(model, processor, "cpu").detect(
        image, PROMPT, box_threshold=0.0, text_threshold=0.0
    )
    np.testing.assert_allclose(a.boxes, b.boxes, atol=1e-4)
    assert a.labels == b.labels


def test_missing_weights_offline_name_the_model_and_the_fix(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    missing = "nobody-here/grounding-dino-missing"
    with pytest.raises(CheckpointError) as err:
        GroundingDINODetector(missing)
    msg = str(err.value)
    assert "\n" not in msg
    assert missing in msg and f"hf download {missing}" in msg
    assert "local directory" in msg


def test_unreachable_hub_reads_the_cache_only(
    tiny_grounding_dino: tuple[Any, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """With no way to the Hub the load goes straight to the cache (no minutes of retries):
    cached weights load, missing ones fail at once naming the reason and the fix."""
    import transformers

    from masklet.text import grounding_dino

    model, processor = tiny_grounding_dino
    reason = "cannot reach huggingface.co:443 ([Errno -2] Name or service not known)"
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(grounding_dino, "hub_unreachable", lambda: reason)
    calls: list[tuple[str, object]] = []
    cached = {"cached-org/grounding-dino-cached"}

    def loader(result: Any) -> Any:
        def from_pretrained(source: str, **kwargs: object) -> Any:
            calls.append((source, kwargs.get("local_files_only")))
            if source not in cached:
                raise OSError(f"{source} is not in the cache and outgoing traffic is disabled")
            return result

        return from_pretrained

    monkeypatch.setattr(transformers.AutoProcessor, "from_pretrained", loader(processor))
    monkeypatch.setattr(
        transformers.GroundingDinoForObjectDetection, "from_pretrained", loader(model)
    )

    assert load_grounding_dino("cached-org/grounding-dino-cached") == (model, processor)
    assert calls == [("cached-org/grounding-dino-cached", True)] * 2

    with pytest.raises(CheckpointError) as err:
        load_grounding_dino("nobody-here/grounding-dino-missing")
    msg = str(err.value)
    assert "\n" not in msg and reason in msg
    assert "hf download nobody-here/grounding-dino-missing" in msg
    assert calls[-1] == ("nobody-here/grounding-dino-missing", True)


def test_missing_local_directory(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="no GroundingDINO model directory"):
        GroundingDINODetector(str(tmp_path / "nope" / "gd"))


def test_missing_transformers_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "transformers", None)  # makes `import transformers` fail
    with pytest.raises(TextExtraMissingError) as err:
        GroundingDINODetector("IDEA-Research/grounding-dino-tiny")
    assert isinstance(err.value, (MaskletError, ImportError))
    assert INSTALL_HINT in str(err.value) and "\n" not in str(err.value)


def test_text_to_masks_on_an_image(tiny_detector: Any, tiny_sam: Any, image: np.ndarray) -> None:
    objects = segment_text(
        ImagePredictor(tiny_sam), image, PROMPT, tiny_detector, box_threshold=0.0,
        text_threshold=0.0, max_objects=3,
    )  # fmt: skip
    assert [o.obj_id for o in objects] == [1, 2, 3]
    assert all(o.label in {"dog", "red car"} for o in objects)
    assert all(o.mask.shape == (H, W) and o.mask.dtype == bool for o in objects)
    scores = [o.score for o in objects]
    assert scores == sorted(scores, reverse=True)


def test_text_to_tracks_on_a_video(tiny_detector: Any, tiny_sam: Any) -> None:
    frames = np.random.default_rng(1).integers(0, 255, (3, H, W, 3), dtype=np.uint8)
    predictor = VideoPredictor(tiny_sam)
    session = predictor.init_state(frames)
    results = list(
        track_with_text(
            predictor,
            session,
            tiny_detector,
            PROMPT,
            box_threshold=0.0,
            text_threshold=0.0,
            max_objects=2,
        )  # fmt: skip
    )
    assert [r.frame_idx for r in results] == [0, 1, 2]
    assert all(r.obj_ids == [1, 2] for r in results)
    assert all(tuple(r.mask_logits.shape) == (2, 1, H, W) for r in results)
    names = results[-1].names
    assert set(names) == {1, 2}
    for name in names.values():
        label, k = name.rsplit("_", 1)
        assert label in {"dog", "red_car"} and k in {"1", "2"}
