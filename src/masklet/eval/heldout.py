"""Held-out checks of a model on synthetic videos: the numbers the nano model card reports.

- the IoU of the mask one click gives on the first frame (tracking starts from it);
- J&F with one click per object on the first frame (DAVIS protocol: first and last frame not
  scored), and with one click on the last frame tracked backward, on the same objects;
- recovery after full occlusion: IoU within a few frames of the object reappearing;
- correction: one click on the worst tracked frame, and that frame's IoU before and after.

Run `python -m masklet.eval.heldout --model masklet-nano-synthetic` to print them.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from scipy import ndimage

from masklet.eval.davis import EvalResult, ObjectScore, evaluate_arrays
from masklet.eval.metrics import region_similarity
from masklet.modeling.sam2 import SAM2Model
from masklet.train.synthetic import (
    HELDOUT_SEED_BASE,
    SyntheticConfig,
    SyntheticVideo,
    click_point,
    make_video,
)
from masklet.video.predictor import VideoPredictor
from masklet.video.session import VideoSession

MIN_OBJECT_PIXELS = 30  # objects smaller than this on the prompted frame are not scored
RECOVERY_WINDOW = 3  # frames after reappearing in which the object must be found again


@dataclass
class HeldoutReport:
    """forward: one click on frame 0; backward: one click on the last frame, tracked back;
    forward_same: forward scores of the objects the backward run scores (for comparison)."""

    forward: EvalResult
    backward: EvalResult
    forward_same: EvalResult
    recoveries: list[float] = field(default_factory=list)  # best IoU after each reappearance
    prompted: list[float] = field(default_factory=list)  # IoU on frame 0 right after the click
    corrections: list[tuple[float, float]] = field(default_factory=list)  # (before, after)

    def summary(self) -> str:
        rec = np.array(self.recoveries)
        gains = [after - before for before, after in self.corrections]
        lines = [
            f"one click on frame 0: mean IoU {np.mean(self.prompted) if self.prompted else 0:.3f}"
            " on that frame (not scored in J&F; tracking starts from it)",
            f"forward  J&F {self.forward.jf_mean:.3f}  (J {self.forward.j_mean:.3f}, "
            f"F {self.forward.f_mean:.3f}, {len(self.forward.objects)} objects)",
            f"backward J&F {self.backward.jf_mean:.3f}  (J {self.backward.j_mean:.3f}, "
            f"F {self.backward.f_mean:.3f}); forward on the same objects "
            f"{self.forward_same.jf_mean:.3f}",
            f"occlusion: {int((rec >= 0.7).sum())}/{len(rec)} objects found again "
            f"(IoU >= 0.7 within {RECOVERY_WINDOW} frames); mean best IoU "
            f"{rec.mean() if len(rec) else float('nan'):.3f}",
            f"correction: {sum(g > 0 for g in gains)}/{len(gains)} clicks raised the frame's "
            f"IoU; mean gain {np.mean(gains) if gains else float('nan'):+.3f}",
        ]
        return "\n".join(lines)


def _track(
    predictor: VideoPredictor, video: SyntheticVideo, objects: Sequence[int], frame: int,
    reverse: bool,
) -> tuple[np.ndarray, np.ndarray, VideoSession]:  # fmt: skip
    """One click on `frame` for each of `objects` (indices into video.masks), tracked in one
    direction: (masks [T, K, H, W], the masks [K, H, W] the clicks gave, the session)."""
    session = predictor.init_state(video.frames)
    t, _, h, w = video.masks.shape
    pred = np.zeros((t, len(objects), h, w), bool)
    for j, k in enumerate(objects):
        x, y = click_point(video.masks[frame, k])
        _, ids, logits = predictor.add_new_points_or_box(
            session, frame, k + 1, points=[[x, y]], labels=[1]
        )
        pred[frame, j] = (logits[ids.index(k + 1), 0] > 0).cpu().numpy()
    prompted = pred[frame].copy()
    for f, _, logits in predictor.propagate_in_video(
        session, start_frame_idx=frame, reverse=reverse
    ):
        pred[f] = (logits[:, 0] > 0).cpu().numpy()
    return pred, prompted, session


def _visible(video: SyntheticVideo, frame: int) -> list[int]:
    return [
        k for k in range(video.masks.shape[1]) if video.masks[frame, k].sum() >= MIN_OBJECT_PIXELS
    ]


def _reappearances(gt: np.ndarray, min_gap: int) -> list[int]:
    """Frames where an object becomes visible again after >= min_gap empty frames."""
    flat = np.asarray(gt).reshape(gt.shape[0], -1)
    present = [bool(flat[t].any()) for t in range(flat.shape[0])]
    out: list[int] = []
    gap = 0
    for t, p in enumerate(present):
        if p and gap >= min_gap and t > gap:
            out.append(t)
        gap = 0 if p else gap + 1
    return out


def _correction_click(pred: np.ndarray, gt: np.ndarray) -> tuple[tuple[int, int], int]:
    """The click a user would make: inside the largest missed region (label 1) or the largest
    wrongly included region (label 0), at its most interior pixel."""
    missed, extra = gt & ~pred, pred & ~gt
    region, label = (missed, 1) if missed.sum() >= extra.sum() else (extra, 0)
    labels, n = ndimage.label(region)
    if n > 1:
        sizes = ndimage.sum(region, labels, range(1, n + 1))
        region = labels == (int(np.argmax(sizes)) + 1)
    return click_point(region), label


@torch.inference_mode()
def evaluate_heldout(
    model: SAM2Model, num_videos: int = 20, config: SyntheticConfig | None = None,
    seed_base: int = HELDOUT_SEED_BASE,
) -> HeldoutReport:  # fmt: skip
    """Run every check on `num_videos` synthetic videos with seeds never used in training."""
    cfg = config or SyntheticConfig(num_frames=12, occlusion_prob=0.5)
    predictor = VideoPredictor(model)
    fwd_scores: list[ObjectScore] = []
    bwd_scores: list[ObjectScore] = []
    same_scores: list[ObjectScore] = []
    report = HeldoutReport(EvalResult(()), EvalResult(()), EvalResult(()))
    for i in range(num_videos):
        video = make_video(seed_base + i, cfg)
        last = video.masks.shape[0] - 1
        both = [k for k in _visible(video, 0) if k in _visible(video, last)]
        first = _visible(video, 0)
        if not first:
            continue
        pred, prompted, session = _track(predictor, video, first, 0, reverse=False)
        gt = video.masks[:, first]
        report.prompted += [region_similarity(prompted[j], gt[0, j]) for j in range(len(first))]
        fwd_scores += evaluate_arrays(
            pred, gt, [k + 1 for k in first], f"seed{seed_base + i}"
        ).objects
        for j, k in enumerate(first):
            for r in _reappearances(video.masks[:, k], cfg.min_occlusion_frames):
                window = range(r, min(r + RECOVERY_WINDOW, last + 1))
                report.recoveries.append(
                    max(region_similarity(pred[t, j], gt[t, j]) for t in window)
                )
        # correction on the worst frame of the first object (only where it is visible)
        ious = [
            region_similarity(pred[t, 0], gt[t, 0]) if gt[t, 0].any() else 1.0
            for t in range(1, last + 1)
        ]
        worst = 1 + int(np.argmin(ious))
        if ious[worst - 1] < 1.0:
            (x, y), label = _correction_click(pred[worst, 0], gt[worst, 0])
            _, ids, logits = predictor.add_new_points_or_box(
                session,
                worst,
                first[0] + 1,
                points=[[x, y]],
                labels=[label],
                clear_old_points=False,
            )
            after = (logits[ids.index(first[0] + 1), 0] > 0).cpu().numpy()
            report.corrections.append((ious[worst - 1], region_similarity(after, gt[worst, 0])))
        if both:
            fwd_both = pred[:, [first.index(k) for k in both]]
            bwd, _, _ = _track(predictor, video, both, last, reverse=True)
            ids = [k + 1 for k in both]
            seq = f"seed{seed_base + i}"
            bwd_scores += evaluate_arrays(bwd, video.masks[:, both], ids, seq).objects
            same_scores += evaluate_arrays(fwd_both, video.masks[:, both], ids, seq).objects
    report.forward = EvalResult(tuple(fwd_scores))
    report.backward = EvalResult(tuple(bwd_scores))
    report.forward_same = EvalResult(tuple(same_scores))
    return report


def main(argv: Sequence[str] | None = None) -> int:
    from masklet.checkpoints import load_model

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--model", default="masklet-nano-synthetic")
    parser.add_argument("--videos", type=int, default=20)
    args = parser.parse_args(argv)
    report = evaluate_heldout(load_model(args.model), args.videos)  # type: ignore[arg-type]
    print(report.summary())
    print(report.forward.table())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
