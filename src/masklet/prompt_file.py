"""JSON prompt files: a list of `{"frame", "object", "points", "labels", "box", "mask"}` entries.

`object` is an integer id (kept) or a name (given the smallest unused id from 1, by first
appearance); `mask` is an image path relative to the JSON file, nonzero = foreground. Entry `i`
is `prompts[i]` in error messages, and its numbers are checked by `masklet.prompt_rules`
(the same rules as every other way of giving prompts).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from masklet.errors import InvalidPromptError
from masklet.prompts import AUTO_NAME, ObjectPrompt, ParsedPrompts, merge_prompts

PROMPT_FILE_FIELDS = ("frame", "object", "points", "labels", "box", "mask")


def _read_mask(base: Path, value: Any, where: str) -> np.ndarray:
    if not isinstance(value, str) or not value:
        raise InvalidPromptError(f"{where}: expected a PNG path, got {value!r}", field=where)
    path = base / value
    try:
        with Image.open(path) as image:
            array: np.ndarray = np.asarray(image)
    except (OSError, ValueError) as error:
        raise InvalidPromptError(
            f"{where}: cannot read {str(path)!r}: {error}", field=where
        ) from error
    if array.ndim == 3:  # colour masks: any non-black pixel is foreground; alpha is ignored
        array = np.asarray(array[..., :3].any(axis=-1) if array.shape[-1] >= 3 else array[..., 0])
    return array != 0  # [H, W]


def _fail(field: str, message: str) -> InvalidPromptError:
    return InvalidPromptError(f"{field}: {message}", field=field)


def _entry_fields(entry: Any, where: str, base: Path) -> tuple[Any, dict[str, Any]]:
    """The JSON types of one entry; returns its object key and the ObjectPrompt fields (the
    numbers themselves are checked by `ObjectPrompt`)."""
    if not isinstance(entry, dict):
        raise _fail(where, f"expected an object {{...}}, got {entry!r}")
    unknown = sorted(set(entry) - set(PROMPT_FILE_FIELDS))
    if unknown:
        raise _fail(
            where, f'unknown field "{unknown[0]}"; expected {", ".join(PROMPT_FILE_FIELDS)}'
        )
    frame = entry.get("frame", 0)
    if not isinstance(frame, int) or isinstance(frame, bool) or frame < 0:
        raise _fail(f"{where}.frame", f"expected an integer >= 0, got {frame!r}")
    if "object" not in entry:
        raise _fail(where, 'missing "object" (an integer id or a name)')
    key = entry["object"]
    valid_int = isinstance(key, int) and not isinstance(key, bool) and key >= 0
    if not valid_int and not (isinstance(key, str) and key.strip()):
        raise _fail(f"{where}.object", f"expected an integer id >= 0 or a name, got {key!r}")
    fields: dict[str, Any] = {"frame": frame}
    for name in ("points", "labels", "box"):
        if name in entry:
            _check_numbers(entry[name], f"{where}.{name}", pairs=name == "points")
            fields[name] = entry[name]
    if "box" in fields and len(fields["box"]) != 4:
        raise _fail(f"{where}.box", f"expected [x1, y1, x2, y2], got {fields['box']!r}")
    if "mask" in entry:
        fields["mask"] = _read_mask(base, entry["mask"], f"{where}.mask")
    return key, fields


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _check_numbers(value: Any, field: str, pairs: bool) -> None:
    """A JSON list of numbers (of [x, y] pairs with `pairs`), naming the first bad element."""
    if not isinstance(value, list):
        raise _fail(field, f"expected a list, got {value!r}")
    for j, item in enumerate(value):
        good = (
            isinstance(item, list) and len(item) == 2 and all(_is_number(v) for v in item)
            if pairs
            else _is_number(item)
        )
        if not good:
            expected = "an [x, y] pair of numbers" if pairs else "a number"
            raise _fail(f"{field}[{j}]", f"expected {expected}, got {item!r}")


def load_prompt_file(path: str | Path, merge: bool = True) -> ParsedPrompts:
    """Read a JSON prompt file: one `ObjectPrompt` per entry (`where` = `prompts[i]`), merged
    per object and frame when `merge` (one box and one mask at most)."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise InvalidPromptError(f"cannot read prompt file {str(path)!r}: {error}") from error
    except json.JSONDecodeError as error:
        raise InvalidPromptError(f"prompt file {str(path)!r} is not valid JSON: {error}") from error
    except RecursionError:
        raise InvalidPromptError(f"prompt file {str(path)!r} is nested too deeply") from None
    if not isinstance(data, list) or not data:
        raise InvalidPromptError(
            f"{path.name}: prompts: expected a non-empty JSON list of prompt entries",
            field="prompts",
        )
    try:
        return prompts_from_entries(data, base=path.parent, merge=merge)
    except InvalidPromptError as error:
        raise InvalidPromptError(f"{path.name}: {error}", field=error.field) from None


def prompts_from_entries(entries: list[Any], base: Path, merge: bool = True) -> ParsedPrompts:
    """Prompt-file entries (already parsed JSON) as typed prompts; see `load_prompt_file`."""
    parsed = [_entry_fields(entry, f"prompts[{i}]", base) for i, entry in enumerate(entries)]
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
    prompts = [
        ObjectPrompt(obj_id=ids[key], name=names[ids[key]], where=f"prompts[{i}]", **fields)
        for i, (key, fields) in enumerate(parsed)
    ]
    return ParsedPrompts(prompts=merge_prompts(prompts) if merge else prompts, names=names)


def join_prompts(clicks: ParsedPrompts, file: ParsedPrompts) -> ParsedPrompts:
    """Click-string prompts plus prompt-file prompts; objects with the same name are one object.

    Click objects keep their ids; a file object takes the id of the click object of the same
    name, else its own id when free, else the next unused id. Prompts stay one per entry (the
    pipeline merges them per object and frame)."""
    names = dict(clicks.names)
    by_name = {name: obj_id for obj_id, name in names.items()}
    next_free = max([*names, *file.names, 0]) + 1
    remap: dict[int, int] = {}
    for obj_id, name in file.names.items():
        if name in by_name:
            remap[obj_id] = by_name[name]
        elif obj_id not in names:
            remap[obj_id] = obj_id
        else:
            remap[obj_id], next_free = next_free, next_free + 1
        names[remap[obj_id]] = name
        by_name[name] = remap[obj_id]
    moved = [
        dataclasses.replace(p, obj_id=remap[p.obj_id], name=names[remap[p.obj_id]]) for p in file
    ]
    return ParsedPrompts(prompts=[*clicks.prompts, *moved], names=names)
