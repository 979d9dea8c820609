"""`discover_and_track` with a scripted finder of masks: what counts as new, per round."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest

from masklet.checkpoints import load_model
from masklet.errors import InvalidInputError
from masklet.regions import mask_box
from masklet.train.synthetic import demo_config, make_video
from masklet.video.discovery import Candidate, DiscoveryOptions, discover_and_track
from masklet.video.predictor import VideoPredictor

FRAMES, EVERY = 6, 3


class ScriptedFinder:
    """Returns the candidates scripted for each frame it is called on, and records calls."""

    def __init__(self, rounds: dict[int, list[Candidate]]) -> None:
        self.rounds = rounds
        self.calls: list[int] = []

    def find(self, frame: np.ndarray, frame_idx: int) -> Sequence[Candidate]:
        self.calls.append(frame_idx)
        return self.rounds.get(frame_idx, [])


def _candidate(mask: np.ndarray, label: str = "object") -> Candidate:
    box = mask_box(mask)
    assert box is not None
    return Candidate(box, label, mask)


def _left_half(mask: np.ndarray) -> np.ndarray:
    cols = np.flatnonzero(mask.any(axis=0))
    part = mask.copy()
    part[:, cols[len(cols) // 2] :] = False
    return part


@pytest.fixture(scope="module")
def setup() -> tuple[VideoPredictor, np.ndarray, np.ndarray]:
    video = make_video(0, demo_config(24, (256, 192)))
    return VideoPredictor(load_model("masklet-nano-synthetic")), video.frames, video.masks


def test_masked_candidates_new_only_where_nothing_covers_them(
    setup: tuple[VideoPredictor, np.ndarray, np.ndarray],
) -> None:
    predictor, frames, masks = setup
    a, b = masks[:, 0], masks[:, 1]  # [T, H, W] the two objects
    finder = ScriptedFinder(
        {
            # round 1: object a, then a part of it (covered by a: skipped)
            0: [_candidate(a[0]), _candidate(_left_half(a[0]))],
            # round 2: a again (tracked: skipped) and b, new
            EVERY: [_candidate(a[EVERY]), _candidate(b[EVERY], "thing")],
        }
    )
    session = predictor.init_state(frames[:FRAMES])
    results = list(discover_and_track(predictor, session, finder, DiscoveryOptions(every=EVERY)))
    assert finder.calls == [0, EVERY]
    assert [r.obj_ids for r in results] == [[1]] * EVERY + [[1, 2]] * (FRAMES - EVERY)
    assert session.names == {1: "object_1", 2: "thing_1"}
    # prompted with the candidate's mask on the frame it was found
    found = results[EVERY].masks()[2]
    assert (found & b[EVERY]).sum() / (found | b[EVERY]).sum() > 0.8


def test_max_objects_and_max_covered(
    setup: tuple[VideoPredictor, np.ndarray, np.ndarray],
) -> None:
    predictor, frames, masks = setup
    a, b = masks[:, 0], masks[:, 1]
    rounds = {0: [_candidate(a[0]), _candidate(b[0])]}
    session = predictor.init_state(frames[:2])
    options = DiscoveryOptions(max_objects=1)
    results = list(discover_and_track(predictor, session, ScriptedFinder(rounds), options))
    assert [r.obj_ids for r in results] == [[1], [1]]
    # max_covered=0: a part of a found object is never new, however small the overlap
    rounds = {0: [_candidate(a[0]), _candidate(a[0] | b[0])]}
    session = predictor.init_state(frames[:1])
    options = DiscoveryOptions(max_covered=0.0)
    results = list(discover_and_track(predictor, session, ScriptedFinder(rounds), options))
    assert results[0].obj_ids == [1]


@pytest.mark.parametrize(
    "options, match",
    [
        (dict(every=0), "every"),
        (dict(new_object_iou=0.0), "new_object_iou"),
        (dict(max_covered=1.0), "max_covered"),
        (dict(max_objects=0), "max_objects"),
    ],
)
def test_bad_options_name_the_problem(options: dict[str, float], match: str) -> None:
    with pytest.raises(InvalidInputError, match=match):
        DiscoveryOptions(**options)  # type: ignore[arg-type]
