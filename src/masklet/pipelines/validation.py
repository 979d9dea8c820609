"""One validation of a request, before any model work: prompts, limits and options.

The rules on single values (finite, >= 0, labels, box order) live in `masklet.prompt_rules`
and run when an `ObjectPrompt` is built; this module adds what needs the image or video:
bounds, frame range, object ids and names, counts against `Limits`, and the options of the
request. Every error names the field as the user wrote it (`prompts[2].points[0]`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from masklet.errors import InvalidInputError, InvalidPromptError
from masklet.io.masks import MAX_OBJECT_ID
from masklet.pipelines.limits import Limits
from masklet.pipelines.requests import (
    DIRECTIONS,
    FRAME_FORMATS,
    IMAGE_SUFFIXES,
    MASK_TYPES,
    VIDEO_SUFFIXES,
    EverythingQuery,
    ImageOutputs,
    TextQuery,
    VideoOutputs,
)
from masklet.prompts import ObjectPrompt, merge_prompts, validate_in_bounds


def _fail(field: str, message: str) -> InvalidPromptError:
    return InvalidPromptError(f"{field}: {message}", field=field)


def check_prompts(
    prompts: Sequence[ObjectPrompt],
    *,
    width: int,
    height: int,
    num_frames: int | None,
    limits: Limits,
    names: Mapping[int, str] | None = None,
    has_text: bool = False,
    surface: str = "image",
) -> list[ObjectPrompt]:
    """Check every prompt against the image or video; returns them merged per object and
    frame (clicks add up), in order of first appearance."""
    if not prompts and not has_text:
        raise _fail(
            "prompts", "give at least one prompt: clicks, a box or a mask (or a text prompt)"
        )
    seen_names: dict[int, str] = dict(names or {})
    owner_of_name = {name: i for i, name in seen_names.items()}
    for p in prompts:
        if isinstance(p.obj_id, bool) or not 1 <= int(p.obj_id) <= MAX_OBJECT_ID:
            raise _fail(
                f"{p.field}.object",
                f"object ids are whole numbers in 1..{MAX_OBJECT_ID} (0 is the background), "
                f"got {p.obj_id!r}",
            )
        if num_frames is not None and p.frame >= num_frames:
            raise _fail(
                p.frame_field,
                f"frame {p.frame} is beyond the video, which has {num_frames} frames "
                f"(0..{num_frames - 1})",
            )
        if num_frames is None and p.frame != 0:
            raise _fail(p.frame_field, f"an image has one frame (0), got frame {p.frame}")
        validate_in_bounds(p, width, height, surface)
        if p.name:
            known = seen_names.get(p.obj_id)
            if known is not None and known != p.name:
                raise _fail(
                    f"{p.field}.name",
                    f"object {p.obj_id} is already named {known!r}, got {p.name!r}; one name "
                    "per object",
                )
            other = owner_of_name.get(p.name)
            if other is not None and other != p.obj_id:
                raise _fail(
                    f"{p.field}.name",
                    f"the name {p.name!r} already belongs to object {other}; names must be unique",
                )
            seen_names[p.obj_id] = p.name
            owner_of_name[p.name] = p.obj_id
    merged = merge_prompts(prompts)
    objects = {p.obj_id for p in merged}
    limits.check("max_objects", len(objects), what="objects in the prompts",
                 setting="the max_objects limit", field="prompts")  # fmt: skip
    for p in merged:
        if p.points is not None:
            limits.check(
                "max_points_per_object", len(p.points), what=f"clicks for object {p.obj_id} "
                f"on frame {p.frame}", setting="the max_points_per_object limit",
                field=f"{p.field}.points",
            )  # fmt: skip
    return merged


def check_text(text: TextQuery | None, limits: Limits, first_id: int) -> None:
    """A text prompt's settings (the detector checks the phrases themselves)."""
    if text is None:
        return
    if not text.text.strip():
        raise _fail("text", 'the text prompt is empty; give phrases like "a dog. a red car."')
    for name in ("box_threshold", "text_threshold", "new_object_iou"):
        value = getattr(text, name)
        if not 0.0 <= value <= 1.0:
            raise _fail(name, f"must be in [0, 1], got {value}")
    if text.max_objects is not None and text.max_objects < 1:
        raise _fail("max_objects", f"must be at least 1, got {text.max_objects}")
    if text.redetect_every is not None and text.redetect_every < 1:
        raise _fail("redetect_every", f"must be at least 1 frame, got {text.redetect_every}")
    top = first_id - 1 + (text.max_objects or 0)
    if top > MAX_OBJECT_ID:
        raise _fail("max_objects", f"text objects would take ids up to {top}, past {MAX_OBJECT_ID}")


