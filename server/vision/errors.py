"""Errors of the vision domain, all derived from :class:`VisionError`."""

from __future__ import annotations

from enum import StrEnum


class VisionError(Exception):
    """Base class of every error the vision stage raises on purpose."""


class RejectReason(StrEnum):
    """Why an uploaded file was refused as an image. Stable: clients may show a text per code."""

    EMPTY = "empty"
    TOO_LARGE = "too_large"
    NOT_AN_IMAGE = "not_an_image"
    UNSUPPORTED_FORMAT = "unsupported_format"
    TOO_MANY_PIXELS = "too_many_pixels"
    TOO_SMALL = "too_small"
    CORRUPT = "corrupt"


class ImageRejected(VisionError):
    """The bytes are not an image the stage accepts. ``message`` is safe to show to a user."""

    def __init__(self, reason: RejectReason, message: str) -> None:
        super().__init__(f"{reason.value}: {message}")
        self.reason = reason
        self.message = message


class ModelIntegrityError(VisionError):
    """A model file is missing or does not match the checksum in its manifest."""
