"""The loss of one training batch: SAM 2's simulated prompts, corrective clicks, tracking.

For every batch of clips: the image features of all frames are computed once; 1 to
`max_cond_frames` conditioning frames (always frame 0) get a simulated prompt (a click, a
noisy box, or the ground-truth mask), and frames prompted with clicks or boxes get
`num_correction_rounds` corrective clicks (a random 0 to that many per batch with
`random_cond_corrections`), each round re-running the SAM heads with the previous logits as
mask input; the other frames are then tracked with memory (`SAM2Model.track_step`).
With `max_frames_to_correct` above the number of conditioning frames, some tracked frames also
get corrective clicks after their tracked prediction, starting from a lone click (positive or
negative) on the tracked logits, as a user correcting a drifting frame does; they then join the
conditioning frames (SAM 2's `add_all_frames_to_correct_as_cond`).
The loss (`sam_loss`) is computed on the high-resolution multimask logits ([N, M, S, S], the
model's input size, as SAM 2 does) of every prediction step and summed over steps and frames.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor

from masklet.errors import InvalidInputError
from masklet.modeling.logits import LOGIT_CLAMP
from masklet.modeling.outputs import FrameOutput, ImageFeatures, SamHeadOutput
from masklet.modeling.sam2 import SAM2Model
from masklet.train.config import TrainConfig
from masklet.train.data import Clip
from masklet.train.loss import LossTerms, sam_loss, zero_terms
from masklet.train.prompting import (
    Clicks,
    PromptKind,
    box_prompt,
    choose_prompt_kind,
    click_from_errors,
    first_click,
)
from masklet.transforms import normalize, uint8_to_unit

# On a corrected tracked frame the tracked logits fed back with the clicks are clamped as the
# video predictor clamps them, so an object called hidden (NO_OBJECT_SCORE logits) looks the
# same in training and in use. (Conditioning frames feed them unclamped, as SAM 2's training
# does.)
MASK_INPUT_CLAMP = LOGIT_CLAMP


def _normalize(frames: np.ndarray, device: torch.device) -> Tensor:
    """[N, S, S, 3] uint8 -> [N, 3, S, S] float, normalised as the model's preprocessing."""
    x = torch.from_numpy(np.require(frames, requirements=["C", "W"])).to(device)
    return normalize(uint8_to_unit(x.permute(0, 3, 1, 2)))  # [N, S, S, 3] -> [N, 3, S, S]


def _batch(
    clips: list[Clip], config: TrainConfig, rng: np.random.Generator, device: torch.device
) -> tuple[Tensor, Tensor, Tensor, int]:
    """Stack clips: (images [C*T, 3, S, S], gt [T, N, 1, S, S] bool, clip of each object [N],
    T). Up to `max_objects` objects per clip, preferring those visible on frame 0."""
    t = min(config.num_frames, *(c.num_frames for c in clips))
    gts, owners = [], []
    for i, clip in enumerate(clips):
        visible = np.flatnonzero(clip.masks[0].reshape(clip.num_objects, -1).any(axis=1))
        pool = visible if visible.size else np.arange(clip.num_objects)
        chosen = np.sort(rng.permutation(pool)[: config.max_objects])
        gts.append(clip.masks[:t, chosen])  # [T, k, S, S]
        owners += [i] * len(chosen)
    if not owners:
        raise InvalidInputError("the batch has no object; every clip needs at least one mask")
    images = _normalize(np.concatenate([c.frames[:t] for c in clips]), device)
    gt = torch.from_numpy(np.concatenate(gts, axis=1)).to(device)[:, :, None]  # [T, N, 1, S, S]
    return images, gt, torch.tensor(owners, device=device), t


