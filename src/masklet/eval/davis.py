"""DAVIS 2017 semi-supervised evaluation of DAVIS-layout folders or in-memory arrays.

Protocol (as davis2017-evaluation):
- the objects of a sequence are the ids 1..N, N the largest id of its first annotated frame
  (255 = void counts as background); a prediction names objects by the same pixel values. An
  id missing from the first annotation (a gap, e.g. {1, 3}) is still scored, against an empty
  ground truth: it counts as perfect (J = F = 1) where the prediction has no pixel of it. This
  is `objects="davis"`, the default; `objects="present"` scores only the ids present on the
  first annotation (masklet's behaviour before, not comparable with published numbers);
- the first frame (given as the prompt) and the last frame are not scored;
- per object, J-mean and F-mean are means over the scored frames;
- global scores are means over all objects of all sequences (not over sequences), and
  J&F = (J + F) / 2.

Folder layout: `<root>/<sequence>/<frame>.png` id-valued (palette or grayscale) PNGs; a
DAVIS root holding `Annotations/` (or `Annotations/480p/`) is accepted as well. A scored frame
without a prediction file is an error (as DAVIS); an object absent from a prediction is an
empty mask.
"""

from __future__ import annotations

import csv
import dataclasses
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from masklet.errors import InvalidInputError
from masklet.eval.metrics import DAVIS_BOUND_TH, boundary_f_measure, region_similarity
from masklet.io.atomic import atomic_output
from masklet.io.masks import read_palette_png

VOID_ID = (
    255  # DAVIS marks pixels to ignore with 255; the 2017 evaluation scores them as background
)
_ANNOTATIONS = "Annotations"
OBJECT_POLICIES = ("davis", "present")
_POLICY_TEXT = {
    "davis": "objects 1..max id of each first annotation, absent ids perfect when not "
    "predicted (DAVIS 2017 protocol)",
    "present": "objects = ids present on each first annotation (not the DAVIS 2017 protocol)",
}
_DAVIS_RESOLUTION = "480p"


@dataclass(frozen=True)
class ObjectScore:
    """Per-frame J and F of one object on the scored frames of one sequence."""

    sequence: str
    obj_id: int
    j_per_frame: tuple[float, ...]
    f_per_frame: tuple[float, ...]
    on_first_frame: bool = True  # False: an id in a gap of the first annotation's ids

    @property
    def j_mean(self) -> float:
        return float(np.mean(self.j_per_frame)) if self.j_per_frame else math.nan

    @property
    def f_mean(self) -> float:
        return float(np.mean(self.f_per_frame)) if self.f_per_frame else math.nan

    @property
    def jf_mean(self) -> float:
        return (self.j_mean + self.f_mean) / 2


@dataclass(frozen=True)
class SequenceScore:
    """Means over the objects of one sequence."""

    sequence: str
    num_objects: int
    j_mean: float
    f_mean: float

    @property
    def jf_mean(self) -> float:
        return (self.j_mean + self.f_mean) / 2


def _mean(values: Sequence[float]) -> float:
    return float(np.mean(values)) if len(values) else math.nan


