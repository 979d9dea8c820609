"""One batch item: its pipeline request (built the way `masklet image` / `masklet video` build
theirs), run in a staging folder and committed whole. Both executors call `run_item`.

Outputs under `DIR/<id>/`: images `overlay.png`, `masks.png` (id PNG), `masks.json` (COCO
RLE); videos `overlay.mp4`, `masks/` (one DAVIS PNG per frame), `masks.json`; plus `done.json`.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from masklet.batch.manifest import BatchItem
from masklet.batch.records import (
    DONE_FILE,
    ItemOutcome,
    commit_item,
    done_record,
    staging_dir,
    write_json_atomic,
)

if TYPE_CHECKING:
    from masklet.pipelines.requests import (
        EverythingQuery,
        ImageOutputs,
        ImageRequest,
        TextQuery,
        VideoRequest,
    )
    from masklet.prompts import ParsedPrompts

IMAGE_FILES = {"overlay": "overlay.png", "masks": "masks.png", "json": "masks.json"}
VIDEO_FILES = {"overlay": "overlay.mp4", "masks": "masks", "json": "masks.json"}
FrameFn = Callable[[int], None]


@dataclass(frozen=True)
class WorkerSpec:
    """What every worker loads once: the SAM 2 model (a registry name or checkpoint path), the
    device, torch's intra-op threads (None: leave torch's default), the text detector, the
    backend (None: whichever `model` is for; "onnxruntime" for a `masklet export onnx` folder)
    and compute precision (`masklet.precision`; None: fp32)."""

    model: str
    device: str | None = None
    backend: str | None = None
    threads: int | None = None
    detector: str | None = None
    precision: str | None = None

    @property
    def run_key(self) -> str:
        """What the done records name: the model, with its backend and precision when they
        are not the defaults, so a rerun with another mode redoes the items."""
        extras = [f"backend {self.backend}"] if self.backend not in (None, "pytorch") else []
        if self.precision not in (None, "fp32"):
            extras.append(f"precision {self.precision}")
        return f"{self.model} [{', '.join(extras)}]" if extras else self.model


class WorkerState:
    """A worker's model, loaded at construction; the detector on the first text item."""

    def __init__(self, spec: WorkerSpec) -> None:
        from masklet.checkpoints import load_model

        if spec.threads is not None:
            import torch

            torch.set_num_threads(spec.threads)
        self.spec = spec
        self.model: Any = load_model(
            spec.model, device=spec.device, backend=spec.backend, precision=spec.precision
        )
        self._detector: Any = None
        self._detector_error: Exception | None = None

    def detector(self) -> Any:
        """The detector, loaded once; a load that failed fails every later text item the same
        way without trying again (a missing download would otherwise be retried per item)."""
        if self._detector_error is not None:
            raise self._detector_error
        if self._detector is None:
            from masklet.text.grounding_dino import DEFAULT_DETECTOR, GroundingDINODetector

            try:
                self._detector = GroundingDINODetector(
                    self.spec.detector or DEFAULT_DETECTOR, device=self.spec.device
                )
            except Exception as error:
                self._detector_error = error
                raise
        return self._detector


def build_prompts(spec: Mapping[str, Any], base: Path) -> ParsedPrompts:
    """Click strings and / or prompt-file entries, joined as `masklet video` joins them."""
    from masklet.prompt_file import join_prompts, prompts_from_entries
    from masklet.prompts import ParsedPrompts, parse_click_strings

    clicks = None
    if "click_coordinates" in spec:
        clicks = parse_click_strings(
            spec["click_coordinates"], spec.get("click_labels"), spec.get("click_frames"),
            spec.get("click_object_ids"),
        )  # fmt: skip
    entries = spec.get("prompts")
    file = prompts_from_entries(list(entries), base=base, merge=False) if entries else None
    if clicks is not None and file is not None:
        return join_prompts(clicks, file)
    return clicks or file or ParsedPrompts(prompts=[], names={})


def text_query(spec: Mapping[str, Any]) -> TextQuery | None:
    from masklet.pipelines.requests import TextQuery

    text = spec.get("text")
    if text is None:
        return None
    return TextQuery(text) if isinstance(text, str) else TextQuery(**text)


def everything_query(spec: Mapping[str, Any]) -> EverythingQuery | None:
    """`"everything": true` (the generator's defaults) or its settings, as `masklet image
    --everything` / `masklet video --everything` build them."""
    from masklet.pipelines.requests import EverythingQuery

    value = spec.get("everything")
    if value is None:
        return None
    return EverythingQuery() if value is True else EverythingQuery(**value)


