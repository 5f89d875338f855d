"""Clip-consistent training augmentation (the official `build_augmentation`, "_by_clip" style).

One `ClipTransform` is drawn per clip and applied to every frame, so all frames of a clip get the
same resize, crop and flip.  In order:

1. optional crop branch, taken with probability `crop_prob` (0.5): resize the shortest edge to a
   choice of `crop_min_sizes` (400/500/600, longest edge at most 1333), then a random crop whose
   height and width are each drawn in `crop_range` (``absolute_range`` 384..600, clipped to the
   image) or are exactly `crop_range` (``absolute``, clipped to the image);
2. resize the shortest edge to a choice of `min_sizes` with the longest edge at most `max_size`;
3. horizontal flip with probability `flip_prob` (0.5);
4. COCO pseudo videos only: a rotation per frame (angles monotonic over the clip, one centre
   for the clip, no expansion; the official `RandomRotationClip`).

Images are resized bilinearly (cv2 INTER_LINEAR), masks with nearest neighbour.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

CROP_TYPES = ("absolute_range", "absolute")


@dataclass(frozen=True)
class AugmentConfig:
    min_sizes: tuple[int, ...] = (240, 360, 480)
    max_size: int = 1333
    crop: bool = False
    crop_range: tuple[int, int] = (384, 600)
    flip: bool = True
    crop_min_sizes: tuple[int, ...] = (400, 500, 600)
    crop_max_size: int = 1333
    crop_type: str = "absolute_range"
    crop_prob: float = 0.5
    flip_prob: float = 0.5

    def validate(self) -> None:
        if not self.min_sizes or any(s < 1 for s in self.min_sizes):
            raise ValueError(f"min_sizes must be positive sizes, got {self.min_sizes}")
        if self.max_size < 1:
            raise ValueError(f"max_size must be positive, got {self.max_size}")
        if self.crop_type not in CROP_TYPES:
            raise ValueError(f"crop_type must be one of {', '.join(CROP_TYPES)}, got {self.crop_type!r}")
        if self.crop and (len(self.crop_range) != 2 or min(self.crop_range) < 1):
            raise ValueError(f"crop_range must be two positive sizes, got {self.crop_range}")
        if self.crop and self.crop_type == "absolute_range" and self.crop_range[0] > self.crop_range[1]:
            raise ValueError(f"crop_range must be (min, max), got {self.crop_range}")


def resized_shape(height: int, width: int, short_edge: int, max_size: int) -> tuple[int, int]:
    """(h, w) after ResizeShortestEdge: shortest edge to `short_edge`, longest at most `max_size`."""
    scale = short_edge / min(height, width)
    if height < width:
        new_h, new_w = float(short_edge), scale * width
    else:
        new_h, new_w = scale * height, float(short_edge)
    if max(new_h, new_w) > max_size:
        shrink = max_size / max(new_h, new_w)
        new_h, new_w = new_h * shrink, new_w * shrink
    return int(new_h + 0.5), int(new_w + 0.5)


@dataclass(frozen=True)
class ClipTransform:
    """The augmentation of one clip; `frame` selects the per-frame rotation angle."""

    height: int  # input size
    width: int
    crop_resize: tuple[int, int] | None  # (h, w) resize of the crop branch, None without it
    crop_box: tuple[int, int, int, int] | None  # (y0, x0, h, w) in the crop_resize image
    resize: tuple[int, int]  # (h, w) of the main resize
    flip: bool
    angles: tuple[float, ...] | None = None  # degrees, counter-clockwise, per frame
    center: tuple[float, float] | None = None  # rotation centre relative to (w, h)

    @property
    def output_shape(self) -> tuple[int, int]:
        return self.resize

    def _rotation(self, frame: int) -> np.ndarray | None:
        if self.angles is None:
            return None
        angle = float(self.angles[frame])
        if angle % 360 == 0:
            return None
        h, w = self.resize
        cx, cy = self.center if self.center is not None else (0.5, 0.5)
        # pixel centres sit at integer coordinates for warpAffine, hence the half-pixel shift
        return cv2.getRotationMatrix2D((w * cx - 0.5, h * cy - 0.5), angle, 1.0)

    def _apply(self, array: np.ndarray, frame: int, interp: int) -> np.ndarray:
        if array.shape[:2] != (self.height, self.width):
            raise ValueError(f"frame of size {array.shape[1]}x{array.shape[0]}, the clip is {self.width}x{self.height}")
        out = array
        if self.crop_resize is not None:
            h, w = self.crop_resize
            if (h, w) != out.shape[:2]:
                out = cv2.resize(out, (w, h), interpolation=interp)
            y0, x0, ch, cw = self.crop_box
            out = out[y0:y0 + ch, x0:x0 + cw]
        h, w = self.resize
        if (h, w) != out.shape[:2]:
            out = cv2.resize(np.ascontiguousarray(out), (w, h), interpolation=interp)
        if self.flip:
            out = out[:, ::-1]
        matrix = self._rotation(frame)
        if matrix is not None:
            out = cv2.warpAffine(np.ascontiguousarray(out), matrix, (w, h), flags=interp, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        return np.ascontiguousarray(out)

    def apply_image(self, image: np.ndarray, frame: int = 0) -> np.ndarray:
        """(H, W, 3) uint8 -> (h, w, 3) uint8."""
        return self._apply(image, frame, cv2.INTER_LINEAR)

    def apply_mask(self, mask: np.ndarray, frame: int = 0) -> np.ndarray:
        """(H, W) bool -> (h, w) bool."""
        return self._apply(mask.astype(np.uint8), frame, cv2.INTER_NEAREST).astype(bool)

    def apply_labels(self, labels: np.ndarray, frame: int = 0) -> np.ndarray:
        """(H, W) integer segment ids below 2**24 (exact in float32) -> (h, w) int64, nearest;
        pixels rotated in from outside the image get id 0."""
        if labels.size and int(labels.max()) >= 1 << 24:
            raise ValueError("segment ids must be below 2**24")
        out = self._apply(labels.astype(np.float32), frame, cv2.INTER_NEAREST)
        return out.astype(np.int64)


def rotation_angles(num_frames: int, rng: np.random.Generator, max_angle: float = 15.0) -> np.ndarray:
    """Per-frame angles in [-max_angle, max_angle], sorted, reversed with p = 0.5: monotonic motion."""
    angles = np.sort(rng.uniform(-max_angle, max_angle, size=num_frames))
    if rng.random() < 0.5:
        angles = angles[::-1]
    return angles


def plan_clip_transform(
    height: int,
    width: int,
    cfg: AugmentConfig,
    rng: np.random.Generator,
    num_frames: int = 1,
    rotation: float = 0.0,
) -> ClipTransform:
    """Draw the augmentation of one clip whose frames are `height` x `width`.

    `rotation` > 0 adds the pseudo-video rotation: `num_frames` monotonic angles within
    ±rotation degrees around a centre drawn in [0.4, 0.6] of the image.
    """
    crop_resize = crop_box = None
    h, w = height, width
    if cfg.crop and rng.random() < cfg.crop_prob:
        short = int(rng.choice(np.asarray(cfg.crop_min_sizes)))
        h, w = resized_shape(h, w, short, cfg.crop_max_size)
        lo, hi = cfg.crop_range
        if cfg.crop_type == "absolute_range":
            ch = int(rng.integers(min(h, lo), min(h, hi) + 1))
            cw = int(rng.integers(min(w, lo), min(w, hi) + 1))
        else:
            ch, cw = min(lo, h), min(hi, w)
        y0 = int(rng.integers(0, h - ch + 1))
        x0 = int(rng.integers(0, w - cw + 1))
        crop_resize, crop_box = (h, w), (y0, x0, ch, cw)
        h, w = ch, cw
    short = int(rng.choice(np.asarray(cfg.min_sizes)))
    resize = resized_shape(h, w, short, cfg.max_size)
    flip = bool(cfg.flip and rng.random() < cfg.flip_prob)
    angles = center = None
    if rotation > 0:
        angles = tuple(float(a) for a in rotation_angles(num_frames, rng, rotation))
        center = (float(rng.uniform(0.4, 0.6)), float(rng.uniform(0.4, 0.6)))
    return ClipTransform(height, width, crop_resize, crop_box, resize, flip, angles, center)
