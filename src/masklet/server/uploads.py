"""Uploaded files: copied to a name the server chooses, size-checked while copying, and read by
content (PIL / PyAV sniff the bytes), never trusted by their name or declared type."""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

from pydantic import BaseModel, ValidationError
from starlette.datastructures import UploadFile

from masklet.errors import InvalidInputError
from masklet.io.atomic import atomic_output
from masklet.pipelines.limits import Limits, check_json_text
from masklet.server.errors import (
    ApiError,
    PayloadTooLargeError,
    validation_error,
    with_field,
)

COPY_CHUNK = 1 << 20  # 1 MiB
M = TypeVar("M", bound=BaseModel)


async def save_upload(upload: UploadFile, path: Path, max_bytes: int, field: str) -> int:
    """Copy an upload to `path` atomically; 413 past `max_bytes`. Returns the size."""
    size = 0
    with atomic_output(path) as tmp, open(tmp, "wb") as out:
        while chunk := await upload.read(COPY_CHUNK):
            size += len(chunk)
            if size > max_bytes:
                raise PayloadTooLargeError(
                    f"the upload is larger than this server's limit of "
                    f"{max_bytes / (1024 * 1024):g} MB"
                )
            out.write(chunk)
    if size == 0:
        raise with_field(InvalidInputError(f"the uploaded {field} file is empty"), field)
    return size


@contextmanager
def scratch_file(directory: Path) -> Iterator[Path]:
    """A fresh path in `directory`, removed afterwards."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"upload-{secrets.token_hex(12)}"
    try:
        yield path
    finally:
        path.unlink(missing_ok=True)


T = TypeVar("T")


def read_uploaded(read: Callable[[Path], T], path: Path, what: str, field: str) -> T:
    """`read(path)` with the server's path replaced by `what` in error messages."""
    try:
        return read(path)
    except InvalidInputError as error:
        error.args = (str(error).replace(str(path), what),)  # the server's path stays hidden
        raise with_field(error, error.field or field) from None


def parse_json_field(text: str, model: type[M], field: str, limits: Limits) -> M:
    """A JSON form field validated by `model`; 422 naming the field (e.g. `prompts.objects[0]`).
    Its size and nesting depth are checked before parsing (413 past the limits)."""
    check_json_text(text, limits, field)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        raise ApiError(
            422, "invalid_request", f"{field} is not valid JSON: {error}", field=field
        ) from None
    try:
        return model.model_validate(data)
    except ValidationError as error:
        raise validation_error(error, prefix=field) from None
