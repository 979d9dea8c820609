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

from collections.abc import Mapping

import numpy as np
import torch
from torch import Tensor

from masklet.errors import InvalidInputError
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
from masklet.transforms import MEAN, STD

# On a corrected tracked frame the tracked logits fed back with the clicks are clamped as the
# video predictor clamps them, so an object called hidden (-1024 logits) looks the same in
# training and in use. (Conditioning frames feed them unclamped, as SAM 2's training does.)
MASK_INPUT_CLAMP = 32.0


def _normalize(frames: np.ndarray, device: torch.device) -> Tensor:
    """[N, S, S, 3] uint8 -> [N, 3, S, S] float, normalised as the model's preprocessing."""
    x = torch.from_numpy(np.require(frames, requirements=["C", "W"])).to(device)
    x = x.permute(0, 3, 1, 2).float() / 255.0  # [N, S, S, 3] -> [N, 3, S, S]
    mean = torch.tensor(MEAN, device=device).view(1, 3, 1, 1)
    std = torch.tensor(STD, device=device).view(1, 3, 1, 1)
    return (x - mean) / std


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


def _prompted_frame(
    model: SAM2Model,
    frame_idx: int,
    feats: ImageFeatures,
    gt: Tensor,
    kind: PromptKind,
    cond_outputs: Mapping[int, FrameOutput],
    num_frames: int,
    config: TrainConfig,
    gen: torch.Generator,
    rounds: int,
    need_memory: bool = True,
) -> tuple[FrameOutput, LossTerms]:
    """A conditioning frame [N objects]: the prompt, then `rounds` corrective clicks on the
    errors. Without `need_memory` (no later frame reads it) its memory is not encoded."""
    w = config.loss
    if kind is PromptKind.MASK:
        out, sam = model.track_step(
            frame_idx, True, feats, None, gt.float(), cond_outputs, {}, num_frames,
            run_memory_encoder=need_memory,
        )  # fmt: skip
        return out, sam_loss(sam.high_res_multimasks, sam.ious, sam.object_score_logits, gt, w)
    clicks: Clicks = (
        box_prompt(gt, gen)
        if kind is PromptKind.BOX
        else first_click(gt, gen, config.prob_center_click)
    )
    maps = feats.maps()
    high_res = maps[:-1] if len(maps) > 1 else None
    pix = model.condition_on_memory(frame_idx, True, feats, cond_outputs, {}, num_frames)
    points = clicks.as_inputs()
    sam = model.forward_sam_heads(pix, points, None, high_res, model.use_multimask(True, points))
    terms = sam_loss(sam.high_res_multimasks, sam.ious, sam.object_score_logits, gt, w)
    sam, more = _correct(model, pix, high_res, gt, clicks, sam, True, config, gen, rounds)
    return _with_memory(model, feats, sam, need_memory), terms + more


def _correct(
    model: SAM2Model,
    pix: Tensor,
    high_res: list[Tensor] | None,
    gt: Tensor,
    clicks: Clicks | None,
    sam: SamHeadOutput,
    is_init_cond_frame: bool,
    config: TrainConfig,
    gen: torch.Generator,
    rounds: int,
    clamp: float | None = None,
) -> tuple[SamHeadOutput, LossTerms]:
    """`rounds` corrective clicks on one frame [N objects]: each from the errors
    of the previous prediction `sam`, added to `clicks` (None: the first click is alone), with
    the previous logits (clamped to +-`clamp` if given) as the mask input. Returns the last
    prediction and the loss of every round."""
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
        sam = model.forward_sam_heads(
            pix, points, mask_inputs, high_res, model.use_multimask(is_init_cond_frame, points)
        )
        terms = terms + sam_loss(
            sam.high_res_multimasks, sam.ious, sam.object_score_logits, gt, config.loss
        )
    return sam, terms


def _with_memory(
    model: SAM2Model, feats: ImageFeatures, sam: SamHeadOutput, need_memory: bool = True
) -> FrameOutput:
    """The frame output of a click-prompted prediction, with its memory encoded if
    `need_memory`."""
    out = FrameOutput(
        pred_masks=sam.low_res_masks,
        object_pointer=sam.object_pointer,
        object_score_logits=sam.object_score_logits,
        ious=sam.ious,
    )
    if need_memory and model.config.num_maskmem > 0:
        out.memory_features, out.memory_pos = model.encode_memory(
            feats, sam.high_res_masks, sam.object_score_logits, is_mask_from_points=True
        )
    return out


def _corrected_tracked_frame(
    model: SAM2Model,
    frame_idx: int,
    feats: ImageFeatures,
    gt: Tensor,
    cond_outputs: Mapping[int, FrameOutput],
    non_cond_outputs: Mapping[int, FrameOutput],
    num_frames: int,
    config: TrainConfig,
    gen: torch.Generator,
    need_memory: bool = True,
) -> tuple[FrameOutput, LossTerms]:
    """A tracked frame [N objects] that the user corrects: the tracked prediction, then
    corrective clicks on its errors, with the same memory-conditioned features."""
    maps = feats.maps()
    high_res = maps[:-1] if len(maps) > 1 else None
    pix = model.condition_on_memory(
        frame_idx, False, feats, cond_outputs, non_cond_outputs, num_frames
    )
    sam = model.forward_sam_heads(pix, None, None, high_res, model.use_multimask(False, None))
    terms = sam_loss(sam.high_res_multimasks, sam.ious, sam.object_score_logits, gt, config.loss)
    rounds = config.num_correction_rounds
    sam, more = _correct(
        model, pix, high_res, gt, None, sam, False, config, gen, rounds, clamp=MASK_INPUT_CLAMP
    )
    return _with_memory(model, feats, sam, need_memory), terms + more


def clip_loss(
    model: SAM2Model,
    clips: list[Clip],
    config: TrainConfig,
    rng: np.random.Generator,
    gen: torch.Generator,
) -> LossTerms:
    """Loss of one batch of clips: prompt the conditioning frames, track the rest."""
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

    cond_outputs: dict[int, FrameOutput] = {}
    non_cond_outputs: dict[int, FrameOutput] = {}
    terms = zero_terms(device)
    order = cond_frames + [t for t in range(num_frames) if t not in cond_frames]
    for t in order:
        feats = features.select(owners * num_frames + t)  # frame t of each object's clip
        need_memory = t != order[-1]  # the last frame's memory would feed no later frame
        if t in cond_frames:
            out, frame_terms = _prompted_frame(
                model, t, feats, gt[t], kind, cond_outputs, num_frames, config, gen,
                cond_rounds, need_memory,
            )  # fmt: skip
            cond_outputs[t] = out
        elif t in to_correct:
            out, frame_terms = _corrected_tracked_frame(
                model, t, feats, gt[t], cond_outputs, non_cond_outputs, num_frames, config, gen,
                need_memory,
            )  # fmt: skip
            cond_outputs[t] = out  # a corrected frame conditions the frames after it
        else:
            out, sam = model.track_step(
                t, False, feats, None, None, cond_outputs, non_cond_outputs, num_frames,
                run_memory_encoder=need_memory,
            )  # fmt: skip
            frame_terms = sam_loss(
                sam.high_res_multimasks, sam.ious, sam.object_score_logits, gt[t], config.loss
            )
            non_cond_outputs[t] = out
        terms = terms + frame_terms
    return terms