@dataclass
class _Batch:
    """What every frame of one batch shares: the model, the settings, the random stream and
    the memory bank built so far (outputs of conditioning and of tracked frames)."""

    model: SAM2Model
    config: TrainConfig
    gen: torch.Generator
    num_frames: int
    cond_outputs: dict[int, FrameOutput] = field(default_factory=dict)
    non_cond_outputs: dict[int, FrameOutput] = field(default_factory=dict)

    def memory(self, *, conditioning: bool) -> dict[str, Any]:
        """The memory arguments of `track_step` / `condition_on_memory` for a frame: a
        conditioning frame sees only the conditioning frames before it."""
        return {
            "is_init_cond_frame": conditioning,
            "cond_outputs": self.cond_outputs,
            "non_cond_outputs": {} if conditioning else self.non_cond_outputs,
            "num_frames": self.num_frames,
        }

    def loss(self, sam: SamHeadOutput, gt: Tensor) -> LossTerms:
        """The loss of one prediction against gt [N, 1, S, S]."""
        return sam_loss(
            sam.high_res_multimasks,
            sam.ious,
            sam.object_score_logits,
            gt,
            weights=self.config.loss,
        )


@dataclass(frozen=True)
class _Frame:
    """One frame of the batch: its index, features and ground truth [N, 1, S, S]; without
    `need_memory` (no later frame reads it) its memory is not encoded."""

    idx: int
    feats: ImageFeatures
    gt: Tensor
    need_memory: bool

    def high_res(self) -> list[Tensor] | None:
        maps = self.feats.maps()
        return maps[:-1] if len(maps) > 1 else None


def _prompted_frame(
    batch: _Batch, frame: _Frame, kind: PromptKind, rounds: int
) -> tuple[FrameOutput, LossTerms]:
    """A conditioning frame [N objects]: the prompt, then `rounds` corrective clicks on the
    errors."""
    model, gen = batch.model, batch.gen
    if kind is PromptKind.MASK:
        out, sam = model.track_step(
            frame.idx,
            frame.feats,
            **batch.memory(conditioning=True),
            mask_inputs=frame.gt.float(),
            run_memory_encoder=frame.need_memory,
        )
        return out, batch.loss(sam, frame.gt)
    clicks: Clicks = (
        box_prompt(frame.gt, gen)
        if kind is PromptKind.BOX
        else first_click(frame.gt, gen, batch.config.prob_center_click)
    )
    pix = model.condition_on_memory(
        frame.idx,
        frame.feats,
        **batch.memory(conditioning=True),
    )
    points = clicks.as_inputs()
    sam = model.forward_sam_heads(
        pix,
        point_inputs=points,
        high_res_features=frame.high_res(),
        multimask_output=model.use_multimask(True, points),
    )
    terms = batch.loss(sam, frame.gt)
    sam, more = _correct(
        batch, frame, pix, clicks=clicks, sam=sam, is_init_cond_frame=True, rounds=rounds
    )
    return _with_memory(model, frame, sam), terms + more


def _correct(
    batch: _Batch,
    frame: _Frame,
    pix: Tensor,
    *,
    clicks: Clicks | None,
    sam: SamHeadOutput,
    is_init_cond_frame: bool,
    rounds: int,
    clamp: float | None = None,
) -> tuple[SamHeadOutput, LossTerms]:
    """`rounds` corrective clicks on one frame [N objects] with memory-conditioned features
    `pix`: each from the errors of the previous prediction `sam`, added to `clicks` (None: the
    first click is alone), with the previous logits (clamped to +-`clamp` if given) as the
    mask input. Returns the last prediction and the loss of every round."""
    config, gen, gt = batch.config, batch.gen, frame.gt
    terms = zero_terms(gt.device)
    for _ in range(rounds):
        from_gt = float(torch.rand((), generator=gen)) < config.prob_click_from_gt
        center = float(torch.rand((), generator=gen)) < config.prob_center_click
        pred = None if from_gt else sam.high_res_masks > 0
        click = click_from_errors(gt, pred, gen, center=center)
        clicks = click if clicks is None else clicks.append(click)
        mask_inputs = sam.low_res_masks
        if clamp is not None:
            mask_inputs = mask_inputs.clamp(-clamp, clamp)
        points = clicks.as_inputs()
        sam = batch.model.forward_sam_heads(
            pix,
            point_inputs=points,
            mask_inputs=mask_inputs,
            high_res_features=frame.high_res(),
            multimask_output=batch.model.use_multimask(is_init_cond_frame, points),
        )
        terms = terms + batch.loss(sam, gt)
    return sam, terms


