"""Typed prompts and the three ways users write them: Replicate click strings, CLI flags and
JSON prompt files.

Every parser turns text into `ObjectPrompt`s (one per object and frame) and rejects malformed
input with an `InvalidPromptError` that quotes the offending text, so a user can find and fix
it without reading code.

Click strings follow the Replicate `meta/sam-2-video` inputs:

* `click_coordinates` `"[x,y],[x,y],..."` sets the number of clicks; spaces are ignored.
* `click_labels` `"1,0,..."` (1 include, 0 exclude) and `click_frames` `"0,10,..."`: when
  shorter than the clicks, the last value repeats; absent means all 1 / all frame 0.
* `click_object_ids` `"dog,dog,cat"`: clicks with the same name form one object. Clicks without
  a name get `object_<k>`, k being the click's 1-based position, as the Replicate predictor
  does (its readme's summary says names repeat like labels; its object-id section and code
  generate names, and we follow those). Names map to ids 1, 2, 3... by first appearance.
* Lists longer than the clicks are rejected (Replicate's readme does not define them).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from masklet.errors import InvalidPromptError

INCLUDE, EXCLUDE = 1, 0  # point labels: part of the object / not part of it
AUTO_NAME = "object_{}"  # names for clicks without one, numbered by click position
_NUMBER = r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)"
_PAIR = re.compile(rf"({_NUMBER}),({_NUMBER})")
_INTEGER = re.compile(r"[-+]?\d+")
PROMPT_FILE_FIELDS = ("frame", "object", "points", "labels", "box", "mask")


@dataclass(frozen=True, eq=False)
class ObjectPrompt:
    """What the user said about one object on one frame.

    points: `[N, 2]` float32 pixel (x, y); labels: `[N]` int32, 1 include / 0 exclude (all 1 if
    omitted); box: `[4]` float32 pixel (x1, y1, x2, y2); mask: `[H, W]` bool. Lists are
    accepted and converted.
    """

    frame: int
    obj_id: int
    name: str
    points: np.ndarray | None = None
    labels: np.ndarray | None = None
    box: np.ndarray | None = None
    mask: np.ndarray | None = None

    def __post_init__(self) -> None:
        what = f"prompt for {self.name!r} on frame {self.frame}"
        if self.frame < 0:
            raise InvalidPromptError(f"{what}: frame must be >= 0, got {self.frame}")
        if self.points is None and self.box is None and self.mask is None:
            raise InvalidPromptError(f"{what}: give at least one of points, box or mask")
        if self.points is None and self.labels is not None:
            raise InvalidPromptError(f"{what}: labels were given without points")
        if self.points is not None:
            points = np.asarray(self.points, dtype=np.float32)
            if points.ndim != 2 or points.shape[1] != 2 or len(points) == 0:
                raise InvalidPromptError(f"{what}: points must be [N, 2], got {points.shape}")
            labels = np.full(len(points), INCLUDE, np.int32)
            if self.labels is not None:
                labels = np.asarray(self.labels).astype(np.int32)
                if labels.shape != (len(points),):
                    raise InvalidPromptError(
                        f"{what}: {len(points)} points need {len(points)} labels, "
                        f"got shape {labels.shape}"
                    )
                if not np.isin(labels, (INCLUDE, EXCLUDE)).all():
                    raise InvalidPromptError(f"{what}: labels must be 0 or 1, got {labels}")
            object.__setattr__(self, "points", points)
            object.__setattr__(self, "labels", labels)
        if self.box is not None:
            box = np.asarray(self.box, dtype=np.float32)
            if box.shape != (4,) or not (box[2] > box[0] and box[3] > box[1]):
                raise InvalidPromptError(
                    f"{what}: box must be [x1, y1, x2, y2] with x2 > x1 and y2 > y1, "
                    f"got {box.tolist()}"
                )
            object.__setattr__(self, "box", box)
        if self.mask is not None:
            mask = np.asarray(self.mask)
            if mask.ndim != 2:
                raise InvalidPromptError(f"{what}: mask must be [H, W], got {mask.shape}")
            object.__setattr__(self, "mask", mask.astype(bool))


@dataclass(frozen=True)
class ParsedPrompts:
    """Prompts in the order their (object, frame) first appeared, and `obj_id -> name`."""

    prompts: list[ObjectPrompt]
    names: dict[int, str]

    def __iter__(self) -> Iterator[ObjectPrompt]:
        return iter(self.prompts)

    def __len__(self) -> int:
        return len(self.prompts)

    def __getitem__(self, index: int) -> ObjectPrompt:
        return self.prompts[index]


# -- Replicate click strings ---------------------------------------------------------------------


def _parse_coordinates(text: str) -> list[tuple[float, float]]:
    compact = re.sub(r"\s+", "", text)
    example = '"[391,239],[178,320]"'
    if not compact:
        raise InvalidPromptError(f"click_coordinates is empty: expected [x,y] pairs like {example}")
    if compact.startswith("[[") and compact.endswith("]]"):
        compact = compact[1:-1]  # a JSON-style list of pairs
    clicks: list[tuple[float, float]] = []
    position = 0
    while position < len(compact):
        if clicks:
            if compact[position] != ",":
                bad = compact[position:].split(",[")[0]
                raise InvalidPromptError(
                    f'click_coordinates: expected "," between pairs, got "{bad}" after '
                    f'"[{clicks[-1][0]:g},{clicks[-1][1]:g}]"'
                )
            position += 1
            if position == len(compact):
                raise InvalidPromptError(
                    f'click_coordinates: nothing after the last "," in "{text}"'
                )
        end = compact.find("]", position)
        group = compact[position : end + 1] if end >= 0 else compact[position:]
        match = _PAIR.fullmatch(group[1:-1]) if group.startswith("[") and end >= 0 else None
        if match is None:
            raise InvalidPromptError(
                f'click_coordinates: expected "[x,y]" pairs like {example}, got "{group}"'
            )
        x, y = float(match.group(1)), float(match.group(2))
        if x < 0 or y < 0:
            raise InvalidPromptError(
                f'click_coordinates: pixel coordinates must be >= 0, got "{group}"'
            )
        clicks.append((x, y))
        position = end + 1
    return clicks


def _split_list(field: str, text: str | None, count: int) -> list[str] | None:
    """Comma-separated entries of an optional list, or None when it was not given."""
    if text is None or not text.strip():
        return None
    entries = [entry.strip() for entry in text.split(",")]
    for entry in entries:
        if not entry:
            raise InvalidPromptError(f'{field}: empty entry in "{text}"; remove the extra comma')
    if len(entries) > count:
        raise InvalidPromptError(
            f'{field} has {len(entries)} values ("{text}") but click_coordinates has {count} '
            f"click{'s' if count != 1 else ''}; give at most one value per click"
        )
    return entries


def _repeat_last(entries: list[str], count: int) -> list[str]:
    return entries + [entries[-1]] * (count - len(entries))


def parse_click_strings(
    coordinates: str,
    labels: str | None = None,
    frames: str | None = None,
    object_ids: str | None = None,
) -> ParsedPrompts:
    """Parse Replicate-style click strings into one ObjectPrompt per (object, frame).

    >>> parsed = parse_click_strings("[100,100],[200,200]", "1", "0", "dog,dog")
    >>> [(p.obj_id, p.name, p.points.tolist()) for p in parsed]
    [(1, 'dog', [[100.0, 100.0], [200.0, 200.0]])]
    """
    clicks = _parse_coordinates(coordinates)
    count = len(clicks)

    label_values: list[int] = []
    for entry in _repeat_last(_split_list("click_labels", labels, count) or ["1"], count):
        if entry not in ("0", "1"):
            raise InvalidPromptError(
                f'click_labels: expected 1 (include) or 0 (exclude), got "{entry}" in "{labels}"'
            )
        label_values.append(int(entry))

    frame_values: list[int] = []
    for entry in _repeat_last(_split_list("click_frames", frames, count) or ["0"], count):
        if not _INTEGER.fullmatch(entry):
            raise InvalidPromptError(
                f'click_frames: expected whole frame numbers, got "{entry}" in "{frames}"'
            )
        if int(entry) < 0:
            raise InvalidPromptError(f'click_frames: frame numbers must be >= 0, got "{entry}"')
        frame_values.append(int(entry))

    given_names = _split_list("click_object_ids", object_ids, count) or []
    names = given_names + [AUTO_NAME.format(k) for k in range(len(given_names) + 1, count + 1)]

    ids: dict[str, int] = {}
    grouped: dict[tuple[int, int], list[int]] = {}  # (obj_id, frame) -> click positions
    for position, name in enumerate(names):
        obj_id = ids.setdefault(name, len(ids) + 1)
        grouped.setdefault((obj_id, frame_values[position]), []).append(position)
    id_to_name = {obj_id: name for name, obj_id in ids.items()}
    prompts = [
        ObjectPrompt(
            frame=frame,
            obj_id=obj_id,
            name=id_to_name[obj_id],
            points=np.array([clicks[k] for k in positions], np.float32),  # [N, 2]
            labels=np.array([label_values[k] for k in positions], np.int32),  # [N]
        )
        for (obj_id, frame), positions in grouped.items()
    ]
    return ParsedPrompts(prompts=prompts, names=id_to_name)


# -- CLI flags -----------------------------------------------------------------------------------


def _numbers(text: str, flag: str, expected: str) -> list[float]:
    parts = [part.strip() for part in text.split(",")]
    if not all(re.fullmatch(_NUMBER, part) for part in parts):
        raise InvalidPromptError(f'{flag} expects "{expected}", got "{text}"')
    return [float(part) for part in parts]


def parse_point(text: str) -> tuple[float, float, int]:
    """`"X,Y"` or `"X,Y,LABEL"` (LABEL 1 include, default, or 0 exclude) -> (x, y, label)."""
    values = _numbers(text, "--point", 'X,Y" or "X,Y,LABEL')
    if len(values) not in (2, 3):
        raise InvalidPromptError(f'--point expects "X,Y" or "X,Y,LABEL", got "{text}"')
    if values[0] < 0 or values[1] < 0:
        raise InvalidPromptError(f'--point coordinates must be >= 0 pixels, got "{text}"')
    label = INCLUDE if len(values) == 2 else values[2]
    if label not in (INCLUDE, EXCLUDE):
        raise InvalidPromptError(
            f'--point label must be 1 (include) or 0 (exclude), got "{text.split(",")[2].strip()}"'
            f' in "{text}"'
        )
    return values[0], values[1], int(label)


def parse_box(text: str) -> tuple[float, float, float, float]:
    """`"X1,Y1,X2,Y2"` (top-left, bottom-right corner in pixels) -> (x1, y1, x2, y2)."""
    values = _numbers(text, "--box", "X1,Y1,X2,Y2")
    if len(values) != 4:
        raise InvalidPromptError(f'--box expects 4 numbers "X1,Y1,X2,Y2", got "{text}"')
    x1, y1, x2, y2 = values
    if x2 <= x1 or y2 <= y1:
        raise InvalidPromptError(
            f'--box needs X2 > X1 and Y2 > Y1 (top-left then bottom-right corner), got "{text}"'
        )
    if x1 < 0 or y1 < 0:
        raise InvalidPromptError(f'--box coordinates must be >= 0 pixels, got "{text}"')
    return x1, y1, x2, y2


# -- JSON prompt files ---------------------------------------------------------------------------


def _read_mask(base: Path, value: Any, where: str) -> np.ndarray:
    if not isinstance(value, str) or not value:
        raise InvalidPromptError(f'{where} "mask": expected a PNG path, got {value!r}')
    path = base / value
    try:
        with Image.open(path) as image:
            array: np.ndarray = np.asarray(image)
    except (OSError, ValueError) as error:
        raise InvalidPromptError(f'{where} "mask": cannot read {str(path)!r}: {error}') from error
    if array.ndim == 3:  # colour masks: any non-black pixel is foreground; alpha is ignored
        array = np.asarray(array[..., :3].any(axis=-1) if array.shape[-1] >= 3 else array[..., 0])
    return array != 0  # [H, W]


def _entry_to_prompt(entry: Any, where: str, base: Path) -> tuple[Any, dict[str, Any]]:
    """Validate one JSON entry; returns its object key and the ObjectPrompt fields."""
    if not isinstance(entry, dict):
        raise InvalidPromptError(f"{where}: expected an object {{...}}, got {entry!r}")
    unknown = sorted(set(entry) - set(PROMPT_FILE_FIELDS))
    if unknown:
        raise InvalidPromptError(
            f'{where}: unknown field "{unknown[0]}"; expected {", ".join(PROMPT_FILE_FIELDS)}'
        )
    frame = entry.get("frame", 0)
    if not isinstance(frame, int) or isinstance(frame, bool) or frame < 0:
        raise InvalidPromptError(f'{where} "frame": expected an integer >= 0, got {frame!r}')
    if "object" not in entry:
        raise InvalidPromptError(f'{where}: missing "object" (an integer id or a name)')
    key = entry["object"]
    valid_int = isinstance(key, int) and not isinstance(key, bool) and key >= 0
    if not valid_int and not (isinstance(key, str) and key.strip()):
        raise InvalidPromptError(
            f'{where} "object": expected an integer id >= 0 or a name, got {key!r}'
        )
    fields: dict[str, Any] = {"frame": frame}
    if "points" in entry:
        points = entry["points"]
        if (
            not isinstance(points, list)
            or not points
            or not all(_is_pair(point) for point in points)
        ):
            raise InvalidPromptError(
                f'{where} "points": expected a list of [x, y] pairs, got {points!r}'
            )
        fields["points"] = points
        if "labels" in entry:
            labels = entry["labels"]
            if not isinstance(labels, list) or any(lab not in (0, 1) for lab in labels):
                raise InvalidPromptError(
                    f'{where} "labels": expected a list of 0/1, got {labels!r}'
                )
            if len(labels) != len(points):
                raise InvalidPromptError(
                    f'{where} "labels": {len(labels)} labels for {len(points)} points'
                )
            fields["labels"] = labels
    elif "labels" in entry:
        raise InvalidPromptError(f'{where} "labels": given without "points"')
    if "box" in entry:
        box = entry["box"]
        if not isinstance(box, list) or len(box) != 4 or not all(_is_number(v) for v in box):
            raise InvalidPromptError(f'{where} "box": expected [x1, y1, x2, y2], got {box!r}')
        if box[2] <= box[0] or box[3] <= box[1]:
            raise InvalidPromptError(f'{where} "box": needs x2 > x1 and y2 > y1, got {box!r}')
        fields["box"] = box
    if "mask" in entry:
        fields["mask"] = _read_mask(base, entry["mask"], where)
    if not {"points", "box", "mask"} & set(fields):
        raise InvalidPromptError(f'{where}: give at least one of "points", "box" or "mask"')
    return key, fields


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _is_pair(value: Any) -> bool:
    return isinstance(value, list) and len(value) == 2 and all(_is_number(v) for v in value)


def load_prompt_file(path: str | Path) -> ParsedPrompts:
    """Read a JSON list of `{"frame", "object", "points", "labels", "box", "mask"}` entries.

    `object` is an integer id (kept) or a name (given the smallest unused id from 1, by first
    appearance); `mask` is an image path relative to the JSON file, nonzero = foreground.
    Entries for the same object and frame are merged (one box and one mask at most).
    """
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise InvalidPromptError(f"cannot read prompt file {str(path)!r}: {error}") from error
    except json.JSONDecodeError as error:
        raise InvalidPromptError(f"prompt file {str(path)!r} is not valid JSON: {error}") from error
    if not isinstance(data, list) or not data:
        raise InvalidPromptError(
            f"prompt file {str(path)!r}: expected a non-empty JSON list of prompt entries"
        )
    parsed = [
        _entry_to_prompt(entry, f"{path.name} entry {index}", path.parent)
        for index, entry in enumerate(data)
    ]
    # Integer ids are the user's own; names fill the smallest ids still free, in order.
    taken = {key for key, _ in parsed if isinstance(key, int)}
    ids: dict[Any, int] = {}
    for key, _ in parsed:
        if key not in ids:
            ids[key] = key if isinstance(key, int) else min(set(range(1, len(taken) + 2)) - taken)
            taken.add(ids[key])
    names = {
        obj_id: key if isinstance(key, str) else AUTO_NAME.format(key)
        for key, obj_id in ids.items()
    }

    merged: dict[tuple[int, int], dict[str, Any]] = {}
    for index, (key, fields) in enumerate(parsed):
        target = merged.setdefault((ids[key], fields["frame"]), {"frame": fields["frame"]})
        for field in ("box", "mask"):
            if field in fields and field in target:
                raise InvalidPromptError(
                    f'{path.name} entry {index} "{field}": object {key!r} already has a {field} '
                    f"on frame {fields['frame']}; give one {field} per object and frame"
                )
            if field in fields:
                target[field] = fields[field]
        if "points" in fields:
            target.setdefault("points", []).extend(fields["points"])
            labels = fields.get("labels", [INCLUDE] * len(fields["points"]))
            target.setdefault("labels", []).extend(labels)
    prompts = [
        ObjectPrompt(obj_id=obj_id, name=names[obj_id], **fields)
        for (obj_id, _), fields in merged.items()
    ]
    return ParsedPrompts(prompts=prompts, names=names)


# -- bounds --------------------------------------------------------------------------------------


def validate_in_bounds(prompt: ObjectPrompt, width: int, height: int) -> None:
    """Raise if a point or box lies outside the `width` x `height` frame or the mask differs."""
    frame = f"the {width}x{height} frame"
    where = f"object {prompt.name!r} on frame {prompt.frame}"
    if prompt.points is not None:
        for index, (x, y) in enumerate(prompt.points.tolist()):
            if not (0 <= x <= width and 0 <= y <= height):
                raise InvalidPromptError(
                    f"{where}: point {index} ({x:g}, {y:g}) is outside {frame} "
                    f"(x must be in 0..{width}, y in 0..{height})"
                )
    if prompt.box is not None:
        x1, y1, x2, y2 = prompt.box.tolist()
        if not (0 <= x1 and 0 <= y1 and x2 <= width and y2 <= height):
            raise InvalidPromptError(
                f"{where}: box ({x1:g}, {y1:g}, {x2:g}, {y2:g}) is outside {frame}"
            )
    if prompt.mask is not None and prompt.mask.shape != (height, width):
        raise InvalidPromptError(
            f"{where}: mask is {prompt.mask.shape[1]}x{prompt.mask.shape[0]}, expected {frame}'s "
            "size; resize it to the video's resolution"
        )
