"""Synthetic video instance segmentation data in YouTube-VIS / OVIS format.

Each video shows textured objects of a few classes (every class has its own shape AND its own
colour family and texture pattern, so the class can be learnt) over a textured, slowly panning
background.  Objects move along smooth random trajectories, change scale, rotation and aspect,
enter and leave the frame and occlude each other in a fixed depth order.  Two staged events make
association across occlusion matter:

* ``crossing``: two objects of the same class cross paths, one passing behind the other;
* ``hide``: a small object slips behind a large one, stays completely hidden for a few frames
  and comes out again.

Annotations hold the VISIBLE part of every object, per frame, as compressed RLE; a frame where an
object is not visible (outside the frame, fully hidden, or fewer than ``min_area`` pixels) is
``null`` in ``segmentations``, ``bboxes``, ``areas`` and ``occlusion``.  The per-frame occlusion
label follows OVIS, spelt as OVIS files spell it: ``no_occlusion``, ``slight_occlusion`` (at most
half hidden) or ``severe_occlusion`` (more than half hidden; 0, 1, 2 in the Python API), measured on the object's full (amodal) mask inside the frame, so being cut by the frame
border is not occlusion.

Everything is drawn from ``numpy.random.Generator`` seeded by ``(seed, video index)``: video ``i``
is the same whatever the number of videos asked for.
"""
from __future__ import annotations

import functools
import json
import math
import os
import shutil
import tempfile
import time
import wave
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import cv2
import numpy as np

from dvis_cli.errors import InputError

# ----------------------------------------------------------------------------------------------
# classes: shape, colour family (OpenCV hue, 0..179) and texture pattern
# ----------------------------------------------------------------------------------------------

CLASS_STYLES: dict[str, tuple[int, str]] = {
    "disc": (0, "bands"),
    "square": (115, "checker"),
    "triangle": (60, "stripes"),
    "star": (28, "dots"),
    "ring": (140, "speckle"),
    "cross": (90, "grid"),
    "hexagon": (13, "waves"),
    "crescent": (165, "gradient"),
}
CLASS_NAMES: tuple[str, ...] = tuple(CLASS_STYLES)
DEFAULT_CLASSES: tuple[str, ...] = CLASS_NAMES[:5]
OCCLUSION_LEVELS: tuple[str, ...] = ("normal", "heavy")

# per-frame labels as OVIS annotation files spell them, indexed by the numeric label 0, 1, 2
OCCLUSION_NAMES: tuple[str, ...] = ("no_occlusion", "slight_occlusion", "severe_occlusion")

# occluded fraction (1 - visible / full) at or below which an object counts as not occluded,
# and above which the occlusion is severe (OVIS: slight = at most half hidden)
NO_OCCLUSION_MAX = 0.01
SLIGHT_OCCLUSION_MAX = 0.5

_SCALE_AMP = 0.18  # log-amplitude of the scale oscillation of an ordinary object
_ASPECT_AMP = 0.25  # log-amplitude of its aspect oscillation
_EVENT_SCALE_AMP = 0.06  # the same for the objects of a `hide` event, kept steadier
_EVENT_ASPECT_AMP = 0.08


@dataclass(frozen=True)
class SynthConfig:
    """What to generate. ``objects=None`` takes (2, 5) objects a video, or (4, 7) when heavy."""

    videos: int = 20
    frames: int = 20
    height: int = 96
    width: int = 160
    seed: int = 0
    classes: tuple[str, ...] = DEFAULT_CLASSES
    objects: tuple[int, int] | None = None
    occlusion: str = "normal"
    min_area: int = 6
    jpeg_quality: int = 95

    def validate(self) -> None:
        """Raise InputError naming the first unusable setting."""
        checks = [
            (self.videos >= 1, f"videos must be at least 1, got {self.videos}"),
            (self.frames >= 1, f"frames must be at least 1, got {self.frames}"),
            (self.height >= 16 and self.width >= 16, f"frame size must be at least 16x16, got {self.height}x{self.width}"),
            (self.seed >= 0, f"seed must be a non-negative integer, got {self.seed}"),
            (len(self.classes) >= 1, "at least one class is needed"),
            (len(set(self.classes)) == len(self.classes), f"classes repeat: {', '.join(self.classes)}"),
            (self.occlusion in OCCLUSION_LEVELS, f"occlusion must be one of {', '.join(OCCLUSION_LEVELS)}, got {self.occlusion!r}"),
            (self.min_area >= 1, f"min_area must be at least 1, got {self.min_area}"),
            (1 <= self.jpeg_quality <= 100, f"jpeg_quality must be in 1..100, got {self.jpeg_quality}"),
        ]
        unknown = [c for c in self.classes if c not in CLASS_STYLES]
        checks.append((not unknown, f"unknown class {', '.join(unknown)}; known: {', '.join(CLASS_NAMES)}"))
        lo, hi = self.object_range()
        checks.append((1 <= lo <= hi <= 32, f"objects per video must satisfy 1 <= min <= max <= 32, got {lo}..{hi}"))
        for ok, message in checks:
            if not ok:
                raise InputError(message)

    @property
    def heavy(self) -> bool:
        return self.occlusion == "heavy"

    def object_range(self) -> tuple[int, int]:
        if self.objects is not None:
            return int(self.objects[0]), int(self.objects[1])
        return (4, 7) if self.heavy else (2, 5)

    def categories(self) -> list[dict]:
        return [{"id": i + 1, "name": name, "supercategory": "shape"} for i, name in enumerate(self.classes)]


