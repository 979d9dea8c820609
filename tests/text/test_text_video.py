"""Text tracking bookkeeping with a scripted detector (finds bright squares) on synthetic
videos: objects entering later get new ids from the round that finds them, re-detected objects
are not duplicated, ids and names stay stable, every frame is yielded once, "both" and
"backward" passes, and bad arguments.

The random SAM 2's masks are meaningless, so overlap decisions here rest on the boxes objects
were last detected with (exact repeats: IoU 1), which `track_with_text` always compares too.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from scipy import ndimage

from masklet.errors import InvalidInputError
from masklet.text import Detections, ScriptedDetector, track_with_text
from masklet.video.predictor import VideoPredictor
from masklet.video.results import FrameResult

SIDE, FRAMES = 64, 8
SQUARE_A = (8, 8, 24, 24)  # x1, y1, x2, y2: there on every frame
SQUARE_B = (40, 36, 56, 52)  # enters at `enter`
BRIGHT = 200


def video(enter: int, leave: int = FRAMES) -> np.ndarray:
    """[T, H, W, 3] dark noise with square A always and square B on frames enter..leave-1."""
    frames = np.random.default_rng(0).integers(0, 60, (FRAMES, SIDE, SIDE, 3), dtype=np.uint8)
    x1, y1, x2, y2 = SQUARE_A
    frames[:, y1:y2, x1:x2] = 250
    x1, y1, x2, y2 = SQUARE_B
    frames[enter:leave, y1:y2, x1:x2] = 250
    return frames


def bright_squares(image: np.ndarray, text: str) -> Detections:
    """One "square" box per bright blob, scored by its size."""
    blobs, n = ndimage.label(image.min(axis=-1) > BRIGHT)
    boxes, scores = [], []
    for rows, cols in ndimage.find_objects(blobs)[:n]:
        boxes.append((cols.start, rows.start, cols.stop, rows.stop))
        scores.append(min(1.0, (rows.stop - rows.start) * (cols.stop - cols.start) / 1000))
    return Detections(np.array(boxes, np.float32).reshape(-1, 4), np.array(scores), ["square"] * n)


@pytest.fixture(scope="module")
def predictor(tiny_sam: Any) -> VideoPredictor:
    return VideoPredictor(tiny_sam)


def run(predictor: VideoPredictor, frames: np.ndarray, detector: Any, **kwargs: Any) -> tuple[
    list[FrameResult], Any
]:  # fmt: skip
    session = predictor.init_state(frames)
    kwargs.setdefault("box_threshold", 0.0)
    results = list(track_with_text(predictor, session, detector, "a bright square.", **kwargs))
    return results, session


def ids_by_frame(results: list[FrameResult]) -> dict[int, list[int]]:
    return {r.frame_idx: r.obj_ids for r in results}


def test_an_entering_object_gets_a_new_id_from_the_round_that_finds_it(
    predictor: VideoPredictor,
) -> None:
    detector = ScriptedDetector(bright_squares)
    results, session = run(predictor, video(enter=4), detector, redetect_every=2)
    assert [r.frame_idx for r in results] == list(range(FRAMES))  # each frame once, in order
    assert ids_by_frame(results) == {t: [1] if t < 4 else [1, 2] for t in range(FRAMES)}
    assert len(detector.calls) == 4  # rounds on frames 0, 2, 4, 6
    assert session.obj_ids == [1, 2]
    assert results[-1].names[1] == "square_1" and results[-1].names[2] == "square_2"
    for r in results:
        assert tuple(r.mask_logits.shape) == (len(r.obj_ids), 1, SIDE, SIDE)
    # B's track starts from its box prompt on frame 4; A was never re-prompted
    assert set(session.objects[2].cond) == {4} and set(session.objects[1].cond) == {0}


def test_an_object_entering_between_rounds_is_found_at_the_next_round(
    predictor: VideoPredictor,
) -> None:
    results, _ = run(predictor, video(enter=5), ScriptedDetector(bright_squares), redetect_every=3)
    # rounds on 0, 3, 6: B is on screen from 5, found on 6
    assert ids_by_frame(results) == {t: [1] if t < 6 else [1, 2] for t in range(FRAMES)}


def test_without_redetection_late_objects_are_not_found(predictor: VideoPredictor) -> None:
    detector = ScriptedDetector(bright_squares)
    results, _ = run(predictor, video(enter=4), detector)
    assert all(r.obj_ids == [1] for r in results) and len(results) == FRAMES
    assert len(detector.calls) == 1


def test_duplicates_within_a_round_count_once_and_ids_stay_stable(
    predictor: VideoPredictor,
) -> None:
    a = np.array([SQUARE_A], np.float32)
    twice = Detections(np.concatenate([a, a + 1]), np.array([0.9, 0.8]), ["square", "square"])
    detector = ScriptedDetector([twice])  # the same two boxes at every round
    results, session = run(predictor, video(enter=FRAMES), detector, redetect_every=2)
    assert len(detector.calls) == 4
    assert all(r.obj_ids == [1] for r in results) and session.obj_ids == [1]


def test_labels_are_counted_per_label_and_ids_continue_after_existing_objects(
    predictor: VideoPredictor,
) -> None:
    boxes = np.array([SQUARE_A, SQUARE_B, (30, 2, 40, 12)], np.float32)
    dets = Detections(boxes, np.array([0.9, 0.8, 0.7]), ["dog", "red car", "dog"])
    session = predictor.init_state(video(enter=0)[:3])
    predictor.add_new_points_or_box(session, 0, 1, points=[[60, 2]], labels=[1])
    results = list(track_with_text(predictor, session, ScriptedDetector([dets]), "dog. red car."))
    assert all(r.obj_ids == [1, 2, 3, 4] for r in results)
    assert {i: results[0].names[i] for i in (2, 3, 4)} == {2: "dog_1", 3: "red_car_1", 4: "dog_2"}


def test_max_objects_caps_all_rounds(predictor: VideoPredictor) -> None:
    results, _ = run(
        predictor, video(enter=4), ScriptedDetector(bright_squares), redetect_every=2,
        max_objects=1,
    )  # fmt: skip
    assert all(r.obj_ids == [1] for r in results)


def test_frames_before_any_detection_are_empty(predictor: VideoPredictor) -> None:
    frames = video(enter=2)
    frames[:2, 8:24, 8:24] = 30  # square A also only from frame 2
    results, _ = run(predictor, frames, ScriptedDetector(bright_squares), redetect_every=2)
    assert [r.frame_idx for r in results] == list(range(FRAMES))
    assert results[0].obj_ids == [] and results[1].obj_ids == []
    assert tuple(results[0].mask_logits.shape) == (0, 1, SIDE, SIDE)
    assert all(r.obj_ids == [1, 2] for r in results[2:])


def test_both_directions_from_a_middle_frame(predictor: VideoPredictor) -> None:
    results, _ = run(
        predictor, video(enter=0), ScriptedDetector(bright_squares), detect_frame=4,
        direction="both",
    )  # fmt: skip
    assert [r.frame_idx for r in results] == [4, 5, 6, 7, 3, 2, 1, 0]
    assert all(r.obj_ids == [1, 2] for r in results)


def test_both_directions_track_late_objects_forward_only(predictor: VideoPredictor) -> None:
    detector = ScriptedDetector(bright_squares)
    results, session = run(
        predictor, video(enter=4), detector, detect_frame=2, redetect_every=2, direction="both"
    )
    assert [r.frame_idx for r in results] == [2, 3, 4, 5, 6, 7, 1, 0]
    assert ids_by_frame(results) == {
        0: [1], 1: [1], 2: [1], 3: [1], 4: [1, 2], 5: [1, 2], 6: [1, 2], 7: [1, 2],
    }  # fmt: skip
    # rounds: 2, 4, 6 forwards; backwards the round on frame 0 is skipped (frame 0 joins 2..1)
    assert len(detector.calls) == 3
    assert session.obj_ids == [1, 2]  # the late object is back in the session afterwards


def test_backward_redetection_finds_objects_seen_only_earlier(predictor: VideoPredictor) -> None:
    frames = video(enter=0, leave=3)  # B only on frames 0..2
    results, _ = run(
        predictor, frames, ScriptedDetector(bright_squares), detect_frame=7, redetect_every=2,
        direction="backward",
    )  # fmt: skip
    assert [r.frame_idx for r in results] == [7, 6, 5, 4, 3, 2, 1, 0]
    # rounds on 7, 5, 3 miss B (on frames 0..2 only); the round on 1 finds it, tracked to 0
    assert ids_by_frame(results) == {t: [1] if t >= 2 else [1, 2] for t in range(FRAMES)}


def test_backward_from_frame_zero_yields_frame_zero(predictor: VideoPredictor) -> None:
    results, _ = run(
        predictor, video(enter=0), ScriptedDetector(bright_squares), direction="backward"
    )
    assert [r.frame_idx for r in results] == [0] and results[0].obj_ids == [1, 2]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"redetect_every": 0}, "redetect_every"),
        ({"direction": "sideways"}, "direction"),
        ({"detect_frame": FRAMES}, "detect_frame"),
        ({"new_object_iou": 0.0}, "new_object_iou"),
        ({"max_objects": 0}, "max_objects"),
    ],
)
def test_bad_arguments(predictor: VideoPredictor, kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(InvalidInputError, match=match):
        run(predictor, video(enter=0), ScriptedDetector(bright_squares), **kwargs)


@pytest.mark.parametrize(
    ("detect_frame", "direction", "frames"),
    [(2, "forward", [2, 3, 4, 5]), (5, "backward", [5, 4, 3, 2]), (1, "both", [1, 2, 3, 4, 0])],
)
def test_max_frames_bounds_each_direction(
    predictor: VideoPredictor, detect_frame: int, direction: str, frames: list[int]
) -> None:
    results, _ = run(
        predictor, video(enter=0), ScriptedDetector(bright_squares), detect_frame=detect_frame,
        direction=direction, max_frames=3, redetect_every=2,
    )  # fmt: skip
    assert [r.frame_idx for r in results] == frames