def _with_memory(model: SAM2Model, frame: _Frame, sam: SamHeadOutput) -> FrameOutput:
    """The frame output of a click-prompted prediction, with its memory encoded if the frame
    needs it."""
    out = FrameOutput(
        pred_masks=sam.low_res_masks,
        object_pointer=sam.object_pointer,
        object_score_logits=sam.object_score_logits,
        ious=sam.ious,
    )
    if frame.need_memory and model.config.num_maskmem > 0:
        out.memory_features, out.memory_pos = model.encode_memory(
            frame.feats, sam.high_res_masks, sam.object_score_logits, is_mask_from_points=True
        )
    return out


def _corrected_tracked_frame(batch: _Batch, frame: _Frame) -> tuple[FrameOutput, LossTerms]:
    """A tracked frame [N objects] that the user corrects: the tracked prediction, then
    corrective clicks on its errors, with the same memory-conditioned features."""
    model = batch.model
    pix = model.condition_on_memory(
        frame.idx,
        frame.feats,
        **batch.memory(conditioning=False),
    )
    sam = model.forward_sam_heads(
        pix, high_res_features=frame.high_res(), multimask_output=model.use_multimask(False, None)
    )
    terms = batch.loss(sam, frame.gt)
    sam, more = _correct(
        batch,
        frame,
        pix,
        clicks=None,
        sam=sam,
        is_init_cond_frame=False,
        rounds=batch.config.num_correction_rounds,
        clamp=MASK_INPUT_CLAMP,
    )
    return _with_memory(model, frame, sam), terms + more


def _tracked_frame(batch: _Batch, frame: _Frame) -> tuple[FrameOutput, LossTerms]:
    """A frame tracked from the memory alone [N objects]."""
    out, sam = batch.model.track_step(
        frame.idx,
        frame.feats,
        **batch.memory(conditioning=False),
        run_memory_encoder=frame.need_memory,
    )
    return out, batch.loss(sam, frame.gt)


def clip_loss(
    model: SAM2Model,
    clips: list[Clip],
    config: TrainConfig,
    *,
    rng: np.random.Generator,
    gen: torch.Generator,
) -> LossTerms:
    """Loss of one batch of clips: prompt the conditioning frames, track the rest. `rng`
    picks the objects of each clip, `gen` the prompts."""
    device = model.device
    images, gt, owners, num_frames = _batch(clips, config, rng, device)
    features = model.forward_image(images)  # every frame of every clip, clip-major
    num_cond = 1 + int(torch.randint(min(config.max_cond_frames, num_frames), (), generator=gen))
    others = (torch.randperm(num_frames - 1, generator=gen) + 1).tolist()
    cond_frames = [0] + others[: num_cond - 1]
    kind = choose_prompt_kind(gen, config.prob_point, config.prob_box, allow_mask=num_frames > 1)
    to_correct: list[int] = []
    extra = min(config.max_frames_to_correct, num_frames) - num_cond
    if extra > 0 and config.num_correction_rounds > 0:
        count = int(torch.randint(extra + 1, (), generator=gen))  # 0 .. extra tracked frames
        to_correct = others[num_cond - 1 : num_cond - 1 + count]
    cond_rounds = config.num_correction_rounds
    if config.random_cond_corrections:  # 0 .. N rounds: tracking also starts from one click
        cond_rounds = int(torch.randint(cond_rounds + 1, (), generator=gen))

    batch = _Batch(model=model, config=config, gen=gen, num_frames=num_frames)
    terms = zero_terms(device)
    order = cond_frames + [t for t in range(num_frames) if t not in cond_frames]
    for t in order:
        frame = _Frame(
            idx=t,
            feats=features.select(owners * num_frames + t),  # frame t of each object's clip
            gt=gt[t],
            need_memory=t != order[-1],  # the last frame's memory would feed no later frame
        )
        if t in cond_frames:
            out, frame_terms = _prompted_frame(batch, frame, kind, cond_rounds)
            batch.cond_outputs[t] = out
        elif t in to_correct:
            out, frame_terms = _corrected_tracked_frame(batch, frame)
            batch.cond_outputs[t] = out  # a corrected frame conditions the frames after it
        else:
            out, frame_terms = _tracked_frame(batch, frame)
            batch.non_cond_outputs[t] = out
        terms = terms + frame_terms
    return terms
