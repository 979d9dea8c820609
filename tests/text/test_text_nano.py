"""Re-detection on the nano model's synthetic demo video with a scripted detector that reports
the ground-truth boxes: an object first reported on frame 2 gets a new id from frame 2 on, the
object already tracked is never duplicated, and ids stay stable."""

from __future__ import annotations

import numpy as np

from masklet.checkpoints import load_model
from masklet.io.masks import mask_to_box
from masklet.text import Detections, ScriptedDetector, box_iou
from masklet.text.detector import DEFAULT_NEW_OBJECT_IOU
from masklet.text.video import track_with_text
from masklet.train.synthetic import demo_config, make_video
from masklet.video.predictor import VideoPredictor
from tests.nondegenerate import assert_informative

FRAMES, EVERY = 10, 2


def scripted_rounds(masks: np.ndarray) -> list[Detections]:
    """One detection round every EVERY frames: the dog always, the cat from frame 2 on."""
    rounds = []
    for t in range(0, FRAMES, EVERY):
        objects = [(0, "dog")] + ([(1, "cat")] if t >= EVERY else [])
        boxes = [mask_to_box(masks[t, k]) for k, _ in objects if masks[t, k].sum() > 50]
        labels = [label for k, label in objects if masks[t, k].sum() > 50]
        rounds.append(
            Detections(
                boxes=np.array(boxes, np.float32).reshape(-1, 4),
                scores=np.linspace(0.9, 0.8, len(boxes)).astype(np.float32),
                labels=labels,
            )
        )
    return rounds


def test_new_objects_get_new_ids_and_tracked_ones_are_not_duplicated() -> None:
    # the first frames of the 24-frame demo clip: both objects visible and moving
    video = make_video(0, demo_config(24, (256, 192)))
    detector = ScriptedDetector(scripted_rounds(video.masks[:FRAMES]))
    predictor = VideoPredictor(load_model("masklet-nano-synthetic"))
    session = predictor.init_state(video.frames[:FRAMES])
    results = list(
        track_with_text(predictor, session, detector, "a dog. a cat.", redetect_every=EVERY)
    )
    assert [r.frame_idx for r in results] == list(range(FRAMES))
    assert len(detector.calls) == FRAMES // EVERY  # a round on frames 0, 2, 4, 6, 8
    ids = {r.frame_idx: r.obj_ids for r in results}
    assert all(ids[t] == [1] for t in range(EVERY))
    assert all(ids[t] == [1, 2] for t in range(EVERY, FRAMES))
    assert session.names == {1: "dog_1", 2: "cat_1"}


def test_a_moved_object_is_matched_by_its_tracked_mask_not_duplicated(nano_model) -> None:  # type: ignore[no-untyped-def]
    """Re-detection rounds 4 frames apart on a square moving 3 px a frame: the new box overlaps
    the box of the last round too little to match it, so only the tracked mask (the overlap
    de-duplication on masks) can recognise the object. It must stay one object."""
    side, step, frames_n, every = 64, 3, 9, 4
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 60, (frames_n, side, side, 3), dtype=np.uint8)
    for t in range(frames_n):
        frames[t, 20:36, 4 + step * t : 20 + step * t] = (230, 50, 50)

    def red_square(image: np.ndarray, text: str) -> Detections:
        ys, xs = np.nonzero((image[..., 0] > 200) & (image[..., 1] < 100))
        box = [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]
        return Detections(np.array([box], np.float32), np.array([0.9]), ["square"])

    first, second = red_square(frames[0], ""), red_square(frames[every], "")
    assert box_iou(first.boxes[0], second.boxes).max() < DEFAULT_NEW_OBJECT_IOU
    detector = ScriptedDetector(red_square)
    predictor = VideoPredictor(nano_model, fill_hole_area=0)
    session = predictor.init_state(frames)
    results = list(track_with_text(predictor, session, detector, "a square.", redetect_every=every))
    assert len(detector.calls) == 3  # rounds on frames 0, 4 and 8
    masks = {r.frame_idx: r.masks() for r in results}
    assert_informative(masks, min_pixels=100)
    assert all(r.obj_ids == [1] for r in results), [r.obj_ids for r in results]
    assert session.names == {1: "square_1"}
