"""One tracking step of the video predictor: the model's `track_step` on a group of objects
whose memories line up (batched), split back per object, memories stored as the reference
stores them (bfloat16); and the deferred memory encoding of prompted frames."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from masklet.modeling.outputs import FrameOutput, ImageFeatures
from masklet.modeling.sam2 import SAM2Model
from masklet.postprocess import fill_holes_video
from masklet.video.batching import merge_banks, shared_memory_pos
from masklet.video.session import ObjectTrack, VideoSession


def run_step(
    model: SAM2Model,
    session: VideoSession,
    tracks: list[ObjectTrack],
    frame_idx: int,
    *,
    reverse: bool,
    is_init: bool = False,
    points: tuple[Tensor, Tensor] | None = None,
    mask: Tensor | None = None,
    run_memory_encoder: bool = True,
    prev_logits: Tensor | None = None,
    fill_hole_area: int = 0,
) -> list[FrameOutput]:
    """One track step for objects whose memories line up (batched), split per object.
    The defaults track a frame from memory; a prompt gives `is_init` (first prompt of the
    object), `points` or `mask`, and defers the memory encoder until tracking starts."""
    feats = session.features.get(frame_idx)
    b = len(tracks)
    if b > 1:
        feats = ImageFeatures(
            vision_feats=[x.expand(-1, b, -1) for x in feats.vision_feats],
            vision_pos=[x.expand(-1, b, -1) for x in feats.vision_pos],
            feat_sizes=feats.feat_sizes,
        )
    cond, non_cond = merge_banks(tracks)
    out, _ = model.track_step(
        frame_idx,
        feats,
        is_init_cond_frame=is_init,
        cond_outputs=cond,
        non_cond_outputs=non_cond,
        num_frames=session.num_frames,
        point_inputs=points,
        mask_inputs=mask,
        reverse=reverse,
        run_memory_encoder=run_memory_encoder,
        prev_mask_logits=prev_logits,
    )
    pred = out.pred_masks
    if fill_hole_area > 0:
        pred = fill_holes_video(pred, fill_hole_area)
    memory = out.memory_features
    if memory is not None:
        memory = memory.to(torch.bfloat16)  # as the reference stores it: half the memory
        session.memory_pos = shared_memory_pos(session, out.memory_pos)
    results = []
    for i in range(b):
        results.append(
            FrameOutput(
                pred_masks=pred[i : i + 1],
                object_pointer=out.object_pointer[i : i + 1],
                object_score_logits=out.object_score_logits[i : i + 1],
                memory_features=None if memory is None else memory[i : i + 1],
                memory_pos=None if memory is None else session.memory_pos,
                ious=None if out.ious is None else out.ious[i : i + 1],
            )
        )
    return results


def encode_pending(
    model: SAM2Model, session: VideoSession, frame_idx: int, out: FrameOutput
) -> None:
    """Run the memory encoder on a prompted frame's output (deferred until tracking starts),
    storing the memory as the reference does (bfloat16) and sharing the position encoding."""
    s = model.image_size
    high_res = F.interpolate(
        out.pred_masks.to(model.device), size=(s, s), mode="bilinear", align_corners=False
    )
    feats = session.features.get(frame_idx)
    memory, pos = model.encode_memory(
        feats, high_res, out.object_score_logits, is_mask_from_points=True
    )
    out.memory_features = memory.to(torch.bfloat16)
    session.memory_pos = shared_memory_pos(session, pos)
    out.memory_pos = session.memory_pos
