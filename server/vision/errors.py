"""Errors of the vision domain, all derived from :class:`VisionError`."""

from __future__ import annotations

from enum import StrEnum

from server.errors import ImageInvalid


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


class ImageRejected(VisionError, ImageInvalid):
    """The bytes are not an image the stage accepts. ``message`` is safe to show to a user.

    It is the domain's ``image_invalid`` error: the scan fails with that code, not retryable,
    since the same bytes would fail again.
    """

    def __init__(self, reason: RejectReason, message: str) -> None:
        ImageInvalid.__init__(self, message)
        self.args = (f"{reason.value}: {message}",)
        self.reason = reason
        self.message = message


class ModelIntegrityError(VisionError):
    """A model file is missing or does not match the checksum in its manifest."""