@dataclass(frozen=True)
class EvalResult:
    """Scores of every object; sequence and global means are derived from them."""

    objects: tuple[ObjectScore, ...]
    policy: str = "davis"  # which objects were scored: one of OBJECT_POLICIES

    @property
    def j_mean(self) -> float:
        """Global J-mean: mean over all objects (DAVIS weighs objects, not sequences)."""
        return _mean([o.j_mean for o in self.objects])

    @property
    def f_mean(self) -> float:
        return _mean([o.f_mean for o in self.objects])

    @property
    def jf_mean(self) -> float:
        return (self.j_mean + self.f_mean) / 2

    @property
    def sequences(self) -> tuple[SequenceScore, ...]:
        names = list(dict.fromkeys(o.sequence for o in self.objects))  # first-seen order
        out = []
        for name in names:
            objs = [o for o in self.objects if o.sequence == name]
            out.append(
                SequenceScore(
                    name,
                    len(objs),
                    _mean([o.j_mean for o in objs]),
                    _mean([o.f_mean for o in objs]),
                )
            )
        return tuple(out)

    def table(self) -> str:
        """A plain-text table: the global means, then each sequence and its objects."""
        width = max([len("sequence"), *(len(o.sequence) for o in self.objects)])
        lines = [
            f"global ({len(self.objects)} objects in {len(self.sequences)} sequences): "
            f"J&F {self.jf_mean:.4f}  J {self.j_mean:.4f}  F {self.f_mean:.4f}",
            f"scored: {_POLICY_TEXT.get(self.policy, self.policy)}",
            f"{'sequence':<{width}}  {'object':>6}  {'J&F':>6}  {'J':>6}  {'F':>6}",
        ]
        for seq in self.sequences:
            lines.append(
                f"{seq.sequence:<{width}}  {'all':>6}  {seq.jf_mean:6.4f}  {seq.j_mean:6.4f}  "
                f"{seq.f_mean:6.4f}"
            )
            for o in self.objects:
                if o.sequence == seq.sequence:
                    absent = "" if o.on_first_frame else "  (not on the first annotation)"
                    lines.append(
                        f"{'':<{width}}  {o.obj_id:>6}  {o.jf_mean:6.4f}  {o.j_mean:6.4f}  "
                        f"{o.f_mean:6.4f}{absent}"
                    )
        return "\n".join(lines)

    def write_csv(self, path: str | os.PathLike[str]) -> None:
        """Write one row per object, per sequence (`object` = all) and a `global` row."""
        rows: list[list[str]] = [["sequence", "object", "frames", "J&F", "J", "F"]]

        def fmt(x: float) -> str:
            return f"{x:.6f}"

        rows.append(["global", "all", "", fmt(self.jf_mean), fmt(self.j_mean), fmt(self.f_mean)])
        for seq in self.sequences:
            rows.append(
                [seq.sequence, "all", "", fmt(seq.jf_mean), fmt(seq.j_mean), fmt(seq.f_mean)]
            )
            for o in self.objects:
                if o.sequence == seq.sequence:
                    rows.append(
                        [
                            o.sequence,
                            str(o.obj_id),
                            str(len(o.j_per_frame)),
                            fmt(o.jf_mean),
                            fmt(o.j_mean),
                            fmt(o.f_mean),
                        ]
                    )
        with atomic_output(path) as tmp, open(tmp, "w", newline="") as f:
            csv.writer(f).writerows(rows)


def _score_object(
    sequence: str,
    obj_id: int,
    pred_thw: Sequence[np.ndarray] | np.ndarray,
    gt_thw: Sequence[np.ndarray] | np.ndarray,
    bound_th: float,
) -> ObjectScore:
    """J and F of one object on each of the T frames given (`[H, W]` masks each)."""
    j = tuple(region_similarity(p, g) for p, g in zip(pred_thw, gt_thw))
    f = tuple(boundary_f_measure(p, g, bound_th) for p, g in zip(pred_thw, gt_thw))
    return ObjectScore(sequence, obj_id, j, f)


def evaluate_arrays(
    pred: np.ndarray,
    gt: np.ndarray,
    obj_ids: Sequence[int] | None = None,
    sequence: str = "video",
    exclude_first_last: bool = True,
    bound_th: float = DAVIS_BOUND_TH,
) -> EvalResult:
    """Score in-memory masks of one video.

    Arguments:
      pred: `[T, K, H, W]` predicted masks (nonzero = object).
      gt: `[T, K, H, W]` ground-truth masks, same objects in the same order.
      obj_ids: K ids to report (default 1..K).
      exclude_first_last: drop frames 0 and T-1 as the DAVIS semi-supervised protocol does
        (needs T >= 3); False scores every frame.
    """
    p, g = np.asarray(pred), np.asarray(gt)
    if p.ndim != 4 or p.shape != g.shape:
        raise InvalidInputError(
            f"expected predicted and ground-truth masks of the same shape [T, K, H, W], got "
            f"{p.shape} and {g.shape}"
        )
    ids = list(obj_ids) if obj_ids is not None else list(range(1, p.shape[1] + 1))
    if len(ids) != p.shape[1]:
        raise InvalidInputError(f"got {len(ids)} object ids for {p.shape[1]} objects")
    if exclude_first_last:
        if p.shape[0] < 3:
            raise InvalidInputError(
                f"the DAVIS protocol scores frames 1..T-2, so it needs at least 3 frames; got "
                f"{p.shape[0]}; pass exclude_first_last=False to score every frame"
            )
        p, g = p[1:-1], g[1:-1]
    p, g = p.astype(bool, copy=False), g.astype(bool, copy=False)
    objects = tuple(
        _score_object(sequence, int(obj_id), p[:, k], g[:, k], bound_th)
        for k, obj_id in enumerate(ids)
    )
    return EvalResult(objects)