def build_image_request(item: BatchItem, folder: Path) -> tuple[ImageRequest, ImageOutputs]:
    from masklet.pipelines.requests import ImageOutputs, ImageRequest

    parsed = build_prompts(item.spec, item.base)
    request = ImageRequest(
        image=item.input, prompts=parsed.prompts, names=dict(parsed.names),
        text=text_query(item.spec), everything=everything_query(item.spec),
        multimask=bool(item.options.get("multimask", False)),
    )  # fmt: skip
    wanted = {k: folder / IMAGE_FILES[k] for k in item.outputs}
    outputs = ImageOutputs(
        overlay=wanted.get("overlay"), id_png=wanted.get("masks"), json=wanted.get("json")
    )
    return request, outputs


def build_video_request(item: BatchItem, folder: Path) -> VideoRequest:
    from masklet.pipelines.requests import VideoOutputs, VideoRequest

    parsed = build_prompts(item.spec, item.base)
    options = item.options
    wanted = {k: folder / VIDEO_FILES[k] for k in item.outputs}
    outputs = VideoOutputs(
        overlay=wanted.get("overlay"), masks_dir=wanted.get("masks"), json=wanted.get("json"),
        mask_type=options.get("mask_type", "highlighted"),
        output_frame_interval=options.get("output_frame_interval", 1),
    )  # fmt: skip
    return VideoRequest(
        source=str(item.input), prompts=parsed.prompts, names=dict(parsed.names),
        text=text_query(item.spec), everything=everything_query(item.spec),
        direction=options.get("direction", "forward"),
        start_frame=options.get("start_frame"), max_frames=options.get("max_frames"),
        fps=options.get("fps"), outputs=outputs,
    )  # fmt: skip


def one_line(error: BaseException) -> str:
    """`Type: first line of the message`, what the report keeps of a failure."""
    lines = str(error).strip().splitlines()
    return f"{type(error).__name__}: {lines[0] if lines else ''}".rstrip(": ")


def run_item(
    item: BatchItem, out: Path, state: WorkerState, on_frame: FrameFn | None = None
) -> ItemOutcome:
    """Run one item through the pipeline into a staging folder, write its done record and
    move the folder to `out/<id>`. Any error fails this item only (one line)."""
    started = time.perf_counter()
    folder = staging_dir(out, item.item_id)
    try:
        frames = _run(item, folder, state, on_frame or (lambda _: None))
        files = sorted(p.name for p in folder.iterdir())
        write_json_atomic(
            folder / DONE_FILE, done_record(item, state.spec.run_key, frames=frames, files=files)
        )
        commit_item(out, item.item_id, folder)
    except Exception as error:  # noqa: BLE001 - isolation: the item fails, the batch goes on
        import shutil

        shutil.rmtree(folder, ignore_errors=True)
        return ItemOutcome(item.item_id, False, one_line(error),
                           seconds=time.perf_counter() - started)  # fmt: skip
    return ItemOutcome(item.item_id, True, frames=frames, seconds=time.perf_counter() - started)


def _run(item: BatchItem, folder: Path, state: WorkerState, on_frame: FrameFn) -> int:
    """The item's frame count after writing its outputs into `folder`."""
    from masklet.pipelines.image import prepare_image, segment_image, write_image_outputs

    if item.kind == "image":
        request, outputs = build_image_request(item, folder)
        prepared = prepare_image(request, outputs)
        detector = state.detector() if request.text is not None else None
        result = segment_image(prepared, state.model, detector=detector)
        write_image_outputs(result, outputs)
        on_frame(1)
        return 1
    from masklet.pipelines.video import prepare_video, track_video
    from masklet.video.predictor import VideoPredictor

    prepared_video = prepare_video(build_video_request(item, folder))
    try:
        detector = state.detector() if prepared_video.request.text is not None else None
        summary = track_video(
            prepared_video, VideoPredictor(state.model), detector=detector,
            progress=lambda _: on_frame(1),
        )  # fmt: skip
    finally:
        prepared_video.close()
    return summary.frames_tracked


def default_threads(workers: int) -> int:
    """Torch threads per worker: the machine's cores split between the workers."""
    return max(1, (os.cpu_count() or 1) // max(1, workers))
