"""Batch manifests: JSON Lines, one item (an image or a video and its prompts) per line.

Every line is checked before any model work (`read_manifest`): JSON, fields and their types,
the item id, and the prompts themselves (built with the same functions the CLI uses, see
`masklet.batch.item.build_image_request`). All problems are reported at once, each with its
line number, as one `ManifestError` (the CLI's exit code 2). The format is documented by
`docs/batch-manifest.schema.json`.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from masklet.errors import InvalidInputError, MaskletError
from masklet.pipelines.requests import DIRECTIONS, IMAGE_SUFFIXES, MASK_TYPES

ItemKind = Literal["image", "video"]
LINE_FIELDS = (
    "id", "input", "type", "prompts", "click_coordinates", "click_labels", "click_frames",
    "click_object_ids", "text", "everything", "outputs", "options",
)  # fmt: skip
CLICK_FIELDS = ("click_coordinates", "click_labels", "click_frames", "click_object_ids")
TEXT_FIELDS = (
    "text", "box_threshold", "text_threshold", "max_objects", "redetect_every", "new_object_iou",
)  # fmt: skip
OUTPUTS = ("overlay", "masks", "json")
DEFAULT_OUTPUTS = ("masks", "json")
IMAGE_OPTIONS: Mapping[str, type | tuple[type, ...]] = {"multimask": bool}
VIDEO_OPTIONS: Mapping[str, type | tuple[type, ...]] = {
    "direction": str, "start_frame": int, "max_frames": int, "fps": (int, float),
    "mask_type": str, "output_frame_interval": int,
}  # fmt: skip
ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
RESERVED_IDS = ("report.jsonl", "coco.json")
VIDEO_EVERYTHING = ("every", "frame")  # settings of `everything` that only videos have


class ManifestError(InvalidInputError):
    """One or more manifest lines are invalid; the message lists each with its line number."""


@dataclass(frozen=True)
class BatchItem:
    """One checked manifest line.

    spec: the line's JSON object as written (paths as given); `base` resolves its relative
    paths (the manifest's folder). `digest` is the sha256 of the canonical line, the key a
    rerun compares to decide whether finished outputs are still current.
    """

    item_id: str
    kind: ItemKind
    input: Path
    spec: Mapping[str, Any]
    base: Path
    line: int
    digest: str

    @property
    def outputs(self) -> tuple[str, ...]:
        return tuple(self.spec.get("outputs", DEFAULT_OUTPUTS))

    @property
    def options(self) -> Mapping[str, Any]:
        return dict(self.spec.get("options", {}))


def line_digest(spec: Mapping[str, Any]) -> str:
    """sha256 of a line's canonical JSON (key order and spacing do not matter)."""
    canonical = json.dumps(spec, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def item_kind(spec: Mapping[str, Any], path: Path) -> ItemKind:
    """`type` if given, else by suffix: an image suffix is an image, anything else a video
    (a file any container PyAV opens, or a folder of frames)."""
    if "type" in spec:
        return "image" if spec["type"] == "image" else "video"
    return "image" if path.suffix.lower() in IMAGE_SUFFIXES else "video"


def read_manifest(path: str | Path) -> list[BatchItem]:
    """The items of a JSON Lines manifest (blank lines and `#` comments skipped)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise ManifestError(f"cannot read manifest {str(path)!r}: {error}") from None
    specs: list[tuple[int, Any]] = []
    errors: list[str] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip() or raw.lstrip().startswith("#"):
            continue
        try:
            specs.append((number, json.loads(raw)))
        except (json.JSONDecodeError, RecursionError) as error:
            errors.append(f"line {number}: not valid JSON: {error}")
    items = check_specs(specs, base=path.absolute().parent, errors=errors)
    if not items and not errors:
        errors.append("the manifest has no items (one JSON object per line)")
    if errors:
        raise ManifestError(_summary(path.name, errors))
    return items


def items_from_specs(specs: Iterable[Mapping[str, Any]], base: str | Path = ".") -> list[BatchItem]:
    """Items from line objects given in Python (the `masklet.batch.run` API), numbered from 1."""
    errors: list[str] = []
    items = check_specs(list(enumerate(specs, start=1)), base=Path(base).absolute(), errors=errors)
    if errors:
        raise ManifestError(_summary("items", errors))
    return items


def _summary(name: str, errors: Sequence[str]) -> str:
    shown = "; ".join(errors[:20])
    more = f"; ... and {len(errors) - 20} more" if len(errors) > 20 else ""
    return f"{name}: {len(errors)} invalid line(s): {shown}{more}"


def check_specs(specs: Sequence[tuple[int, Any]], base: Path, errors: list[str]) -> list[BatchItem]:
    """Check every line; problems are appended to `errors` as `line N: ...`."""
    items: list[BatchItem] = []
    seen: dict[str, int] = {}
    for number, spec in specs:
        try:
            item = _check_line(spec, number, base)
        except MaskletError as error:
            errors.append(f"line {number}: {error}")
            continue
        item_id = item.item_id
        if "id" in spec and item_id in seen:
            errors.append(f"line {number}: id {item_id!r} is already used on line {seen[item_id]}")
            continue
        if "id" not in spec:  # derived ids: the file's stem, numbered on collision
            k = 2
            while item_id in seen:
                item_id, k = f"{item.item_id}-{k}", k + 1
        seen[item_id] = number
        items.append(_with_id(item, item_id))
    return items


def _with_id(item: BatchItem, item_id: str) -> BatchItem:
    from dataclasses import replace

    return replace(item, item_id=item_id)


def _fail(field: str, message: str) -> InvalidInputError:
    return InvalidInputError(f"{field}: {message}", field=field)


def _check_line(spec: Any, number: int, base: Path) -> BatchItem:
    if not isinstance(spec, dict):
        raise InvalidInputError(f"expected a JSON object {{...}}, got {type(spec).__name__}")
    unknown = sorted(set(spec) - set(LINE_FIELDS))
    if unknown:
        raise _fail(unknown[0], f"unknown field; expected one of {', '.join(LINE_FIELDS)}")
    source = spec.get("input")
    if not isinstance(source, str) or not source:
        raise _fail("input", f"expected an image or video path, got {source!r}")
    if spec.get("type", "image") not in ("image", "video"):
        raise _fail("type", f'expected "image" or "video", got {spec["type"]!r}')
    path = Path(source) if Path(source).is_absolute() else base / source
    kind = item_kind(spec, path)
    item_id = spec.get("id", Path(source).stem or "item")
    if not isinstance(item_id, str) or not ID_PATTERN.fullmatch(item_id) or item_id in RESERVED_IDS:
        raise _fail(
            "id",
            f"expected 1-128 letters, digits, '.', '_' or '-' starting with a letter or digit "
            f"(a folder name), not {', '.join(RESERVED_IDS)}; got {item_id!r}"
            + ("" if "id" in spec else " (derived from the input's name; give an id)"),
        )
    _check_outputs(spec.get("outputs", list(DEFAULT_OUTPUTS)))
    _check_options(spec.get("options", {}), kind)
    _check_text(spec.get("text"))
    _check_everything(spec, kind)
    for name in CLICK_FIELDS:
        if name in spec and not isinstance(spec[name], str):
            raise _fail(name, f"expected a Replicate click string, got {spec[name]!r}")
    if "prompts" in spec and (not isinstance(spec["prompts"], list) or not spec["prompts"]):
        raise _fail("prompts", "expected a non-empty list of prompt-file entries")
    if not any(k in spec for k in ("prompts", "click_coordinates", "text", "everything")):
        raise InvalidInputError(
            'no prompts: give "prompts" (prompt-file entries), "click_coordinates", "text" or '
            '"everything"',
            field="prompts",
        )
    from masklet.batch.item import build_prompts

    build_prompts(spec, base)  # the prompts' own rules; bounds are checked against the pixels
    item = BatchItem(str(item_id), kind, path, spec, base, number, line_digest(spec))
    return item


def _check_outputs(outputs: Any) -> None:
    if not isinstance(outputs, list) or not outputs:
        raise _fail(
            "outputs", f"expected a non-empty list of {', '.join(OUTPUTS)}; got {outputs!r}"
        )
    for k, name in enumerate(outputs):
        if name not in OUTPUTS:
            raise _fail(f"outputs[{k}]", f"expected one of {', '.join(OUTPUTS)}, got {name!r}")


def _check_options(options: Any, kind: ItemKind) -> None:
    if not isinstance(options, dict):
        raise _fail("options", f"expected an object, got {options!r}")
    allowed = IMAGE_OPTIONS if kind == "image" else VIDEO_OPTIONS
    for name, value in options.items():
        if name not in allowed:
            raise _fail(
                f"options.{name}",
                f"not an option of {kind} items; expected one of {', '.join(allowed)}",
            )
        expected = allowed[name]
        if not isinstance(value, expected) or (isinstance(value, bool) and expected is not bool):
            raise _fail(f"options.{name}", f"wrong type: {value!r}")
    if options.get("direction", "forward") not in DIRECTIONS:
        raise _fail("options.direction", f"expected one of {', '.join(DIRECTIONS)}")
    if options.get("mask_type", "highlighted") not in MASK_TYPES:
        raise _fail("options.mask_type", f"expected one of {', '.join(MASK_TYPES)}")


def _check_text(text: Any) -> None:
    if text is None or (isinstance(text, str) and text.strip()):
        return
    if not isinstance(text, dict) or not isinstance(text.get("text"), str):
        raise _fail("text", f'expected "a dog." or {{"text": "a dog.", ...}}, got {text!r}')
    unknown = sorted(set(text) - set(TEXT_FIELDS))
    if unknown:
        raise _fail(f"text.{unknown[0]}", f"unknown field; expected {', '.join(TEXT_FIELDS)}")


def _check_everything(spec: Mapping[str, Any], kind: ItemKind) -> None:
    """`"everything": true` or the generator's settings (`EverythingQuery`'s fields), checked
    by the pipeline's own rules (a video's `frame` against its length when the item runs)."""
    from typing import get_args, get_type_hints

    from masklet.batch.item import everything_query, text_query
    from masklet.pipelines.requests import EverythingQuery
    from masklet.pipelines.validation import check_everything

    value = spec.get("everything")
    if value is None:
        return
    if value is not True:
        if not isinstance(value, dict):
            raise _fail("everything", f"expected true or an object of settings, got {value!r}")
        hints = get_type_hints(EverythingQuery)
        allowed = [n for n in hints if kind == "video" or n not in VIDEO_EVERYTHING]
        for name, setting in value.items():
            if name not in allowed:
                raise _fail(f"everything.{name}",
                            f"not a setting of {kind} items; expected one of {', '.join(allowed)}")  # fmt: skip
            wanted = float if hints[name] is float else int
            optional = setting is None and type(None) in get_args(hints[name])
            if not optional and (
                isinstance(setting, bool) or not isinstance(setting, (wanted, int))
            ):
                raise _fail(f"everything.{name}", f"expected a {wanted.__name__}, got {setting!r}")
    check_everything(everything_query(spec), text_query(spec), None)
