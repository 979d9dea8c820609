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
  generate names, and we follow those). An automatic name never equals a given one (or
  another automatic one): when `object_<k>` is taken, the next free `object_<n>`, n > k, is
  used, so an unnamed click never joins a named object by accident. Names map to ids 1, 2,
  3... by first appearance.
* Lists longer than the clicks are rejected (Replicate's readme does not define them).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from masklet.errors import InvalidPromptError
from masklet.prompt_rules import (
    EXCLUDE,
    INCLUDE,
    check_box,
    check_box_inside,
    check_inside,
    check_labels,
    check_mask_size,
    check_points,
)

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
    accepted and converted, and checked with `masklet.prompt_rules` (finite, >= 0, labels 0/1,
    ordered box corners).

    where: the field this prompt came from, for error messages (`prompts[2]`, `--box 1`);
    point_names: the field of each point when they came from separate fields (click strings);
    fields: the field of "frame", "box", "mask" or "labels" when not `{where}.<part>`.
    """

    frame: int
    obj_id: int
    name: str
    points: np.ndarray | None = None
    labels: np.ndarray | None = None
    box: np.ndarray | None = None
    mask: np.ndarray | None = None
    where: str | None = None
    point_names: tuple[str, ...] | None = None
    fields: Mapping[str, str] | None = None

    @property
    def field(self) -> str:
        """The field name errors about this prompt use ("" when the prompt is the whole
        request body: its parts are then named alone, `points[0]`)."""
        if self.where is not None:
            return self.where
        return f"object {self.name!r} on frame {self.frame}"

    def part_field(self, part: str) -> str:
        """The field of `part` ("frame", "box", "mask", "labels"): `{where}.{part}` unless
        the prompt came from separate fields (click strings, CLI flags)."""
        return (self.fields or {}).get(part) or _join(self.field, part)

    @property
    def frame_field(self) -> str:
        return self.part_field("frame")

    def point_field(self, index: int) -> str:
        if self.point_names is not None:
            return self.point_names[index]
        return _join(self.field, f"points[{index}]")

    def __post_init__(self) -> None:
        what = self.field
        if isinstance(self.frame, bool) or not isinstance(self.frame, (int, np.integer)):
            raise InvalidPromptError(
                f"{self.part_field('frame')}: expected a whole frame number, got {self.frame!r}",
                field=self.part_field("frame"),
            )
        if self.frame < 0:
            raise InvalidPromptError(
                f"{self.part_field('frame')}: frame must be >= 0, got {self.frame}",
                field=self.part_field("frame"),
            )
        if self.points is None and self.labels is not None:
            raise InvalidPromptError(
                f"{self.part_field('labels')}: labels were given without points",
                field=self.part_field("labels"),
            )
        if self.points is None and self.box is None and self.mask is None:
            raise InvalidPromptError(
                f"{what or 'prompt'}: give at least one of points, box or mask", field=what or None
            )
        if self.points is not None:
            points = check_points(
                _array(self.points, _join(what, "points")), _join(what, "points"), self.point_names
            )
            labels = np.full(len(points), INCLUDE, np.int32)
            if self.labels is not None:
                given = _array(self.labels, self.part_field("labels"))
                check_labels(given, len(points), self.part_field("labels"))
                labels = given.astype(np.int32)
            object.__setattr__(self, "points", points)
            object.__setattr__(self, "labels", labels)
        if self.box is not None:
            object.__setattr__(
                self,
                "box",
                check_box(_array(self.box, self.part_field("box")), self.part_field("box")),
            )
        if self.mask is not None:
            mask = np.asarray(self.mask)
            if mask.ndim != 2 or mask.size == 0:
                raise InvalidPromptError(
                    f"{self.part_field('mask')}: a mask must be [H, W], got shape {mask.shape}",
                    field=self.part_field("mask"),
                )
            object.__setattr__(self, "mask", mask.astype(bool))


def _join(prefix: str, part: str) -> str:
    return f"{prefix}.{part}" if prefix else part


def _array(value: Any, field: str) -> np.ndarray:
    """A list / array of numbers as a numpy array, or an error naming the field."""
    try:
        array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise InvalidPromptError(f"{field}: expected numbers, got {value!r}", field=field) from None
    return array


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


def _auto_names(given: list[str], count: int) -> list[str]:
    """Names for the clicks after the `given` ones: `object_<k>` (k the 1-based click position),
    or the next free `object_<n>` when that is a given or already generated name."""
    used = set(given)
    names: list[str] = []
    for position in range(len(given) + 1, count + 1):
        number = position
        while AUTO_NAME.format(number) in used:
            number += 1
        used.add(AUTO_NAME.format(number))
        names.append(AUTO_NAME.format(number))
    return names


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
    names = given_names + _auto_names(given_names, count)

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
            where=f"click_coordinates[{positions[0]}]",
            point_names=tuple(f"click_coordinates[{k}]" for k in positions),
            fields={"frame": f"click_frames[{positions[0]}]", "labels": "click_labels"},
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
    """`"X,Y"` or `"X,Y,LABEL"` (LABEL 1 include, default, or 0 exclude) -> (x, y, label).
    The coordinates are checked with the prompt they become (`masklet.prompt_rules`)."""
    values = _numbers(text, "--point", 'X,Y" or "X,Y,LABEL')
    if len(values) not in (2, 3):
        raise InvalidPromptError(f'--point expects "X,Y" or "X,Y,LABEL", got "{text}"')
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
    x1, y1, x2, y2 = values  # the numbers are checked with the prompt (masklet.prompt_rules)
    return x1, y1, x2, y2


# -- merging and bounds ---------------------------------------------------------------------------


def merge_prompts(prompts: Sequence[ObjectPrompt]) -> list[ObjectPrompt]:
    """One prompt per (object, frame), in order of first appearance: clicks add up (each keeps
    its field name); a second box or mask for the same object and frame is an error."""
    merged: dict[tuple[int, int], ObjectPrompt] = {}
    for p in prompts:
        key = (p.obj_id, p.frame)
        if key not in merged:
            merged[key] = p
            continue
        first = merged[key]
        for name in ("box", "mask"):
            if getattr(first, name) is not None and getattr(p, name) is not None:
                raise InvalidPromptError(
                    f"{p.field}.{name}: object {p.name!r} already has a {name} on frame "
                    f"{p.frame} ({first.field}); give one {name} per object and frame",
                    field=f"{p.field}.{name}",
                )
        points, labels, point_names = first.points, first.labels, None
        if p.points is not None:
            count = 0 if first.points is None else len(first.points)
            names = [first.point_field(j) for j in range(count)]
            names += [p.point_field(j) for j in range(len(p.points))]
            points = p.points if points is None else np.concatenate([points, p.points])
            labels = p.labels if labels is None else np.concatenate([labels, p.labels])  # type: ignore[list-item]
            point_names = tuple(names)
        merged[key] = ObjectPrompt(
            frame=p.frame, obj_id=p.obj_id, name=first.name, points=points, labels=labels,
            box=first.box if first.box is not None else p.box,
            mask=first.mask if first.mask is not None else p.mask,
            where=first.where, point_names=point_names or first.point_names,
            fields=first.fields,
        )  # fmt: skip
    return list(merged.values())


def validate_in_bounds(
    prompt: ObjectPrompt, width: int, height: int, surface: str = "frame"
) -> None:
    """Raise if a point or box lies outside the `width` x `height` surface or the mask's size
    differs (the rules of `masklet.prompt_rules`, fields named after the prompt's `where`)."""
    if prompt.points is not None:
        for j, xy in enumerate(prompt.points):
            check_inside(xy, width, height, prompt.point_field(j), surface)
    if prompt.box is not None:
        check_box_inside(prompt.box, width, height, prompt.part_field("box"), surface)
    if prompt.mask is not None:
        check_mask_size(prompt.mask, width, height, prompt.part_field("mask"))
