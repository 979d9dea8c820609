"""DAVIS semi-supervised evaluation on arrays and on folders of palette PNGs."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from masklet.errors import InvalidInputError
from masklet.eval import evaluate, evaluate_arrays
from masklet.io.masks import write_palette_png
from masklet.train.synthetic import SyntheticConfig, make_video, write_davis


def square(top: int, left: int, size: int = 4) -> np.ndarray:
    mask = np.zeros((10, 10), dtype=bool)
    mask[top : top + size, left : left + size] = True
    return mask


def two_objects(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    return np.stack([first, second])  # [K, H, W]


def arrays() -> tuple[np.ndarray, np.ndarray]:
    """3 frames, 2 objects: only frame 1 is scored.

    Object 1 is predicted one column to the right (J = 12 / 20, F = 1: every boundary pixel is
    within the 1-pixel tolerance of a 10x10 image); object 2 is missed (J = F = 0).
    """
    gt_frame = two_objects(square(1, 1), square(6, 6))
    gt = np.stack([gt_frame] * 3)  # [T, K, H, W]
    pred = np.zeros_like(gt)
    pred[1, 0] = square(1, 2)
    pred[0] = pred[2] = ~gt[0]  # first and last frames are not scored: garbage is fine
    return pred, gt


def test_evaluate_arrays_hand_computed() -> None:
    pred, gt = arrays()
    result = evaluate_arrays(pred, gt)
    first, second = result.objects
    assert first.j_per_frame == pytest.approx((12 / 20,)) and first.f_per_frame == (1.0,)
    assert second.j_mean == 0.0 and second.f_mean == 0.0
    assert result.j_mean == pytest.approx(0.3)
    assert result.f_mean == pytest.approx(0.5)
    assert result.jf_mean == pytest.approx(0.4)
    (seq,) = result.sequences
    assert seq.num_objects == 2 and seq.jf_mean == pytest.approx(0.4)


def test_evaluate_arrays_all_frames_and_ids() -> None:
    pred, gt = arrays()
    result = evaluate_arrays(gt, gt, obj_ids=[4, 9], exclude_first_last=False)
    assert [o.obj_id for o in result.objects] == [4, 9]
    assert all(len(o.j_per_frame) == 3 for o in result.objects)
    assert result.jf_mean == 1.0
    with pytest.raises(InvalidInputError, match="at least 3 frames"):
        evaluate_arrays(pred[:2], gt[:2])
    with pytest.raises(InvalidInputError, match="same shape"):
        evaluate_arrays(pred[:, :1], gt)


def write_sequence(root: Path, name: str, id_maps: list[np.ndarray]) -> None:
    for t, ids in enumerate(id_maps):
        write_palette_png(root / name / f"{t:05d}.png", ids.astype(np.uint8))


def id_map(*masks: np.ndarray) -> np.ndarray:
    out = np.zeros((10, 10), dtype=np.uint8)
    for obj_id, mask in enumerate(masks, start=1):
        out[mask] = obj_id
    return out


@pytest.fixture
def davis(tmp_path: Path) -> tuple[Path, Path]:
    """Sequence `a`: one object predicted perfectly. Sequence `b`: two objects, both missed
    on the scored frames 1..2 (frames 0 and 3 are not scored)."""
    gt, pred = tmp_path / "gt", tmp_path / "pred"
    a = id_map(square(2, 2))
    write_sequence(gt, "a", [a] * 4)
    write_sequence(pred, "a", [a] * 4)
    b = id_map(square(0, 0), square(5, 5))
    write_sequence(gt, "b", [b] * 4)
    write_sequence(pred, "b", [b, np.zeros_like(b), np.zeros_like(b), b])
    return pred, gt


def test_evaluate_folders_global_mean_is_over_objects(davis: tuple[Path, Path]) -> None:
    pred, gt = davis
    result = evaluate(pred, gt)
    assert [(o.sequence, o.obj_id) for o in result.objects] == [("a", 1), ("b", 1), ("b", 2)]
    assert all(len(o.j_per_frame) == 2 for o in result.objects)  # 4 frames minus first, last
    assert [s.jf_mean for s in result.sequences] == [1.0, 0.0]
    assert result.j_mean == pytest.approx(1 / 3)  # not 1/2, the mean over sequences
    assert evaluate(pred, gt, sequences=["a"]).jf_mean == 1.0


def test_table_and_csv(davis: tuple[Path, Path], tmp_path: Path) -> None:
    result = evaluate(*davis)
    table = result.table()
    assert table.splitlines()[0].startswith("global (3 objects in 2 sequences): J&F 0.3333")
    assert any(line.split()[:2] == ["b", "all"] for line in table.splitlines())
    result.write_csv(tmp_path / "out" / "scores.csv")
    with open(tmp_path / "out" / "scores.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert rows[0]["sequence"] == "global" and float(rows[0]["J"]) == pytest.approx(1 / 3)
    per_object = [r for r in rows if r["object"] != "all"]
    assert [(r["sequence"], r["object"], r["frames"]) for r in per_object] == [
        ("a", "1", "2"),
        ("b", "1", "2"),
        ("b", "2", "2"),
    ]


def test_objects_come_from_the_first_frame_and_void_is_background(tmp_path: Path) -> None:
    gt, pred = tmp_path / "gt", tmp_path / "pred"
    first = id_map(square(2, 2))
    later = first.copy()
    later[8:, 8:] = 2  # an object that is not in the first frame is not scored
    later[0, :] = 255  # void pixels count as background
    write_sequence(gt, "s", [first, later, later])
    write_sequence(pred, "s", [first, first, first])
    result = evaluate(pred, gt)
    assert [o.obj_id for o in result.objects] == [1]
    assert result.jf_mean == 1.0


def test_davis_root_layout_and_synthetic_round_trip(tmp_path: Path) -> None:
    video = make_video(2, SyntheticConfig(height=32, width=40, num_frames=5))
    write_davis([video], tmp_path / "davis", names=["clip"])
    # A DAVIS root (with Annotations/) works for both sides; identical masks score 1.
    result = evaluate(tmp_path / "davis", tmp_path / "davis" / "Annotations")
    assert len(result.objects) == len(video.obj_ids)
    assert result.jf_mean == 1.0


def test_missing_prediction_is_an_error_naming_the_file(davis: tuple[Path, Path]) -> None:
    pred, gt = davis
    (pred / "b" / "00002.png").unlink()
    with pytest.raises(InvalidInputError, match=r"missing prediction .*b/00002\.png"):
        evaluate(pred, gt)
    (pred / "b" / "00003.png").unlink()  # the last frame is not scored: not needed
    with pytest.raises(InvalidInputError, match="00002"):
        evaluate(pred, gt)


def test_bad_inputs_are_typed_errors(davis: tuple[Path, Path], tmp_path: Path) -> None:
    pred, gt = davis
    with pytest.raises(InvalidInputError, match="not a folder"):
        evaluate(tmp_path / "nowhere", gt)
    with pytest.raises(InvalidInputError, match="no annotations for sequences"):
        evaluate(pred, gt, sequences=["zzz"])
    write_palette_png(pred / "a" / "00001.png", id_map(square(2, 2), square(6, 6)))
    with pytest.raises(InvalidInputError, match=r"object ids \[2\]"):
        evaluate(pred, gt, sequences=["a"])
    write_palette_png(pred / "a" / "00001.png", np.zeros((8, 10), dtype=np.uint8))
    with pytest.raises(InvalidInputError, match="size"):
        evaluate(pred, gt, sequences=["a"])
    write_sequence(gt, "short", [id_map(square(2, 2))] * 2)
    with pytest.raises(InvalidInputError, match="at least 3"):
        evaluate(pred, gt, sequences=["short"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(InvalidInputError, match="no sequence folders"):
        evaluate(pred, tmp_path / "empty")


def _gap_sequence(tmp_path: Path, predicted_gap: bool = False) -> tuple[Path, Path]:
    """First annotation ids {1, 3} (no 2); object 1 predicted exactly, object 3 missed."""
    gt, pred = tmp_path / "gt", tmp_path / "pred"
    annotation = np.zeros((10, 10), np.uint8)
    annotation[square(0, 0)] = 1
    annotation[square(6, 6)] = 3
    prediction = np.zeros_like(annotation)
    prediction[square(0, 0)] = 1
    if predicted_gap:
        prediction[square(6, 0)] = 2  # an object the annotation does not have
    write_sequence(gt, "gap", [annotation] * 3)
    write_sequence(pred, "gap", [prediction] * 3)
    return pred, gt


def test_an_id_gap_is_scored_as_davis_2017_does(tmp_path: Path) -> None:
    # davis2017-evaluation builds masks for ids 1..max(first annotation) = 1, 2, 3; object 2
    # has an empty ground truth and no prediction: IoU and boundary F of two empty masks are 1.
    result = evaluate(*_gap_sequence(tmp_path))
    assert result.policy == "davis"
    assert [(o.obj_id, o.on_first_frame) for o in result.objects] == [
        (1, True),
        (2, False),
        (3, True),
    ]
    assert [o.j_mean for o in result.objects] == [1.0, 1.0, 0.0]
    assert [o.f_mean for o in result.objects] == [1.0, 1.0, 0.0]
    assert result.jf_mean == pytest.approx(2 / 3)
    table = result.table()
    assert "DAVIS 2017 protocol" in table and "not on the first annotation" in table


def test_present_policy_scores_only_the_first_annotations_ids(tmp_path: Path) -> None:
    result = evaluate(*_gap_sequence(tmp_path), objects="present")
    assert [o.obj_id for o in result.objects] == [1, 3]
    assert result.jf_mean == pytest.approx(1 / 2)
    assert "not the DAVIS 2017 protocol" in result.table()


def test_a_predicted_gap_id_scores_zero_and_larger_ids_are_refused(tmp_path: Path) -> None:
    pred, gt = _gap_sequence(tmp_path, predicted_gap=True)
    result = evaluate(pred, gt)
    assert [o.j_mean for o in result.objects] == [1.0, 0.0, 0.0]  # pixels where none exist
    with pytest.raises(InvalidInputError, match=r"ids \[2\] that are not scored"):
        evaluate(pred, gt, objects="present")
    beyond = np.zeros((10, 10), np.uint8)
    beyond[square(0, 0)] = 4  # davis2017-evaluation stops on an id above the largest
    write_sequence(pred, "gap", [beyond] * 3)
    with pytest.raises(InvalidInputError, match=r"ids \[4\].*objects are \[1, 2, 3\]"):
        evaluate(pred, gt)
    with pytest.raises(InvalidInputError, match="objects must be one of davis, present"):
        evaluate(pred, gt, objects="all")
