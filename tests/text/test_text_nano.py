"""Re-detection on the nano model's synthetic demo video with a scripted detector that reports
the ground-truth boxes: an object first reported on frame 2 gets a new id from frame 2 on, the
object already tracked is never duplicated, and ids stay stable."""

from __future__ import annotations

import numpy as np

from masklet.checkpoints import load_model
from masklet.io.masks import mask_to_box
from masklet.text import Detections, ScriptedDetector
from masklet.text.video import track_with_text
from masklet.train.synthetic import demo_config, make_video
from masklet.video.predictor import VideoPredictor

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
