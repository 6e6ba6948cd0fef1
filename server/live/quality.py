"""Picture quality of one camera frame, from cheap signals (about a millisecond a frame).

Everything is measured on a small grey copy of fixed width, so the figures do not depend on the
camera's resolution:

* brightness: mean luminance (0 black, 1 white);
* sharpness: fine detail over coarse detail (the mean absolute Laplacian at that width over the
  same at half of it). Blur takes away the fine before the coarse, so the ratio drops whatever
  the item's own texture (a plain box has little detail at either scale); a picture with
  almost no detail at all counts as blurred too. The thresholds below were set on TrashNet
  photos and blurred copies of them (``tests/live/test_quality.py`` holds the figures);
* motion: mean absolute change of a 32 × 32 thumbnail since the previous analysed frame
  (on TrashNet photos a shift of 8 px in 640 stays below the threshold for at least nine in
  ten, one of 40 px goes over it for nine in ten or more: ``tests/live/test_quality.py``);
* coverage: the share of the picture that differs clearly from the colour of its border (the
  background, when the item is in the middle). Small means too far; nearly all means the item
  runs over the edges (too close, cut off).

None of this is a model: it is there to tell the person how to hold the item, not what it is.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from PIL import Image

from protocol.messages import FrameQuality, LiveIssue

#: Width of the grey copy the measures are taken on.
MEASURE_WIDTH = 320
THUMB_SIDE = 32
#: Side of the colour thumbnail coverage is measured on.
COVERAGE_SIDE = 64

DARK_BELOW = 0.16
BRIGHT_ABOVE = 0.93
BLURRY_BELOW = 0.5
#: Mean absolute Laplacian below which a picture has no detail to speak of.
NO_DETAIL_BELOW = 1.0
MOVING_ABOVE = 0.03
TOO_FAR_BELOW = 0.06
CUT_OFF_ABOVE = 0.92
#: Colour distance (0-255 summed over RGB) from the border's colour that counts as the item.
_ITEM_DISTANCE = 60

Thumb = NDArray[np.float32]


@dataclass(frozen=True, slots=True)
class Measured:
    quality: FrameQuality
    issues: tuple[LiveIssue, ...]
    thumb: Thumb


def measure(image: Image.Image, previous: Thumb | None) -> Measured:
    """Quality of ``image`` (RGB), and its thumbnail to compare the next frame with."""
    height = max(1, round(image.height * MEASURE_WIDTH / max(1, image.width)))
    small = (
        image
        if image.size == (MEASURE_WIDTH, height)
        else image.resize((MEASURE_WIDTH, height), Image.Resampling.BILINEAR)
    )
    grey_image = small.convert("L")
    grey = np.asarray(grey_image, dtype=np.float32)
    brightness = float(grey.mean() / 255.0)
    fine = _detail(grey)
    half = grey_image.resize((MEASURE_WIDTH // 2, max(1, height // 2)), Image.Resampling.BILINEAR)
    coarse = _detail(np.asarray(half, dtype=np.float32))
    sharpness = fine / max(coarse, 1e-3)
    thumb = np.asarray(
        small.convert("L").resize((THUMB_SIDE, THUMB_SIDE), Image.Resampling.BILINEAR),
        dtype=np.float32,
    )
    motion = None if previous is None else float(np.abs(thumb - previous).mean() / 255.0)
    coverage = _coverage(
        np.asarray(small.resize((COVERAGE_SIDE, COVERAGE_SIDE), Image.Resampling.BILINEAR),
                   dtype=np.float32)
    )
    issues: list[LiveIssue] = []
    if brightness < DARK_BELOW:
        issues.append(LiveIssue.TOO_DARK)
    elif brightness > BRIGHT_ABOVE:
        issues.append(LiveIssue.TOO_BRIGHT)
    if motion is not None and motion > MOVING_ABOVE:
        issues.append(LiveIssue.MOVING)
    elif (sharpness < BLURRY_BELOW or fine < NO_DETAIL_BELOW) and (
        LiveIssue.TOO_DARK not in issues
    ):
        # A dark picture has little detail anyway; say what to fix first.
        issues.append(LiveIssue.BLURRY)
    if coverage < TOO_FAR_BELOW:
        issues.append(LiveIssue.TOO_FAR)
    elif coverage > CUT_OFF_ABOVE:
        issues.append(LiveIssue.CUT_OFF)
    quality = FrameQuality(
        brightness=round(brightness, 3),
        sharpness=round(sharpness, 3),
        motion=None if motion is None else round(min(1.0, motion), 4),
        coverage=round(coverage, 3),
    )
    return Measured(quality=quality, issues=tuple(issues), thumb=thumb)


def _detail(grey: NDArray[np.float32]) -> float:
    if grey.shape[0] < 3 or grey.shape[1] < 3:
        return 0.0
    lap = (
        4 * grey[1:-1, 1:-1]
        - grey[:-2, 1:-1]
        - grey[2:, 1:-1]
        - grey[1:-1, :-2]
        - grey[1:-1, 2:]
    )
    return float(np.abs(lap).mean())


def _coverage(rgb: NDArray[np.float32]) -> float:
    border = np.concatenate([rgb[0], rgb[-1], rgb[:, 0], rgb[:, -1]])
    background = np.median(border, axis=0)
    distance = np.abs(rgb - background).sum(axis=2)
    return float((distance > _ITEM_DISTANCE).mean())