@dataclass
class SynthVideo:
    """One rendered video. Objects never visible are left out, so objects == annotations.

    ``visible`` is exactly what the annotations hold (empty where the annotation is null);
    ``amodal`` is each object's full mask inside the frame, occluders ignored.
    """

    name: str
    frames: np.ndarray  # (T, H, W, 3) uint8 RGB
    category_ids: list[int]  # per object, 1-based into SynthConfig.classes
    amodal: np.ndarray  # (N, T, H, W) bool
    visible: np.ndarray  # (N, T, H, W) bool
    occlusion: np.ndarray  # (N, T) int8; -1 where the object is absent
    depth: list[int]  # per object; larger is nearer the camera
    events: list[str] = field(default_factory=list)


def occlusion_label(visible_area: float, full_area: float) -> int:
    """OVIS-style label from the visible and full (in-frame) areas: 0 none, 1 slight, 2 severe."""
    if full_area <= 0:
        return 2
    hidden = 1.0 - float(visible_area) / float(full_area)
    if hidden <= NO_OCCLUSION_MAX:
        return 0
    return 1 if hidden <= SLIGHT_OCCLUSION_MAX else 2


# ----------------------------------------------------------------------------------------------
# canonical object sprites: alpha and texture in the object's own frame
# ----------------------------------------------------------------------------------------------


def _polygon(points: np.ndarray, unit: float, centre: float) -> np.ndarray:
    return np.round((points * unit + centre) * 16).astype(np.int32)  # 4 fractional bits


def _regular(n: int, radius: float, start: float = -math.pi / 2) -> np.ndarray:
    a = start + np.arange(n) * 2 * math.pi / n
    return np.stack([np.cos(a), np.sin(a)], 1) * radius


def _shape_alpha(name: str, size: int, unit: float) -> np.ndarray:
    """uint8 anti-aliased alpha of a class shape, circumradius about 1 unit, centred."""
    canvas = np.zeros((size, size), np.uint8)
    c = (size - 1) / 2.0

    def fill(points: np.ndarray, value: int) -> None:
        cv2.fillPoly(canvas, [_polygon(points, unit, c)], value, lineType=cv2.LINE_AA, shift=4)

    if name == "disc":
        fill(_regular(64, 1.0), 255)
    elif name == "square":
        fill(np.array([[-0.78, -0.78], [0.78, -0.78], [0.78, 0.78], [-0.78, 0.78]]), 255)
    elif name == "triangle":
        fill(_regular(3, 1.1), 255)
    elif name == "star":
        outer, inner = _regular(5, 1.1), _regular(5, 0.45, -math.pi / 2 + math.pi / 5)
        fill(np.stack([outer, inner], 1).reshape(-1, 2), 255)
    elif name == "ring":
        fill(_regular(64, 1.0), 255)
        fill(_regular(64, 0.55), 0)
    elif name == "cross":
        w, l = 0.36, 1.0
        fill(np.array([[-w, -l], [w, -l], [w, -w], [l, -w], [l, w], [w, w], [w, l], [-w, l], [-w, w], [-l, w], [-l, -w], [-w, -w]]), 255)
    elif name == "hexagon":
        fill(_regular(6, 1.05, 0.0), 255)
    elif name == "crescent":
        fill(_regular(64, 1.0), 255)
        fill(_regular(64, 0.85) + np.array([0.5, -0.15]), 0)
    else:  # pragma: no cover - validated before
        raise ValueError(name)
    return canvas


def _soft(x: np.ndarray, sharpness: float = 4.0) -> np.ndarray:
    return 0.5 + 0.5 * np.tanh(sharpness * x)


def _pattern(kind: str, u: np.ndarray, v: np.ndarray, period: float, rng: np.random.Generator) -> np.ndarray:
    """Two-tone mix factor in [0, 1] over canonical coordinates (u, v), in units."""
    phase = rng.uniform(0, 2 * math.pi)
    if kind == "bands":
        return _soft(np.sin(2 * math.pi * np.hypot(u, v) / period + phase))
    if kind == "checker":
        return _soft(np.sin(math.pi * u / period + phase) * np.sin(math.pi * v / period))
    if kind == "stripes":
        return _soft(np.sin(2 * math.pi * u / period + phase))
    if kind == "dots":
        du = np.mod(u / period + phase, 1.0) - 0.5
        dv = np.mod(v / period, 1.0) - 0.5
        return _soft(0.3 - np.hypot(du, dv), 20.0)
    if kind == "speckle":
        k = max(4, int(2.4 / period))
        noise = cv2.resize(rng.standard_normal((k, k)).astype(np.float32), u.shape[::-1], interpolation=cv2.INTER_CUBIC)
        return _soft(noise, 2.0)
    if kind == "grid":
        du = np.abs(np.mod(u / period + phase, 1.0) - 0.5)
        dv = np.abs(np.mod(v / period, 1.0) - 0.5)
        return _soft(np.maximum(du, dv) - 0.36, 25.0)
    if kind == "waves":
        return _soft(np.sin(2 * math.pi * (u + 0.25 * np.sin(2 * math.pi * v / (1.7 * period))) / period + phase))
    if kind == "gradient":
        return np.clip(0.5 + 0.45 * u + 0.08 * rng.standard_normal(u.shape), 0.0, 1.0)
    raise ValueError(kind)  # pragma: no cover


