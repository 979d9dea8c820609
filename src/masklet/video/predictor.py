"""Video predictor: prompts on any frame, tracking forwards and backwards, in bounded memory.

The method names and semantics are those of SAM 2's `SAM2VideoPredictor` (independent
per-object inference; objects may be added after tracking started; a prompt on a tracked frame
is a correction). State lives in a typed `VideoSession`; objects whose memories line up are
batched through the model together, which gives the same numbers as running them one by one.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from masklet.errors import InvalidInputError, InvalidPromptError, SessionNotFoundError
from masklet.modeling.logits import LOGIT_CLAMP, NO_OBJECT_SCORE
from masklet.modeling.outputs import ImageFeatures
from masklet.modeling.sam2 import SAM2Model
from masklet.modeling.sam_memory import non_overlapping
from masklet.precision import Precision, in_precision, predictor_precision
from masklet.video.batching import groups
from masklet.video.frames import FrameSource, LiveSource, open_frames
from masklet.video.order import processing_order
from masklet.video.prompt_inputs import check_inside, clicks_and_box
from masklet.video.results import FrameResult
from masklet.video.session import FeatureCache, ObjectTrack, VideoSession, frame_to_tensor
from masklet.video.step import encode_pending, run_step

Output = tuple[int, list[int], Tensor]  # (frame index, object ids, logits [N, 1, H, W])


class VideoPredictor:
    """Segment and track objects through a video with SAM 2."""

    def __init__(
        self,
        model: SAM2Model,
        fill_hole_area: int = 8,
        non_overlap_masks: bool = False,
        clear_non_cond_mem_around_input: bool = False,
        add_all_frames_to_correct_as_cond: bool = True,
        feature_cache_frames: int = 2,
        batch_objects: bool | None = None,
        *,
        precision: str | Precision | None = None,
    ) -> None:
        """
        fill_hole_area: fill background holes up to this many low-res pixels (0 = off).
        add_all_frames_to_correct_as_cond: a correction click on a tracked frame makes it a
            conditioning frame, so the correction survives re-propagation. The reference
            defaults to False, where a correction is overwritten by the next propagation.
        batch_objects: run objects whose memories line up as one batch. None = only on an
            accelerator: on CPU a batch of objects measured ~10% slower per object than one
            by one (larger intermediate tensors), so objects run one by one there.
        precision: fp32, bf16, fp16 or auto (`masklet.precision`); None: the model's own.
        """
        from masklet.checkpoint_files import require_video_weights

        require_video_weights(model)  # an image-only checkpoint cannot track: say so now
        self.model = model
        self.fill_hole_area = fill_hole_area
        self.non_overlap_masks = non_overlap_masks
        self.clear_non_cond_mem_around_input = clear_non_cond_mem_around_input
        self.add_all_frames_to_correct_as_cond = add_all_frames_to_correct_as_cond
        self.feature_cache_frames = feature_cache_frames
        self.batch_objects = batch_objects
        self.precision = predictor_precision(model, precision, model.device)

    @property
    def image_size(self) -> int:
        return self.model.image_size

    @property
    def device(self) -> torch.device:
        return self.model.device

    def default_memory_window(self) -> int:
        """Frames around the frontier / prompts whose outputs the model can still read."""
        return self.model.memory_rule().window

    # ---- sessions ---------------------------------------------------------------------------

    def init_state(
        self,
        source: str | Path | np.ndarray | Sequence[np.ndarray] | FrameSource | None = None,
        fps: float | None = None,
        memory_window: int | None | str = "auto",
    ) -> VideoSession:
        """A new session on a video file, a frame folder, frames, or (None) a live source.

        memory_window: "auto" keeps what tracking can read when it (re)starts at the frontier or
        at any object's prompted frame; None keeps every output (exactly the reference's
        behaviour also when tracking restarts elsewhere, or after a prompt added far from the
        frontier once tracking passed it; unbounded memory).
        """
        frames = LiveSource(fps=fps or 30.0) if source is None else open_frames(source, fps=fps)
        window = self.default_memory_window() if memory_window == "auto" else memory_window
        if window is not None and not isinstance(window, int):
            raise InvalidInputError(f"memory_window must be 'auto', None or an int, got {window!r}")
        cache = FeatureCache(lambda i: self._compute_features(frames, i), self.feature_cache_frames)
        return VideoSession(source=frames, features=cache, memory_window=window)

    @torch.inference_mode()
    @in_precision
    def _compute_features(self, source: FrameSource, frame_idx: int) -> ImageFeatures:
        image = frame_to_tensor(source.get(frame_idx), self.image_size)
        return self.model.forward_image(image[None].to(self.device))

    def reset_state(self, session: VideoSession) -> None:
        """Remove every object, prompt and result."""
        session.objects.clear()
        session.names.clear()

    def _track(self, session: VideoSession, obj_id: int, create: bool) -> ObjectTrack:
        if not isinstance(obj_id, (int, np.integer)) or isinstance(obj_id, bool):
            raise InvalidPromptError(f"object ids must be integers, got {obj_id!r}")
        obj_id = int(obj_id)
        if obj_id not in session.objects:
            if not create:
                raise SessionNotFoundError(
                    f"unknown object id {obj_id}; this session has objects {session.obj_ids}"
                )
            name = session.names.setdefault(obj_id, f"object_{obj_id}")
            session.objects[obj_id] = ObjectTrack(obj_id=obj_id, name=name)
        return session.objects[obj_id]

    def _check_frame(self, session: VideoSession, frame_idx: int) -> int:
        n = session.num_frames
        if (
            not isinstance(frame_idx, (int, np.integer))
            or frame_idx < 0
            or (n is not None and frame_idx >= n)
        ):
            valid = f"0..{n - 1}" if n else "a non-negative index"
            raise InvalidPromptError(f"frame index {frame_idx!r} is outside the video ({valid})")
        return int(frame_idx)

    # ---- prompts ----------------------------------------------------------------------------

    @torch.inference_mode()
    def add_new_points_or_box(
        self,
        session: VideoSession,
        frame_idx: int,
        obj_id: int,
        points: np.ndarray | Tensor | Sequence[Sequence[float]] | None = None,
        labels: np.ndarray | Tensor | Sequence[int] | None = None,
        clear_old_points: bool = True,
        normalize_coords: bool = True,
        box: np.ndarray | Tensor | Sequence[float] | None = None,
    ) -> Output:
        """Clicks ([N, 2] x, y; labels 1 include / 0 exclude) and/or a box (x1, y1, x2, y2) for
        one object on one frame. Returns that frame's masks for every object."""
        frame_idx = self._check_frame(session, frame_idx)
        coords, labs = clicks_and_box(points, labels, box, clear_old_points)
        check_inside(coords, session.width, session.height, normalize_coords)
        track = self._track(session, obj_id, create=True)
        if normalize_coords:
            coords = coords / torch.tensor([session.width, session.height], dtype=torch.float32)
        coords = (coords * self.image_size)[None].to(self.device)  # [P, 2] -> [1, P, 2]
        labs = labs[None].to(self.device)
        old = None if clear_old_points else track.point_inputs.get(frame_idx)
        if old is not None:
            coords, labs = torch.cat([old[0], coords], dim=1), torch.cat([old[1], labs], dim=1)
        track.point_inputs[frame_idx] = (coords, labs)
        track.mask_inputs.pop(frame_idx, None)
        return self._prompt_frame(session, track, frame_idx, points=(coords, labs))

    @torch.inference_mode()
    def add_new_mask(
        self, session: VideoSession, frame_idx: int, obj_id: int, mask: np.ndarray | Tensor
    ) -> Output:
        """A mask [H, W] (bool or 0/1, any size) as the prompt of one object on one frame."""
        frame_idx = self._check_frame(session, frame_idx)
        m = torch.as_tensor(np.asarray(mask))
        if m.dim() != 2:
            raise InvalidPromptError(f"a mask prompt must be [H, W], got shape {tuple(m.shape)}")
        track = self._track(session, obj_id, create=True)
        m = m.to(torch.bool).float()[None, None].to(self.device)  # [H, W] -> [1, 1, H, W]
        s = self.image_size
        if tuple(m.shape[-2:]) != (s, s):
            m = F.interpolate(m, size=(s, s), mode="bilinear", align_corners=False, antialias=True)
            m = (m >= 0.5).float()
        track.mask_inputs[frame_idx] = m
        track.point_inputs.pop(frame_idx, None)
        return self._prompt_frame(session, track, frame_idx, mask=m)

    def _prompt_frame(
        self,
        session: VideoSession,
        track: ObjectTrack,
        frame_idx: int,
        *,
        points: tuple[Tensor, Tensor] | None = None,
        mask: Tensor | None = None,
    ) -> Output:
        is_init = frame_idx not in track.tracked
        reverse = False if is_init else track.tracked[frame_idx]
        is_cond = is_init or self.add_all_frames_to_correct_as_cond
        prev_logits = None
        if points is not None:
            prev = track.output_at(frame_idx, is_cond)
            if prev is not None:
                prev_logits = prev.pred_masks.to(self.device).clamp(-LOGIT_CLAMP, LOGIT_CLAMP)
        with self.precision.mode.autocast(self.device):  # the model calls only
            out = run_step(
                self.model,
                session,
                [track],
                frame_idx,
                reverse=reverse,
                is_init=is_init,
                points=points,
                mask=mask,
                run_memory_encoder=False,
                prev_logits=prev_logits,
                fill_hole_area=self.fill_hole_area,
            )[0]
        track.pending(is_cond)[frame_idx] = out
        return frame_idx, session.obj_ids, self._frame_masks(session, frame_idx, is_cond)

    def _frame_masks(self, session: VideoSession, frame_idx: int, is_cond: bool) -> Tensor:
        """[N, 1, H, W] logits of every object on a frame (NO_OBJECT_SCORE where none)."""
        h, w = session.height, session.width
        out = torch.full((len(session.objects), 1, h, w), NO_OBJECT_SCORE, device=self.device)
        for i, track in enumerate(session.objects.values()):
            o = track.output_at(frame_idx, is_cond)
            if o is not None:
                out[i : i + 1] = self._to_video_res(session, o.pred_masks)
        return self._maybe_non_overlap(out)

    def _to_video_res(self, session: VideoSession, logits: Tensor) -> Tensor:
        size = (session.height, session.width)
        logits = logits.to(self.device)
        if tuple(logits.shape[-2:]) == size:
            return logits
        return F.interpolate(logits, size=size, mode="bilinear", align_corners=False)

    def _maybe_non_overlap(self, masks: Tensor) -> Tensor:
        return non_overlapping(masks) if self.non_overlap_masks else masks

    # ---- propagation ------------------------------------------------------------------------

    @torch.inference_mode()
    def propagate_in_video_preflight(self, session: VideoSession) -> None:
        """Write pending click outputs into the memory bank before tracking."""
        if not session.objects:
            raise InvalidPromptError("no object has prompts yet: add points, a box or a mask first")
        for track in session.objects.values():
            for is_cond in (False, True):
                pending = track.pending(is_cond)
                for frame_idx, out in pending.items():
                    if out.memory_features is None:
                        with self.precision.mode.autocast(self.device):
                            encode_pending(self.model, session, frame_idx, out)
                    (track.cond if is_cond else track.non_cond)[frame_idx] = out
                    if self.clear_non_cond_mem_around_input:
                        self._clear_non_cond_around(session, track, frame_idx)
                pending.clear()
            if not track.cond:
                raise InvalidPromptError(
                    f"object {track.obj_id} has no prompts; add points, a box or a mask for it"
                )
            for frame_idx in track.cond:
                track.non_cond.pop(frame_idx, None)

    def _clear_non_cond_around(
        self, session: VideoSession, track: ObjectTrack, frame_idx: int
    ) -> None:
        r = self.model.memory_rule().spatial_reach
        for t in range(frame_idx - r, frame_idx + r + 1):
            track.non_cond.pop(t, None)

    @torch.inference_mode()
    def propagate_in_video(
        self,
        session: VideoSession,
        start_frame_idx: int | None = None,
        max_frame_num_to_track: int | None = None,
        reverse: bool = False,
    ) -> Iterator[Output]:
        """Track every object frame by frame; yields (frame, object ids, logits [N,1,H,W])."""
        for result in self.propagate(session, start_frame_idx, max_frame_num_to_track, reverse):
            yield result.frame_idx, result.obj_ids, result.mask_logits

    def propagate(
        self,
        session: VideoSession,
        start_frame_idx: int | None = None,
        max_frame_num_to_track: int | None = None,
        reverse: bool = False,
    ) -> Iterator[FrameResult]:
        """Like `propagate_in_video`, yielding typed `FrameResult`s."""
        with torch.inference_mode():
            self.propagate_in_video_preflight(session)
        for frame_idx in self._order(session, start_frame_idx, max_frame_num_to_track, reverse):
            with torch.inference_mode():
                yield self._track_frame(session, frame_idx, reverse)

    def _order(
        self, session: VideoSession, start: int | None, max_frames: int | None, reverse: bool
    ) -> range:
        if start is None:
            start = min(t for tr in session.objects.values() for t in tr.cond)
        start = self._check_frame(session, start)
        available = session.num_frames if session.num_frames is not None else len(session.source)
        return processing_order(start, available, max_frames, reverse)

    @in_precision  # one autocast per frame: its weight casts are shared by the objects
    def _track_frame(self, session: VideoSession, frame_idx: int, reverse: bool) -> FrameResult:
        tracks = list(session.objects.values())
        low_res: dict[int, Tensor] = {}
        scores: dict[int, Tensor] = {}
        to_run: list[ObjectTrack] = []
        for track in tracks:
            if frame_idx in track.cond:
                out = track.cond[frame_idx]
                low_res[track.obj_id], scores[track.obj_id] = (
                    out.pred_masks,
                    out.object_score_logits,
                )
                if self.clear_non_cond_mem_around_input:
                    self._clear_non_cond_around(session, track, frame_idx)
            else:
                to_run.append(track)
        batch = self.batch_objects
        if batch is None:
            batch = self.device.type != "cpu"
        grouped = (
            groups(to_run, frame_idx, self.model, num_frames=session.num_frames, reverse=reverse)
            if batch
            else [[track] for track in to_run]
        )
        for group in grouped:
            outs = run_step(
                self.model,
                session,
                group,
                frame_idx,
                reverse=reverse,
                fill_hole_area=self.fill_hole_area,
            )
            for track, out in zip(group, outs):
                track.non_cond[frame_idx] = out
                low_res[track.obj_id], scores[track.obj_id] = (
                    out.pred_masks,
                    out.object_score_logits,
                )
        for track in tracks:
            track.tracked[frame_idx] = reverse
        session.prune(frame_idx)
        ids = [t.obj_id for t in tracks]
        logits = torch.cat([low_res[i].to(self.device) for i in ids], dim=0)  # [N, 1, h, w]
        video = self._maybe_non_overlap(self._to_video_res(session, logits))
        obj_scores = torch.cat([scores[i].to(self.device) for i in ids], dim=0)
        return FrameResult(
            frame_idx=frame_idx,
            obj_ids=ids,
            mask_logits=video,
            object_scores=obj_scores.float(),
            names=dict(session.names),
        )

    # ---- editing ----------------------------------------------------------------------------

    @torch.inference_mode()
    def clear_all_prompts_in_frame(
        self, session: VideoSession, frame_idx: int, obj_id: int, need_output: bool = True
    ) -> Output | None:
        """Remove one object's prompts on one frame (its tracked result there stays)."""
        track = self._track(session, obj_id, create=False)
        track.point_inputs.pop(frame_idx, None)
        track.mask_inputs.pop(frame_idx, None)
        track.pending_cond.pop(frame_idx, None)
        track.pending_non_cond.pop(frame_idx, None)
        out = track.cond.pop(frame_idx, None)
        if out is not None:
            # it stays a tracked result, and the frame counts as not yet tracked
            track.non_cond[frame_idx] = out
            track.tracked.pop(frame_idx, None)
        if not need_output:
            return None
        is_cond = any(frame_idx in t.pending_cond for t in session.objects.values())
        return frame_idx, session.obj_ids, self._frame_masks(session, frame_idx, is_cond)

    @torch.inference_mode()
    def remove_object(
        self, session: VideoSession, obj_id: int, strict: bool = False, need_output: bool = True
    ) -> tuple[list[int], list[tuple[int, Tensor]]]:
        """Remove an object; returns the remaining ids and the updated masks of the frames it
        had prompts on."""
        if obj_id not in session.objects:
            if strict:
                raise SessionNotFoundError(
                    f"cannot remove object {obj_id}: the session has objects {session.obj_ids}"
                )
            return session.obj_ids, []
        if len(session.objects) == 1:
            self.reset_state(session)
            return session.obj_ids, []
        track = session.objects[obj_id]
        frames = sorted(track.prompted_frames())
        for f in frames:
            self.clear_all_prompts_in_frame(session, f, obj_id, need_output=False)
        del session.objects[obj_id]
        session.names.pop(obj_id, None)
        updated: list[tuple[int, Tensor]] = []
        if need_output:
            for f in frames:
                is_cond = any(f in t.pending_cond for t in session.objects.values())
                updated.append((f, self._frame_masks(session, f, is_cond)))
        return session.obj_ids, updated

    def set_object_name(self, session: VideoSession, obj_id: int, name: str) -> None:
        """Name an object (names appear in every output)."""
        session.names[int(obj_id)] = name
        if int(obj_id) in session.objects:
            session.objects[int(obj_id)].name = name
