"""A colour per track id: fixed by the id alone, so it never changes during a video, never
depends on which other tracks exist, and is never handed to another track.

Hues step by the golden ratio (each new id lands in the largest gap left by the earlier ones),
with saturation and brightness alternating in cycles of 2 and 3 ids, so that ids whose hues come
close again (3, 5, 8, 13, 21, 34, ... apart: Fibonacci steps) still differ in one of them. Every
colour is bright (value >= 0.85) and saturated (>= 0.65), so it shows over dark and light video.
"""
from __future__ import annotations

import colorsys
from functools import lru_cache

GOLDEN_RATIO_CONJUGATE = 0.6180339887498949
_HUE_START = 0.08  # id 1 is a warm orange rather than pure red
_SATURATIONS = (0.90, 0.65)
_VALUES = (1.0, 0.85, 0.93)

RGB = tuple[int, int, int]


@lru_cache(maxsize=4096)
def track_color(track_id: int) -> RGB:
    """(R, G, B) uint8 values of a track id's colour."""
    n = int(track_id)
    hue = (_HUE_START + (n - 1) * GOLDEN_RATIO_CONJUGATE) % 1.0
    saturation = _SATURATIONS[n % len(_SATURATIONS)]
    value = _VALUES[n % len(_VALUES)]
    r, g, b = colorsys.hsv_to_rgb(hue, saturation, value)
    return round(r * 255), round(g * 255), round(b * 255)


def class_color(label: int) -> RGB:
    """A colour per class index (for colouring by class), from a different part of the sequence."""
    return track_color(int(label) + 1000)


def text_color(background: RGB) -> RGB:
    """Black or white, whichever reads better on `background` (relative luminance)."""
    r, g, b = background
    return (0, 0, 0) if 0.299 * r + 0.587 * g + 0.114 * b > 140 else (255, 255, 255)