def _hsv_to_rgb(h: float, s: float, v: float) -> np.ndarray:
    hsv = np.array([[[int(h) % 180, int(np.clip(s, 0, 255)), int(np.clip(v, 0, 255))]]], np.uint8)
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)[0, 0].astype(np.float32)


@dataclass
class _Sprite:
    alpha: np.ndarray  # (S, S) uint8
    texture: np.ndarray  # (S, S, 3) uint8 RGB
    unit: float  # pixels per shape unit in the sprite


def _make_sprite(name: str, unit: float, rng: np.random.Generator) -> _Sprite:
    size = 2 * int(math.ceil(1.2 * unit)) + 3
    alpha = _shape_alpha(name, size, unit)
    c = (size - 1) / 2.0
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    x, y = (xx - c) / unit, (yy - c) / unit
    angle = rng.uniform(0, math.pi)
    u = x * math.cos(angle) + y * math.sin(angle)
    v = -x * math.sin(angle) + y * math.cos(angle)
    hue, kind = CLASS_STYLES[name]
    hue += rng.integers(-6, 7)
    value = rng.uniform(175, 255)
    light = _hsv_to_rgb(hue, rng.uniform(140, 255), value)
    dark = _hsv_to_rgb(hue + rng.integers(-5, 6), rng.uniform(150, 255), value * rng.uniform(0.3, 0.55))
    mix = _pattern(kind, u, v, rng.uniform(0.28, 0.55), rng)[..., None]
    shade = 1.0 - 0.22 * np.clip((x * x + y * y) / 1.2, 0, 1)[..., None]
    texture = (light * (1 - mix) + dark * mix) * shade + rng.normal(0, 4, (size, size, 3))
    return _Sprite(alpha, np.clip(texture, 0, 255).astype(np.uint8), unit)


