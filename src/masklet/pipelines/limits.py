"""`Limits`: how much work one request may ask for.

One typed object for every front end: the CLI runs with `Limits.generous()` (a person on their
own machine), the server with the values of its settings (a request from anyone). Each refusal
is a `LimitExceededError` naming the limit, the value asked for and the setting that raises it.
"""

from __future__ import annotations

from dataclasses import dataclass

from masklet.errors import InvalidInputError


class LimitExceededError(InvalidInputError):
    """A request asks for more work than its `Limits` allow (the server answers 413)."""

    def __init__(self, message: str, *, limit: str, field: str | None = None) -> None:
        super().__init__(message, field=field)
        self.limit = limit


@dataclass(frozen=True)
class Limits:
    """Upper bounds on one request's work. `None` means unbounded.

    max_objects: objects per request (given prompts plus text / everything objects).
    max_points_per_object: clicks per object and frame.
    max_image_pixels: width x height of an image or video frame, read from its header before
      any pixel is decoded.
    max_frames: frames of a video.
    max_frame_objects: frames tracked x objects, the unit of video work.
    max_upload_bytes: bytes of one uploaded file.
    max_json_depth / max_json_bytes: nesting and size of a JSON body or field.
    max_everything_prompts: point prompts one segment-everything request runs
      (points_per_side² on each of the 1 + 4 + 16 + ... crops of its crop layers).
    """

    max_objects: int | None = 256
    max_points_per_object: int | None = 512
    max_image_pixels: int | None = 64_000_000
    max_frames: int | None = None
    max_frame_objects: int | None = None
    max_upload_bytes: int | None = None
    max_json_depth: int | None = 32
    max_json_bytes: int | None = 1_000_000
    # 16 x the reference's default grid (32 x 32, no crops): minutes, not hours, on a CPU
    max_everything_prompts: int | None = 16_384

    @classmethod
    def generous(cls) -> Limits:
        """For a person on their own machine: bounded only where more is certainly a mistake."""
        return cls(max_objects=10_000, max_points_per_object=10_000, max_image_pixels=None,
                   max_json_depth=None, max_json_bytes=None,
                   max_everything_prompts=None)  # fmt: skip

    def check(
        self, name: str, value: int, *, what: str, setting: str, field: str | None = None
    ) -> None:
        """Refuse `value` if it exceeds the limit `name` (a field of this class)."""
        limit = getattr(self, name)
        if limit is not None and value > limit:
            raise LimitExceededError(
                f"{what}: {value} is over the limit of {limit} ({setting} raises it)",
                limit=name, field=field,
            )  # fmt: skip


# What raises each limit, for messages: the CLI has no such flags, the server has settings.
SERVER_SETTINGS = {
    "max_objects": "--max-objects",
    "max_points_per_object": "--max-points",
    "max_image_pixels": "--max-image-pixels",
    "max_frames": "--max-video-frames",
    "max_frame_objects": "--max-frame-objects",
    "max_everything_prompts": "--max-everything-prompts",
    "max_upload_bytes": "--max-upload-mb",
    "max_json_depth": "--max-json-depth",
    "max_json_bytes": "--max-json-bytes",
}


def check_json_text(text: str | bytes, limits: Limits, field: str) -> None:
    """Size and nesting depth of a JSON document, checked before it is parsed (a deeply
    nested body would exhaust the parser's recursion)."""
    size = len(text)
    limits.check("max_json_bytes", size, what=f"{field}: JSON bytes",
                 setting="the max_json_bytes limit", field=field)  # fmt: skip
    if limits.max_json_depth is None:
        return
    data = text.encode() if isinstance(text, str) else text
    depth = 0
    in_string = escaped = False
    for byte in data:
        if in_string:
            if escaped:
                escaped = False
            elif byte == 0x5C:  # backslash
                escaped = True
            elif byte == 0x22:  # closing quote
                in_string = False
        elif byte == 0x22:
            in_string = True
        elif byte in (0x5B, 0x7B):  # [ {
            depth += 1
            if depth > limits.max_json_depth:
                raise LimitExceededError(
                    f"{field}: JSON nested deeper than {limits.max_json_depth} levels (the "
                    "max_json_depth limit raises it)",
                    limit="max_json_depth", field=field,
                )  # fmt: skip
        elif byte in (0x5D, 0x7D):  # ] }
            depth -= 1
