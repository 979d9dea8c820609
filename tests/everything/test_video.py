"""Segment everything on videos with the bundled nano model: regions found on the first frame
become tracked objects; an object entering later gets a new id at the next round."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import masklet
from masklet.everything import AutomaticMaskGenerator, EverythingFinder, track_everything
from masklet.train.synthetic import demo_config, make_video
from masklet.video.predictor import VideoPredictor
from masklet.video.results import FrameResult

# the nano model's scores stay below the reference defaults (see test_generator.py)
OPTIONS: dict[str, Any] = dict(points_per_side=16, pred_iou_thresh=0.5, stability_score_thresh=0.5)
MIN_TRACK_IOU = 0.7


@pytest.fixture(scope="module")
def nano() -> masklet.SAM2Model:
    return masklet.load_model("masklet-nano-synthetic")


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max((a | b).sum(), 1))


def _best(result: FrameResult, truth: np.ndarray) -> tuple[int | None, float]:
    """(id, IoU) of the tracked object that best matches the true mask [H, W]."""
    scored = [(_iou(m, truth), obj_id) for obj_id, m in result.masks().items()]
    iou, obj_id = max(scored, default=(0.0, None))
    return obj_id, iou


def test_both_demo_objects_are_discovered_and_tracked(nano: masklet.SAM2Model) -> None:
    frames = 16
    video = make_video(0, demo_config(48, (256, 192)))  # the `masklet demo` clip
    assert video.masks.shape[1] == 2 and video.masks[:frames].sum(axis=(2, 3)).min() > 500
    predictor = VideoPredictor(nano)
    session = predictor.init_state(video.frames[:frames])
    generator = AutomaticMaskGenerator(nano, **OPTIONS)
    results = list(track_everything(predictor, session, generator, every=4))
    assert [r.frame_idx for r in results] == list(range(frames))
    found = [_best(results[0], video.masks[0, k]) for k in range(2)]
    ids = [obj_id for obj_id, _ in found]
    assert None not in ids and ids[0] != ids[1], found  # two different objects
    for r in results:
        for k, obj_id in enumerate(ids):
            # the same id follows each object on every frame
            assert _iou(r.masks()[obj_id], video.masks[r.frame_idx, k]) >= MIN_TRACK_IOU, (
                r.frame_idx,
                k,
            )
    assert all(session.names[i].startswith("object_") for i in session.obj_ids)


def test_an_object_entering_later_gets_a_new_id_at_the_next_round(
    nano: masklet.SAM2Model,
) -> None:
    # demo clip 2: object 1 is out of the frame from frame 3 and comes back on frame 30
    start, frames, every = 22, 10, 4
    video = make_video(2, demo_config(48, (256, 192)))
    entering = video.masks[start : start + frames, 0]  # [T, H, W]
    enters = int(np.flatnonzero(entering.sum(axis=(1, 2)) > 0)[0])
    assert 0 < enters <= 2 * every
    predictor = VideoPredictor(nano)
    session = predictor.init_state(video.frames[start : start + frames])
    generator = AutomaticMaskGenerator(nano, **OPTIONS)
    results = list(track_everything(predictor, session, generator, every=every))
    before = set(results[enters - 1].obj_ids)
    round_frame = -(-enters // every) * every  # the first round at or after it enters
    new = set(results[round_frame].obj_ids) - before
    assert new, "no new object at the round after the object entered"
    obj_id, iou = _best(results[round_frame], entering[round_frame])
    assert obj_id in new and iou >= 0.8, (obj_id, iou, new)


def test_finder_keeps_object_sized_masks_largest_first(nano: masklet.SAM2Model) -> None:
    video = make_video(0, demo_config(8, (256, 192)))
    generator = AutomaticMaskGenerator(nano, output_mode="coco_rle", **OPTIONS)
    finder = EverythingFinder(generator, min_area=100, max_area_fraction=0.3)
    candidates = finder.find(video.frames[0], 0)
    assert len(candidates) >= 2
    areas = [int(c.mask.sum()) for c in candidates if c.mask is not None]
    assert len(areas) == len(candidates)
    assert areas == sorted(areas, reverse=True)
    assert min(areas) >= 100 and max(areas) <= 0.3 * 256 * 192
    for c in candidates:
        ys, xs = np.nonzero(c.mask)
        assert c.box.tolist() == [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]
        assert c.label == "object"