def _mask_dir(root: Path) -> Path:
    """The folder holding sequence folders: `root`, `root/Annotations` or `.../480p`."""
    if not root.is_dir():
        raise InvalidInputError(f"{root} is not a folder; pass a folder of sequence folders")
    if (root / _ANNOTATIONS).is_dir():
        root = root / _ANNOTATIONS
        if (root / _DAVIS_RESOLUTION).is_dir():
            root = root / _DAVIS_RESOLUTION
    return root


def _read_ids(path: Path) -> np.ndarray:
    if not path.is_file():
        raise InvalidInputError(
            f"missing prediction {path}: every scored frame needs a PNG of the same name as its "
            "annotation (DAVIS semi-supervised: all frames but the first and the last)"
        )
    return read_palette_png(path)


def _evaluate_sequence(
    name: str, pred_dir: Path, gt_dir: Path, bound_th: float, objects: str
) -> tuple[ObjectScore, ...]:
    gt_files = sorted(gt_dir.glob("*.png"))
    if len(gt_files) < 3:
        raise InvalidInputError(
            f"sequence {name!r} has {len(gt_files)} annotation PNGs in {gt_dir}; the DAVIS "
            "protocol needs at least 3 (the first and the last are not scored)"
        )
    if not pred_dir.is_dir():
        raise InvalidInputError(f"no predictions for sequence {name!r}: {pred_dir} is missing")
    first = read_palette_png(gt_files[0])
    present = [int(i) for i in np.unique(first) if i not in (0, VOID_ID)]
    ids = scored_ids(present, objects)
    gt_list, pred_list = [], []
    for gt_file in gt_files[1:-1]:
        gt_list.append(read_palette_png(gt_file))
        pred_list.append(_read_ids(pred_dir / gt_file.name))
        if pred_list[-1].shape != gt_list[-1].shape:
            raise InvalidInputError(
                f"prediction {pred_dir / gt_file.name} has size {pred_list[-1].shape} but its "
                f"annotation {gt_list[-1].shape} (height, width); write predictions at the "
                "annotation size"
            )
    unknown = sorted(
        set(np.unique(np.concatenate([p.ravel() for p in pred_list])).tolist()) - {0, *ids}
    )
    if unknown:
        raise InvalidInputError(
            f"sequence {name!r}: predictions hold object ids {unknown} that are not scored "
            f"(the first annotation has ids {present}, so the objects are {ids}); "
            "use the annotation's ids"
        )
    return tuple(
        dataclasses.replace(
            _score_object(
                name,
                obj_id,
                [p == obj_id for p in pred_list],
                [g == obj_id for g in gt_list],
                bound_th,
            ),
            on_first_frame=obj_id in present,
        )
        for obj_id in ids
    )


def scored_ids(present: Sequence[int], objects: str = "davis") -> list[int]:
    """The object ids scored for a first annotation holding the ids `present`.

    `"davis"`: 1..max(present), as davis2017-evaluation (which builds one mask per id up to
    the largest); `"present"`: only the ids present.
    """
    if objects not in OBJECT_POLICIES:
        raise InvalidInputError(
            f"objects must be one of {', '.join(OBJECT_POLICIES)}, got {objects!r}"
        )
    if objects == "present" or not present:
        return sorted(present)
    return list(range(1, max(present) + 1))


def evaluate(
    pred_root: str | os.PathLike[str],
    gt_root: str | os.PathLike[str],
    sequences: Sequence[str] | None = None,
    bound_th: float = DAVIS_BOUND_TH,
    objects: str = "davis",
) -> EvalResult:
    """Score the predictions under `pred_root` against the annotations under `gt_root`.

    Arguments:
      sequences: names to score (default: every sequence folder of `gt_root`, sorted).
      objects: "davis" (ids 1..max of each first annotation, the DAVIS 2017 protocol) or
        "present" (only the ids on the first annotation); see the module docstring.
    """
    scored_ids([], objects)  # an unknown policy fails before any file is read
    gt_dir = _mask_dir(Path(gt_root))
    pred_dir = _mask_dir(Path(pred_root))
    if sequences is None:
        names = sorted(p.name for p in gt_dir.iterdir() if p.is_dir())
        if not names:
            raise InvalidInputError(f"{gt_dir} has no sequence folders of annotation PNGs")
    else:
        names = list(sequences)
        missing = [n for n in names if not (gt_dir / n).is_dir()]
        if missing:
            raise InvalidInputError(f"no annotations for sequences {missing} in {gt_dir}")
    scores: list[ObjectScore] = []
    for name in names:
        scores.extend(_evaluate_sequence(name, pred_dir / name, gt_dir / name, bound_th, objects))
    return EvalResult(tuple(scores), policy=objects)
