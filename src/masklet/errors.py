"""Typed errors. The CLI maps every `MaskletError` to exit code 2 with one line; the server maps
them to 4xx JSON bodies. Messages say what was expected, what was given and what to do."""

from __future__ import annotations


class MaskletError(Exception):
    """Base class of every error masklet raises on purpose.

    field: the input field the error is about, as the user wrote it (`prompts[2].points[0]`,
    `--point 1`, `input.click_frames`); the server returns it in its error body.
    """

    def __init__(self, *args: object, field: str | None = None) -> None:
        super().__init__(*args)
        self.field = field


class InvalidInputError(MaskletError, ValueError):
    """An image, video, file or argument that cannot be used as given."""


class InvalidPromptError(InvalidInputError):
    """A point, box, mask or click string that is malformed or out of range."""


class CheckpointError(MaskletError):
    """A checkpoint that is missing, corrupt, or does not match the model."""


class SessionNotFoundError(MaskletError, KeyError):
    """An unknown video session or object id."""

    def __str__(self) -> str:  # KeyError quotes its message; we want it plain.
        return str(self.args[0]) if self.args else ""


class BusyError(MaskletError):
    """The worker queue is full; try again later."""