@functools.lru_cache(maxsize=None)
def _shape_radii(name: str, unit: int = 40) -> tuple[float, float]:
    """(circumradius, inradius) of a class shape in units; inradius: largest centred disc inside."""
    size = 2 * int(1.2 * unit) + 3
    c = (size - 1) // 2
    solid = _shape_alpha(name, size, unit) >= 128
    ys, xs = np.nonzero(solid)
    circum = (float(np.sqrt(((xs - c) ** 2 + (ys - c) ** 2).max())) + 0.5) / unit
    dist = cv2.distanceTransform(solid.astype(np.uint8), cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
    return circum, max(0.0, float(dist[c, c]) - 1.0) / unit


# ----------------------------------------------------------------------------------------------
# motion
# ----------------------------------------------------------------------------------------------


def _catmull_rom(keys: np.ndarray, key_times: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Uniform Catmull-Rom spline through keys (K, 2) at evenly spaced key_times; flat outside."""
    k = len(keys)
    if k == 1 or key_times[-1] <= key_times[0]:
        return np.repeat(keys[:1], len(t), 0)
    pts = np.concatenate([2 * keys[:1] - keys[1:2], keys, 2 * keys[-1:] - keys[-2:-1]])
    s = (np.clip(t, key_times[0], key_times[-1]) - key_times[0]) / (key_times[1] - key_times[0])
    i = np.minimum(np.floor(s).astype(int), k - 2)
    u = (s - i)[:, None]
    p0, p1, p2, p3 = pts[i], pts[i + 1], pts[i + 2], pts[i + 3]
    return 0.5 * (2 * p1 + (p2 - p0) * u + (2 * p0 - 5 * p1 + 4 * p2 - p3) * u**2 + (3 * p1 - p0 - 3 * p2 + p3) * u**3)


def _oscillation(rng: np.random.Generator, t: np.ndarray) -> np.ndarray:
    """A smooth signal in [-1, 1]: two slow sinusoids."""
    f1, f2 = rng.uniform(0.015, 0.06), rng.uniform(0.05, 0.12)
    p1, p2 = rng.uniform(0, 2 * math.pi, 2)
    return 0.7 * np.sin(2 * math.pi * f1 * t + p1) + 0.3 * np.sin(2 * math.pi * f2 * t + p2)


@dataclass
class _Object:
    category: int  # 0-based index into cfg.classes
    sprite: _Sprite
    radius: float  # pixels per shape unit on screen, before the scale oscillation
    centres: np.ndarray  # (T, 2) x, y
    angles: np.ndarray  # (T,)
    sx: np.ndarray  # (T,) screen scale along the object's own x axis, in pixels per unit
    sy: np.ndarray
    depth: int = 0


class _Planner:
    """Draws the random plan of one video: objects, their motion, depth and the staged events."""

    def __init__(self, cfg: SynthConfig, rng: np.random.Generator):
        self.cfg, self.rng = cfg, rng
        self.T, self.H, self.W = cfg.frames, cfg.height, cfg.width
        self.t = np.arange(self.T, dtype=np.float64)
        self.short = min(self.H, self.W)
        self.events: list[str] = []

    def radius(self) -> float:
        lo, hi = (0.10, 0.25) if self.cfg.heavy else (0.08, 0.20)
        return self.rng.uniform(lo, hi) * self.short

    def inside(self, margin: float = 0.1) -> np.ndarray:
        if self.cfg.heavy:  # crowd the middle: more overlaps
            p = self.rng.normal(0.5, 0.2, 2)
            p = np.clip(p, margin, 1 - margin)
        else:
            p = self.rng.uniform(margin, 1 - margin, 2)
        return p * np.array([self.W, self.H])

    def outside(self, reach: float) -> np.ndarray:
        """A centre just beyond a random frame edge, far enough that the object is all outside."""
        edge = self.rng.integers(4)
        along = self.rng.uniform(0.1, 0.9)
        if edge == 0:
            return np.array([-reach, along * self.H])
        if edge == 1:
            return np.array([self.W + reach, along * self.H])
        if edge == 2:
            return np.array([along * self.W, -reach])
        return np.array([along * self.W, self.H + reach])

    def path(self, reach: float, *, roam: bool = True, margin: float = 0.1) -> np.ndarray:
        """Smooth centres (T, 2); with roam, the object may enter late, leave early or go out and back."""
        T, rng = self.T, self.rng
        t_in, t_out = 0.0, float(T - 1)
        enter = roam and T >= 6 and rng.random() < (0.4 if self.cfg.heavy else 0.3)
        leave = roam and T >= 6 and rng.random() < (0.4 if self.cfg.heavy else 0.3)
        if enter:
            t_in = float(rng.uniform(0, 0.45 * (T - 1)))
        if leave:
            t_out = float(rng.uniform(max(t_in + 4, 0.55 * (T - 1)), T - 1 + 3))
        span = max(t_out - t_in, 1.0)
        k = max(3, 2 + int(span // 7))
        keys = np.stack([self.inside(margin) for _ in range(k)])
        if enter:
            keys[0] = self.outside(reach)
        if leave:
            keys[-1] = self.outside(reach)
        if roam and k >= 5 and rng.random() < (0.2 if self.cfg.heavy else 0.1):
            keys[k // 2] = self.outside(reach)  # out and back in again
        return _catmull_rom(keys, np.linspace(t_in, t_in + span, k), self.t)

    def new_object(self, category: int, radius: float, centres: np.ndarray, steady: bool = False) -> _Object:
        rng, t = self.rng, self.t
        name = self.cfg.classes[category]
        sprite = _make_sprite(name, max(6.0, radius), rng)
        scale_amp, aspect_amp = (_EVENT_SCALE_AMP, _EVENT_ASPECT_AMP) if steady else (_SCALE_AMP, _ASPECT_AMP)
        scale = radius * np.exp(scale_amp * _oscillation(rng, t))
        aspect = np.exp(aspect_amp * _oscillation(rng, t))
        spin = rng.uniform(-0.08, 0.08)
        angles = rng.uniform(0, 2 * math.pi) + spin * t + 0.3 * _oscillation(rng, t)
        return _Object(category, sprite, radius, centres, angles, scale * np.sqrt(aspect), scale / np.sqrt(aspect))

    def reach(self, radius: float) -> float:
        """How far beyond the frame edge a centre must be for the object to be all outside."""
        return 1.25 * radius * 1.15 * math.exp(_SCALE_AMP + _ASPECT_AMP / 2) + 2

    def ordinary(self, category: int) -> _Object:
        r = self.radius()
        return self.new_object(category, r, self.path(self.reach(r)))

    def crossing(self, category: int) -> list[_Object]:
        """Two objects of one class that cross near the middle of the frame at about mid-video."""
        rng, t, T = self.rng, self.t, self.T
        meet = np.array([self.W, self.H]) * (0.5 + rng.uniform(-0.12, 0.12, 2))
        tc = rng.uniform(0.35, 0.65) * (T - 1)
        pair = []
        heading = rng.uniform(0, 2 * math.pi)
        r = self.radius()
        for k in range(2):
            a = heading + (math.pi if k else 0.0) + rng.uniform(-0.5, 0.5)
            d = np.array([math.cos(a), math.sin(a)])
            speed = rng.uniform(0.5, 0.9) * (self.W * abs(d[0]) + self.H * abs(d[1])) / max(T - 1, 1)
            wobble = 0.04 * self.short * np.sin(2 * math.pi * rng.uniform(0.03, 0.08) * t + rng.uniform(0, 6.3))
            centres = meet + (t - tc)[:, None] * speed * d + wobble[:, None] * np.array([-d[1], d[0]])
            pair.append(self.new_object(category, r * rng.uniform(0.85, 1.15), centres))
        self.events.append(f"crossing class={self.cfg.classes[category]} t={tc:.1f}")
        return pair

    def hide(self, occluder_cat: int, hidden_cat: int) -> list[_Object] | None:
        """A large object (front) and a small one that slips behind it, fully hidden for a few frames."""
        rng, T, t = self.rng, self.T, self.t
        ramp = 3 if T >= 14 else 2
        hold = min(int(rng.integers(2, 6)), T - 2 * ramp - 4)
        if hold < 1:
            return None
        t0 = int(rng.integers(ramp + 2, T - ramp - hold - 1))
        t1 = t0 + hold - 1
        occ_r = rng.uniform(0.2, 0.27) * self.short
        occ_inradius = _shape_radii(self.cfg.classes[occluder_cat])[1]
        hid_circumradius = _shape_radii(self.cfg.classes[hidden_cat])[0]
        swell = math.exp(_EVENT_SCALE_AMP + _EVENT_ASPECT_AMP / 2)
        # the hidden object's farthest point must stay inside the occluder's inscribed disc
        hid_r = (occ_r * occ_inradius / swell - 1.5) / (1.2 * hid_circumradius * swell)
        if hid_r < 0.05 * self.short:
            return None
        hid_r = min(hid_r, rng.uniform(0.08, 0.14) * self.short)
        occ_path = self.path(0.0, roam=False, margin=0.3)
        own = self.path(0.0, roam=False, margin=0.15)
        w = np.clip(np.minimum(t - (t0 - ramp), (t1 + ramp) - t) / ramp, 0.0, 1.0)
        w = w * w * (3 - 2 * w)  # smoothstep: eases in and out of the occluder
        hid_path = own * (1 - w[:, None]) + occ_path * w[:, None]
        occluder = self.new_object(occluder_cat, occ_r, occ_path, steady=True)
        hidden = self.new_object(hidden_cat, hid_r, hid_path, steady=True)
        self.events.append(f"hide {self.cfg.classes[hidden_cat]} behind {self.cfg.classes[occluder_cat]} t={t0}-{t1}")
        return [occluder, hidden]


def _plan_video(cfg: SynthConfig, rng: np.random.Generator) -> tuple[list[_Object], list[str]]:
    planner = _Planner(cfg, rng)
    lo, hi = cfg.object_range()
    n = int(rng.integers(lo, hi + 1))
    n_cls = len(cfg.classes)
    objects: list[_Object] = []
    hide_pairs: list[tuple[_Object, _Object]] = []
    if n >= 2 and cfg.frames >= 10 and rng.random() < (1.0 if cfg.heavy else 0.35):
        solid = [i for i in range(n_cls) if _shape_radii(cfg.classes[i])[1] >= 0.5]
        if solid:
            pair = planner.hide(int(rng.choice(solid)), int(rng.integers(n_cls)))
            if pair:
                objects += pair
                hide_pairs.append((pair[0], pair[1]))
    if n - len(objects) >= 2 and cfg.frames >= 4 and rng.random() < (1.0 if cfg.heavy else 0.35):
        objects += planner.crossing(int(rng.integers(n_cls)))
    while len(objects) < n:
        objects.append(planner.ordinary(int(rng.integers(n_cls))))
    depth = rng.permutation(len(objects))
    for k, obj in enumerate(objects):
        obj.depth = int(depth[k])
    for occ, hid in hide_pairs:
        if occ.depth < hid.depth:
            occ.depth, hid.depth = hid.depth, occ.depth
    return objects, planner.events


# ----------------------------------------------------------------------------------------------
# background and rendering
# ----------------------------------------------------------------------------------------------


def _background(cfg: SynthConfig, rng: np.random.Generator, pad: int) -> np.ndarray:
    """Float32 RGB canvas larger than the frame by `pad` on every side (room for panning)."""
    h, w = cfg.height + 2 * pad, cfg.width + 2 * pad
    base = _hsv_to_rgb(rng.integers(180), rng.uniform(10, 70), rng.uniform(90, 190))
    coarse = rng.normal(0, 1, (max(2, h // 12), max(2, w // 12), 3)).astype(np.float32)
    coarse = 0.6 * coarse.mean(2, keepdims=True) + 0.4 * coarse  # mostly light and shade, some colour
    canvas = base + 24 * cv2.resize(coarse, (w, h), interpolation=cv2.INTER_CUBIC)
    fine = rng.normal(0, 1, (max(2, h // 3), max(2, w // 3))).astype(np.float32)
    canvas += 8 * cv2.resize(fine, (w, h), interpolation=cv2.INTER_LINEAR)[..., None]
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    kind = rng.integers(4)
    a = rng.uniform(0, math.pi)
    u = xx * math.cos(a) + yy * math.sin(a)
    period = rng.uniform(6, 20) * max(1.0, min(cfg.height, cfg.width) / 96)
    if kind == 0:
        canvas += 14 * np.sin(2 * math.pi * u / period)[..., None]
    elif kind == 1:
        v = -xx * math.sin(a) + yy * math.cos(a)
        lines = (np.abs(np.mod(u / period, 1) - 0.5) > 0.42) | (np.abs(np.mod(v / period, 1) - 0.5) > 0.42)
        canvas -= 20 * lines[..., None]
    elif kind == 2:
        canvas += 12 * np.sign(np.sin(math.pi * xx / period) * np.sin(math.pi * yy / period))[..., None]
    # clutter: translucent blobs of any colour, class colours included
    for _ in range(int(rng.integers(6, 15) if cfg.heavy else rng.integers(3, 9))):
        layer = np.zeros((h, w), np.uint8)
        centre = (int(rng.integers(w)), int(rng.integers(h)))
        axes = (int(rng.integers(3, max(4, w // 6))), int(rng.integers(3, max(4, h // 6))))
        cv2.ellipse(layer, centre, axes, float(rng.uniform(0, 180)), 0, 360, 255, -1, cv2.LINE_AA)
        alpha = (cv2.GaussianBlur(layer, (0, 0), 1.5).astype(np.float32) / 255 * rng.uniform(0.15, 0.45))[..., None]
        colour = _hsv_to_rgb(rng.integers(180), rng.uniform(30, 200), rng.uniform(60, 230))
        canvas = canvas * (1 - alpha) + colour * alpha
    return np.clip(canvas, 0, 255).astype(np.float32)


def _warp(obj: _Object, t: int, shape: tuple[int, int]) -> tuple[int, int, np.ndarray, np.ndarray] | None:
    """The object's alpha and texture at frame t, warped into the frame's region it covers."""
    height, width = shape
    sp = obj.sprite
    c = (sp.alpha.shape[0] - 1) / 2.0
    cos, sin = math.cos(obj.angles[t]), math.sin(obj.angles[t])
    a = np.array([[cos, -sin], [sin, cos]]) @ np.diag([obj.sx[t], obj.sy[t]]) / sp.unit
    offset = obj.centres[t] - a @ np.array([c, c])
    corners = np.array([[0, 0], [2 * c, 0], [0, 2 * c], [2 * c, 2 * c]]) @ a.T + offset
    x0, y0 = np.floor(corners.min(0)).astype(int) - 1
    x1, y1 = np.ceil(corners.max(0)).astype(int) + 2
    x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, width), min(y1, height)
    if x1 <= x0 or y1 <= y0:
        return None
    m = np.concatenate([a, (offset - np.array([x0, y0]))[:, None]], 1)
    size = (int(x1 - x0), int(y1 - y0))
    alpha = cv2.warpAffine(sp.alpha, m, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    if not alpha.any():
        return None
    texture = cv2.warpAffine(sp.texture, m, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return int(x0), int(y0), alpha, texture


@dataclass
class _Frame:
    image: np.ndarray  # (H, W, 3) uint8 RGB
    amodal: list[np.ndarray]  # per object (H, W) bool, in plan order
    visible: list[np.ndarray]


def _render(cfg: SynthConfig, index: int, objects: list[_Object], rng: np.random.Generator) -> Iterator[_Frame]:
    H, W, T = cfg.height, cfg.width, cfg.frames
    pad = max(4, int(0.08 * min(H, W)))
    bg = _background(cfg, rng, pad)
    t = np.arange(T, dtype=np.float64)
    pan = np.stack([pad * _oscillation(rng, t), pad * _oscillation(rng, t)], 1) * 0.9 + pad
    light = 1.0 + 0.06 * _oscillation(rng, t)
    order = sorted(range(len(objects)), key=lambda k: objects[k].depth)  # back to front
    for f in range(T):
        ox, oy = int(round(pan[f, 0])), int(round(pan[f, 1]))
        img = bg[oy : oy + H, ox : ox + W].copy()
        amodal = [np.zeros((H, W), bool) for _ in objects]
        for k in order:
            warped = _warp(objects[k], f, (H, W))
            if warped is None:
                continue
            x0, y0, alpha, texture = warped
            h, w = alpha.shape
            a = alpha.astype(np.float32)[..., None] / 255.0
            roi = img[y0 : y0 + h, x0 : x0 + w]
            roi *= 1.0 - a
            roi += a * texture
            amodal[k][y0 : y0 + h, x0 : x0 + w] = alpha >= 128
        covered = np.zeros((H, W), bool)
        visible: list[np.ndarray] = [np.zeros((H, W), bool)] * len(objects)
        for k in reversed(order):  # front to back
            visible[k] = amodal[k] & ~covered
            covered |= amodal[k]
        noise = np.random.default_rng([cfg.seed, index, 7, f]).normal(0, 2.0, (H, W, 1)).astype(np.float32)
        image = np.clip(img * light[f] + noise, 0, 255).astype(np.uint8)
        yield _Frame(image, amodal, visible)


def _video_rng(cfg: SynthConfig, index: int) -> np.random.Generator:
    return np.random.default_rng([cfg.seed, index, OCCLUSION_LEVELS.index(cfg.occlusion)])


def video_name(index: int) -> str:
    return f"synth_{index:05d}"


def _frame_records(cfg: SynthConfig, index: int) -> tuple[list[_Object], list[str], Iterator[tuple[_Frame, np.ndarray]]]:
    """The plan and a frame iterator giving (frame, occlusion labels with -1 where absent)."""
    rng = _video_rng(cfg, index)
    objects, events = _plan_video(cfg, rng)

    def frames() -> Iterator[tuple[_Frame, np.ndarray]]:
        for fr in _render(cfg, index, objects, rng):
            labels = np.full(len(objects), -1, np.int8)
            for k in range(len(objects)):
                vis_area = int(fr.visible[k].sum())
                if vis_area < cfg.min_area:
                    fr.visible[k] = np.zeros_like(fr.visible[k])
                    continue
                labels[k] = occlusion_label(vis_area, int(fr.amodal[k].sum()))
            yield fr, labels

    return objects, events, frames()


def generate_video(cfg: SynthConfig, index: int = 0) -> SynthVideo:
    """Render video `index` of the data set `cfg` describes, all in memory."""
    cfg.validate()
    objects, events, frames = _frame_records(cfg, index)
    images, amodal, visible, labels = [], [], [], []
    for fr, lab in frames:
        images.append(fr.image)
        amodal.append(np.stack(fr.amodal) if objects else np.zeros((0, cfg.height, cfg.width), bool))
        visible.append(np.stack(fr.visible) if objects else np.zeros((0, cfg.height, cfg.width), bool))
        labels.append(lab)
    occ = np.stack(labels, 1)
    keep = [k for k in range(len(objects)) if (occ[k] >= 0).any()]
    return SynthVideo(
        name=video_name(index),
        frames=np.stack(images),
        category_ids=[objects[k].category + 1 for k in keep],
        amodal=np.stack(amodal, 1)[keep],
        visible=np.stack(visible, 1)[keep],
        occlusion=occ[keep],
        depth=[objects[k].depth for k in keep],
        events=events,
    )


# ----------------------------------------------------------------------------------------------
# writing a data set
# ----------------------------------------------------------------------------------------------


def _encode(mask: np.ndarray) -> tuple[dict, list[float], int]:
    from pycocotools import mask as mask_utils

    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    bbox = [float(v) for v in mask_utils.toBbox(rle)]
    area = int(mask_utils.area(rle))
    rle["counts"] = rle["counts"].decode("ascii")
    rle["size"] = [int(s) for s in rle["size"]]
    return rle, bbox, area


@dataclass
class SynthSummary:
    """What write_dataset wrote, with the occlusion statistics of the annotations."""

    out: Path
    videos: int
    frames: int
    annotations: int
    occlusion_counts: dict[int, int]  # label -> object-frames
    hidden_frames: int  # object-frames with the object in the frame but not visible
    entering: int  # objects absent in the first frame, visible later
    leaving: int  # objects visible at some point, absent in the last frame
    reappearing: int  # objects absent for a while between two visible stretches
    seconds: float


def _prepare_target(out: Path, overwrite: bool) -> None:
    if out.exists() or out.is_symlink():
        if not out.is_dir():
            raise InputError(f"{out} exists and is not a directory")
        if any(out.iterdir()) and not overwrite:
            raise InputError(f"{out} exists and is not empty (use --overwrite to replace it)")
    blocking = next((p for p in out.parents if p.exists() and not p.is_dir()), None)
    if blocking is not None:
        raise InputError(f"cannot create {out}: {blocking} is not a directory")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"cannot create {out.parent}: {exc.strerror or exc}") from None


def _move_into_place(tmp: Path, out: Path) -> None:
    old = None
    if out.exists():
        old = out.parent / f".{out.name}.old-{os.getpid()}-{time.monotonic_ns()}"
        os.rename(out, old)
    os.rename(tmp, out)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def write_dataset(
    out: str | os.PathLike,
    cfg: SynthConfig,
    *,
    overwrite: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> SynthSummary:
    """Write a YouTube-VIS style data set into `out` (annotations.json and JPEGImages/).

    The data set is written into a temporary folder beside `out` and renamed into place at the
    end, so `out` holds either nothing new or a complete data set.  An existing non-empty `out` is
    replaced only with ``overwrite``.  ``progress(done, total)`` is called after every video.
    """
    cfg.validate()
    out = Path(out)
    _prepare_target(out, overwrite)
    start = time.perf_counter()
    try:
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    except OSError as exc:
        raise InputError(f"cannot write into {out.parent}: {exc.strerror or exc}") from None
    summary = SynthSummary(out, 0, 0, 0, {0: 0, 1: 0, 2: 0}, 0, 0, 0, 0, 0.0)
    try:
        videos, annotations = [], []
        params = [cv2.IMWRITE_JPEG_QUALITY, int(cfg.jpeg_quality)]
        for index in range(cfg.videos):
            name = video_name(index)
            (tmp / "JPEGImages" / name).mkdir(parents=True)
            objects, _events, frames = _frame_records(cfg, index)
            per_obj: list[dict[str, list]] = [{"segmentations": [], "bboxes": [], "areas": [], "occlusion": []} for _ in objects]
            hidden = np.zeros((len(objects), cfg.frames), bool)
            file_names = []
            for f, (fr, labels) in enumerate(frames):
                file_name = f"{name}/{f:05d}.jpg"
                if not cv2.imwrite(str(tmp / "JPEGImages" / file_name), cv2.cvtColor(fr.image, cv2.COLOR_RGB2BGR), params):
                    raise OSError(f"could not write {file_name}")
                file_names.append(file_name)
                for k, rec in enumerate(per_obj):
                    if labels[k] < 0:
                        for key in rec:
                            rec[key].append(None)
                        hidden[k, f] = bool(fr.amodal[k].any())
                        continue
                    rle, bbox, area = _encode(fr.visible[k])
                    rec["segmentations"].append(rle)
                    rec["bboxes"].append(bbox)
                    rec["areas"].append(area)
                    rec["occlusion"].append(OCCLUSION_NAMES[labels[k]])
            video_id = index + 1
            videos.append({"id": video_id, "file_names": file_names, "height": cfg.height, "width": cfg.width, "length": cfg.frames, "name": name})
            for k, rec in enumerate(per_obj):
                present = [a is not None for a in rec["areas"]]
                if not any(present):
                    continue
                annotations.append(
                    {"id": len(annotations) + 1, "video_id": video_id, "category_id": objects[k].category + 1, "iscrowd": 0, **rec}
                )
                for label in rec["occlusion"]:
                    if label is not None:
                        summary.occlusion_counts[OCCLUSION_NAMES.index(label)] += 1
                summary.hidden_frames += int(hidden[k].sum())
                first, last = present.index(True), len(present) - 1 - present[::-1].index(True)
                summary.entering += int(first > 0)
                summary.leaving += int(last < len(present) - 1)
                summary.reappearing += int(not all(present[first : last + 1]))
            if progress is not None:
                progress(index + 1, cfg.videos)
        dataset = {
            "info": {
                "description": "dvis synthetic video instance segmentation data (YouTube-VIS format, OVIS occlusion labels)",
                "generator": "dvis_cli.data.synth",
                "config": asdict(cfg),
                "occlusion_labels": list(OCCLUSION_NAMES),
                "masks": "visible part of each object; null where it is not visible",
            },
            "licenses": [],
            "videos": videos,
            "annotations": annotations,
            "categories": cfg.categories(),
        }
        with open(tmp / "annotations.json", "w", encoding="utf-8") as fh:
            json.dump(dataset, fh, separators=(",", ":"))
        _move_into_place(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    summary.videos, summary.frames, summary.annotations = cfg.videos, cfg.videos * cfg.frames, len(annotations)
    summary.seconds = time.perf_counter() - start
    return summary


# ----------------------------------------------------------------------------------------------
# example clips
# ----------------------------------------------------------------------------------------------


def _write_sine_wav(path: Path, seconds: float, rate: int = 16000, freq: float = 440.0) -> None:
    n = max(1, int(round(seconds * rate)))
    tone = 0.3 * np.sin(2 * math.pi * freq * np.arange(n) / rate)
    fade = np.minimum(1.0, np.minimum(np.arange(n), np.arange(n)[::-1]) / (0.01 * rate))  # no clicks
    pcm = (tone * fade * 32767).astype("<i2")
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(pcm.tobytes())


def write_example_clip(
    path: str | os.PathLike,
    seed: int = 0,
    frames: int = 24,
    size: tuple[int, int] = (96, 160),
    *,
    fps: float = 8.0,
    audio: bool = False,
    occlusion: str = "heavy",
) -> Path:
    """Write one synthetic video as an H.264 (yuv420p) mp4, with a 440 Hz sine track if `audio`.

    `size` is (height, width); odd sizes are padded by one pixel, as yuv420p needs even ones.
    """
    import imageio_ffmpeg

    height, width = size
    cfg = SynthConfig(videos=1, frames=frames, height=height, width=width, seed=seed, occlusion=occlusion)
    cfg.validate()
    if fps <= 0:
        raise InputError(f"fps must be positive, got {fps}")
    video = generate_video(cfg, 0)
    h2, w2 = height + height % 2, width + width % 2
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="dvis-clip-") as tmpdir:
        kwargs: dict = {}
        if audio:
            wav = Path(tmpdir) / "tone.wav"
            _write_sine_wav(wav, frames / fps)
            kwargs = {"audio_path": str(wav), "audio_codec": "aac"}
        writer = imageio_ffmpeg.write_frames(
            str(path),
            (w2, h2),
            fps=fps,
            codec="libx264",
            pix_fmt_out="yuv420p",
            macro_block_size=1,
            quality=8,
            output_params=["-movflags", "+faststart"],
            ffmpeg_log_level="error",
            **kwargs,
        )
        writer.send(None)
        try:
            for image in video.frames:
                if (h2, w2) != (height, width):
                    image = cv2.copyMakeBorder(image, 0, h2 - height, 0, w2 - width, cv2.BORDER_REPLICATE)
                writer.send(np.ascontiguousarray(image))
        finally:
            writer.close()
    return path


__all__ = [
    "CLASS_NAMES",
    "DEFAULT_CLASSES",
    "OCCLUSION_LEVELS",
    "OCCLUSION_NAMES",
    "SynthConfig",
    "SynthSummary",
    "SynthVideo",
    "generate_video",
    "occlusion_label",
    "video_name",
    "write_dataset",
    "write_example_clip",
]
