"""Draw tracks on one RGB frame: translucent mask fill, contour, box, and a `#id class score` label.

Fast in the way supervision's annotators are: every mask is painted into one copy of the frame
(largest first, so small objects stay visible on top), then a single blend with the original;
pixels outside every mask come out unchanged. Painting and contour finding work inside each
mask's bounding box, never over the full frame per object.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Sequence

import cv2
import numpy as np

from dvis_cli.errors import InputError
from dvis_cli.inference.results import decode_mask
from dvis_cli.render.palette import RGB, text_color, track_color

SHOW_CHOICES = ("mask", "contour", "box", "label")
DEFAULT_SHOW = frozenset(SHOW_CHOICES)
FONT = cv2.FONT_HERSHEY_SIMPLEX


@dataclass
class Instance:
    """One object to draw: `mask` is an (H, W) bool array or a COCO RLE at the frame size."""

    track_id: int
    mask: np.ndarray | dict
    class_name: str = ""
    score: float | None = None
    color: RGB | None = None  # default: the track id's palette colour

    def label_text(self) -> str:
        parts = [f"#{self.track_id}"]
        if self.class_name:
            parts.append(self.class_name)
        if self.score is not None:
            parts.append(f"{self.score:.2f}")
        return " ".join(parts)


def parse_show(value: str | Iterable[str]) -> frozenset[str]:
    """'mask,contour,box,label' (any subset, any order) -> a set; InputError for unknown parts."""
    parts = value.split(",") if isinstance(value, str) else list(value)
    chosen = {p.strip().lower() for p in parts if p.strip()}
    unknown = sorted(chosen - set(SHOW_CHOICES))
    if unknown:
        raise InputError(f"--show takes {','.join(SHOW_CHOICES)} (any of them, comma-separated), not {','.join(unknown)}")
    return frozenset(chosen)


@dataclass
class _Placed:
    """An instance ready to draw: tight box (x0, y0, x1, y1 exclusive) and its mask inside it."""

    instance: Instance
    color: RGB
    box: tuple[int, int, int, int]
    crop: np.ndarray  # bool (y1 - y0, x1 - x0)
    area: int


def _place(instance: Instance, height: int, width: int) -> _Placed | None:
    mask = decode_mask(instance.mask) if isinstance(instance.mask, dict) else np.asarray(instance.mask, dtype=bool)
    if mask.shape != (height, width):
        raise ValueError(f"mask of track {instance.track_id} is {mask.shape}, the frame is {(height, width)}")
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(mask.any(axis=0))
    y0, y1, x0, x1 = int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1
    crop = mask[y0:y1, x0:x1]
    color = instance.color if instance.color is not None else track_color(instance.track_id)
    return _Placed(instance, tuple(int(c) for c in color), (x0, y0, x1, y1), crop, int(crop.sum()))


def _style(height: int, width: int) -> tuple[int, float, int, int]:
    """(line thickness, font scale, text thickness, label padding) for a frame size."""
    short = min(height, width)
    thickness = max(1, round(short / 360))
    font_scale = max(0.3, short / 1000)
    return thickness, font_scale, max(1, round(font_scale * 1.6)), max(1, round(font_scale * 4))


def _contours(placed: _Placed) -> list[np.ndarray]:
    """Outer and hole outlines in frame coordinates (a one-pixel zero border keeps edge pixels)."""
    x0, y0, _, _ = placed.box
    padded = np.pad(placed.crop.astype(np.uint8), 1)
    contours, _ = cv2.findContours(padded, cv2.RETR_LIST, cv2.CHAIN_APPROX_SIMPLE, offset=(x0 - 1, y0 - 1))
    return list(contours)


def _overlaps(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def _label_rect(placed: _Placed, size: tuple[int, int], frame: tuple[int, int], taken: list) -> tuple[int, int, int, int]:
    """Where the label goes: above the box, else inside its top, else below it; left-aligned with
    the box, kept inside the frame, and off labels already drawn where one of those spots allows."""
    (label_w, label_h), (height, width) = size, frame
    x0, y0, _, y1 = placed.box
    left = max(0, min(x0, width - label_w))
    candidates = [y0 - label_h, y0, y1]
    rects = [(left, max(0, min(top, height - label_h)), left + label_w, max(0, min(top, height - label_h)) + label_h)
             for top in candidates]
    inside = [r for r, top in zip(rects, candidates) if 0 <= top <= height - label_h]
    for rect in inside + rects:
        if not any(_overlaps(rect, other) for other in taken):
            return rect
    return (inside or rects)[0]


def draw_overlay(image: np.ndarray, instances: Sequence[Instance], alpha: float = 0.5,
                 show: Iterable[str] = DEFAULT_SHOW) -> np.ndarray:
    """A new RGB uint8 frame with `instances` drawn on `image` (which is left untouched).

    `alpha`: opacity of the mask fill (0 = none, 1 = solid). `show`: which of mask, contour, box,
    label to draw.
    """
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"expected an RGB uint8 image, got {image.dtype} {image.shape}")
    show = frozenset(show)
    height, width = image.shape[:2]
    placed = [p for p in (_place(inst, height, width) for inst in instances) if p is not None]
    out = np.ascontiguousarray(image).copy()
    if not placed:
        return out
    thickness, font_scale, text_thickness, pad = _style(height, width)

    if "mask" in show and alpha > 0:
        painted = out.copy()
        for p in sorted(placed, key=lambda p: -p.area):
            x0, y0, x1, y1 = p.box
            painted[y0:y1, x0:x1][p.crop] = p.color
        out = cv2.addWeighted(out, 1.0 - float(alpha), painted, float(alpha), 0.0)
    if "contour" in show:
        for p in placed:
            cv2.drawContours(out, _contours(p), -1, p.color, thickness, cv2.LINE_AA)
    if "box" in show:
        for p in placed:
            x0, y0, x1, y1 = p.box
            cv2.rectangle(out, (x0, y0), (x1 - 1, y1 - 1), p.color, thickness, cv2.LINE_8)
    if "label" in show:
        taken: list[tuple[int, int, int, int]] = []
        by_score = sorted(placed, key=lambda p: (p.instance.score or 0.0, -p.instance.track_id), reverse=True)
        for p in by_score:  # the best tracks choose their spot first
            text = p.instance.label_text()
            (text_w, text_h), baseline = cv2.getTextSize(text, FONT, font_scale, text_thickness)
            rect = _label_rect(p, (text_w + 2 * pad, text_h + baseline + 2 * pad), (height, width), taken)
            taken.append(rect)
            cv2.rectangle(out, rect[:2], (rect[2] - 1, rect[3] - 1), p.color, cv2.FILLED)
            cv2.putText(out, text, (rect[0] + pad, rect[1] + pad + text_h), FONT, font_scale,
                        text_color(p.color), text_thickness, cv2.LINE_AA)
    return out