def check_everything(
    everything: EverythingQuery | None,
    text: TextQuery | None,
    num_frames: int | None,
    limits: Limits | None = None,
) -> None:
    """Segment-everything settings, checked before any model work (the point prompts it
    would run against `limits.max_everything_prompts`)."""
    if everything is None:
        return
    if limits is not None:
        crops = sum(4**i for i in range(everything.crop_n_layers + 1))  # 1 + 4 + 16 + ...
        limits.check(
            "max_everything_prompts", everything.points_per_side**2 * crops,
            what=f"segment-everything point prompts ({everything.points_per_side}x"
            f"{everything.points_per_side} points on each of {crops} crops; ask for fewer "
            "points_per_side or crop_n_layers)",
            setting="the max_everything_prompts limit", field="everything.points_per_side",
        )  # fmt: skip
    if text is not None:
        raise InvalidInputError(
            "give a text prompt or segment everything, not both (one finder per request)",
            field="everything",
        )
    everything.generator_config()  # the generator's own checks of its parameters
    if everything.every is not None and everything.every < 1:
        raise InvalidInputError(
            f"everything.every must be at least 1 frame, got {everything.every}",
            field="everything.every",
        )
    if everything.max_objects is not None and everything.max_objects < 1:
        raise InvalidInputError(
            f"everything.max_objects must be at least 1, got {everything.max_objects}",
            field="everything.max_objects",
        )
    frame = everything.frame
    if frame is not None and (frame < 0 or (num_frames is not None and frame >= num_frames)):
        raise InvalidInputError(
            f"everything.frame {frame} is not a frame of the video (0..{(num_frames or 1) - 1})",
            field="everything.frame",
        )


def check_image_outputs(outputs: ImageOutputs) -> None:
    """Output names usable before any work is done (`-o x.gif` fails now, not after)."""
    if outputs.overlay is not None and outputs.overlay.suffix.lower() not in IMAGE_SUFFIXES:
        raise InvalidInputError(
            f"overlay {str(outputs.overlay)!r}: name it *.png, *.jpg or *.webp", field="overlay"
        )
    if outputs.id_png is not None and outputs.id_png.suffix.lower() != ".png":
        raise InvalidInputError(
            f"id mask {str(outputs.id_png)!r}: an id mask is a PNG; name it *.png", field="masks"
        )
    _check_file_target(outputs.json, "json")


def check_video_outputs(outputs: VideoOutputs) -> None:
    if not outputs.any:
        raise InvalidInputError(
            "no output requested: give an overlay video, a masks folder, a JSON file and/or a "
            "frames folder",
            field="outputs",
        )
    if outputs.mask_type not in MASK_TYPES:
        raise InvalidInputError(
            f"unknown mask type {outputs.mask_type!r}; valid values are {', '.join(MASK_TYPES)}",
            field="mask_type",
        )
    interval = outputs.output_frame_interval
    if isinstance(interval, bool) or not isinstance(interval, int) or interval < 1:
        raise InvalidInputError(
            f"output_frame_interval must be a whole number >= 1 (1 = every frame), got "
            f"{interval!r}",
            field="output_frame_interval",
        )
    if outputs.overlay is not None and outputs.overlay.suffix.lower() not in VIDEO_SUFFIXES:
        raise InvalidInputError(
            f"overlay {str(outputs.overlay)!r}: the overlay is an H.264 video; name it "
            f"{' / '.join('*' + s for s in VIDEO_SUFFIXES)}",
            field="output",
        )
    if outputs.frame_format not in FRAME_FORMATS:
        raise InvalidInputError(
            f"frame format {outputs.frame_format!r}: use one of {', '.join(FRAME_FORMATS)}",
            field="output_format",
        )
    if outputs.overlay_fps is not None and not outputs.overlay_fps > 0:
        raise InvalidInputError(f"overlay fps must be positive, got {outputs.overlay_fps}")
    _check_file_target(outputs.json, "json")
    for folder, name in ((outputs.masks_dir, "masks"), (outputs.frames_dir, "frames")):
        if folder is not None and folder.exists() and not folder.is_dir():
            raise InvalidInputError(
                f"{str(folder)!r} is a file; give a folder for the per-frame {name}", field=name
            )


def check_tracking(
    direction: str, start_frame: int | None, max_frames: int | None, fps: float | None
) -> None:
    if direction not in DIRECTIONS:
        raise InvalidInputError(
            f"unknown direction {direction!r}; valid values are {', '.join(DIRECTIONS)}",
            field="direction",
        )
    if max_frames is not None and max_frames < 0:
        raise InvalidInputError(f"max_frames must be >= 0, got {max_frames}", field="max_frames")
    if start_frame is not None and start_frame < 0:
        raise InvalidInputError(f"start_frame must be >= 0, got {start_frame}", field="start_frame")
    if fps is not None and not fps > 0:
        raise InvalidInputError(f"fps must be positive, got {fps}", field="fps")


def _check_file_target(path: Path | None, field: str) -> None:
    if path is not None and path.is_dir():
        raise InvalidInputError(f"{str(path)!r} is a folder; give a file name", field=field)
