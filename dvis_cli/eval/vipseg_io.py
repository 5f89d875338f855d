"""VIPSeg panoptic ground truth and predictions: JSON + RGB id PNGs, read once per frame.

Layout (eval.md section 1.3): `<gt_pan>/<video_id>/<file_name>` and `<pred_pan>/<video_id>/<file_name>`,
where `file_name` comes from the GT `videos[].images[]`; segment id = R + 256 G + 256^2 B, 0 = VOID.
GT frames, GT annotations and predicted annotations are paired by list position, as the official
scripts do. Each frame is reduced to the joint histogram of (GT id, predicted id) pixel pairs, from
which both VPQ and STQ are computed, so no image is held after its frame is read.
"""
from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from dvis_cli.errors import InputError
from dvis_cli.eval.io import read_json

ID_OFFSET = 256**3  # ids are 24-bit colours: (gt, pred) packs into one uint64 key


@dataclass(frozen=True)
class PanopticCategory:
    id: int
    name: str
    isthing: bool


@dataclass(frozen=True)
class FrameSegments:
    """One frame's `segments_info`, in JSON order. `areas`: GT from JSON, prediction from the PNG."""

    ids: np.ndarray  # (N,) int64
    category_ids: np.ndarray  # (N,) int64
    iscrowd: np.ndarray  # (N,) bool
    areas: np.ndarray  # (N,) float64


@dataclass(frozen=True)
class FramePairs:
    """Joint histogram of one frame: `count` pixels carry GT id `gt` and predicted id `pred`."""

    gt: np.ndarray  # (P,) int64, sorted by (gt, pred)
    pred: np.ndarray  # (P,) int64
    count: np.ndarray  # (P,) int64
    gt_segments: FrameSegments
    pred_segments: FrameSegments
    name: str  # file name, for messages


@dataclass(frozen=True)
class VipsegSet:
    categories: dict[int, PanopticCategory]  # GT JSON order
    video_ids: tuple[str, ...]
    _gt_frames: dict[str, list[dict]]  # video -> per-frame GT annotations
    _pred_frames: dict[str, list[dict]]
    _file_names: dict[str, list[str]]
    gt_dir: Path
    pred_dir: Path

    def frames(self, video_id: str) -> Iterator[FramePairs]:
        """Read and check one video's frames in order."""
        for t, name in enumerate(self._file_names[video_id]):
            where = f"video {video_id}, frame {t} ({name})"
            gt_ids = read_id_png(self.gt_dir / video_id / name, f"{where}: ground-truth PNG")
            pred_ids = read_id_png(self.pred_dir / video_id / name, f"{where}: predicted PNG")
            if gt_ids.shape != pred_ids.shape:
                raise InputError(f"{where}: predicted PNG is {pred_ids.shape[1]}x{pred_ids.shape[0]}, "
                                 f"ground truth {gt_ids.shape[1]}x{gt_ids.shape[0]}")
            keys, counts = np.unique(gt_ids.astype(np.uint64) * ID_OFFSET + pred_ids, return_counts=True)
            gt, pred = (keys // ID_OFFSET).astype(np.int64), (keys % ID_OFFSET).astype(np.int64)
            gt_seg = _segments(self._gt_frames[video_id][t], f"{where}: ground truth", self.categories,
                               need_area=True)
            pred_seg = _segments(self._pred_frames[video_id][t], f"{where}: prediction", self.categories,
                                 need_area=False)
            pred_seg = _check_prediction(pred_seg, pred, counts, where)
            yield FramePairs(gt=gt, pred=pred, count=counts.astype(np.int64),
                             gt_segments=gt_seg, pred_segments=pred_seg, name=name)


def read_id_png(path: Path, what: str) -> np.ndarray:
    """(H, W) uint32 segment ids from an RGB(A) PNG: R + 256 G + 256^2 B."""
    if not path.is_file():
        raise InputError(f"{what} not found: {path}")
    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if img is None:
        raise InputError(f"{what} is not a readable image: {path}")
    if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] not in (3, 4):
        raise InputError(f"{what} must be an 8-bit RGB PNG of segment ids, got {img.dtype} {img.shape}: {path}")
    img = img.astype(np.uint32)  # OpenCV order is B, G, R
    return img[:, :, 2] + img[:, :, 1] * 256 + img[:, :, 0] * 65536


def _segments(frame: dict, where: str, categories: dict[int, PanopticCategory], *, need_area: bool) -> FrameSegments:
    infos = frame.get("segments_info") if isinstance(frame, dict) else None
    if not isinstance(infos, list):
        raise InputError(f"{where}: each frame needs a 'segments_info' list")
    ids, cats, crowd, areas = [], [], [], []
    for info in infos:
        sid = info.get("id") if isinstance(info, dict) else None
        if not isinstance(sid, int) or isinstance(sid, bool) or not 0 <= sid < ID_OFFSET:
            raise InputError(f"{where}: segment id {sid!r} is not a 24-bit integer")
        if sid in ids:
            raise InputError(f"{where}: segment id {sid} is listed twice")
        if info.get("category_id") not in categories:
            raise InputError(f"{where}: segment {sid} has unknown category_id {info.get('category_id')!r}")
        area = info.get("area", 0.0 if not need_area else None)
        if isinstance(area, bool) or not isinstance(area, (int, float)):
            raise InputError(f"{where}: segment {sid} needs a numeric 'area', got {area!r}")
        ids.append(sid)
        cats.append(info["category_id"])
        crowd.append(bool(info.get("iscrowd", 0)))
        areas.append(float(area))
    return FrameSegments(ids=np.array(ids, dtype=np.int64), category_ids=np.array(cats, dtype=np.int64),
                         iscrowd=np.array(crowd, dtype=bool), areas=np.array(areas, dtype=np.float64))


def _check_prediction(seg: FrameSegments, pred: np.ndarray, counts: np.ndarray, where: str) -> FrameSegments:
    """The official sanity checks; areas replaced by the PNG pixel counts."""
    png_area: dict[int, int] = {}
    for p, c in zip(pred.tolist(), counts.tolist()):
        png_area[p] = png_area.get(p, 0) + c
    if 0 in seg.ids:
        raise InputError(f"{where}: prediction lists segment id 0, which is VOID (black)")
    listed = set(seg.ids.tolist())
    unlisted = sorted(set(png_area) - listed - {0})
    if unlisted:
        raise InputError(f"{where}: predicted PNG has segment ids {unlisted[:5]} that 'segments_info' does not list")
    missing = sorted(listed - set(png_area))
    if missing:
        raise InputError(f"{where}: 'segments_info' lists ids {missing[:5]} that the predicted PNG does not contain")
    areas = np.array([png_area[s] for s in seg.ids.tolist()], dtype=np.float64)
    return FrameSegments(ids=seg.ids, category_ids=seg.category_ids, iscrowd=seg.iscrowd, areas=areas)


def _per_video(data: dict, key: str, name: str) -> dict[str, list[dict]]:
    entries = data.get(key)
    if not isinstance(entries, list):
        raise InputError(f"{name}: '{key}' must be a list")
    out = {}
    for entry in entries:
        if not isinstance(entry, dict) or "video_id" not in entry or not isinstance(entry.get("annotations"), list):
            raise InputError(f"{name}: each '{key}' entry needs 'video_id' and an 'annotations' list")
        out[str(entry["video_id"])] = entry["annotations"]
    return out


def load_vipseg(gt_json: str | os.PathLike | dict, gt_pan_dir: str | os.PathLike,
                pred_json: str | os.PathLike | dict, pred_pan_dir: str | os.PathLike) -> VipsegSet:
    """Check the two JSON files against each other; PNGs are read later, frame by frame."""
    gt, gt_name = read_json(gt_json, "ground-truth")
    pred, pred_name = read_json(pred_json, "prediction")
    if not isinstance(gt, dict) or not isinstance(pred, dict):
        raise InputError("VIPSeg ground truth and prediction JSON must be objects with 'annotations'")
    for folder, what in ((gt_pan_dir, "ground-truth PNG folder"), (pred_pan_dir, "prediction PNG folder")):
        if not Path(folder).is_dir():
            raise InputError(f"{what} not found: {folder}")
    categories = {}
    for cat in gt.get("categories") or []:
        if not isinstance(cat, dict) or not isinstance(cat.get("id"), int):
            raise InputError(f"{gt_name}: each category needs an integer 'id'")
        categories[cat["id"]] = PanopticCategory(cat["id"], str(cat.get("name", cat["id"])), bool(cat.get("isthing")))
    if not categories:
        raise InputError(f"{gt_name}: no 'categories'")
    gt_frames = _per_video(gt, "annotations", gt_name)
    pred_frames = _per_video(pred, "annotations", pred_name)
    file_names: dict[str, list[str]] = {}
    for video in gt.get("videos") or []:
        vid = str(video.get("video_id")) if isinstance(video, dict) else None
        images = video.get("images") if isinstance(video, dict) else None
        if vid is None or not isinstance(images, list):
            raise InputError(f"{gt_name}: each video needs 'video_id' and an 'images' list")
        if vid not in gt_frames:
            raise InputError(f"{gt_name}: video {vid} has no entry in 'annotations'")
        if vid not in pred_frames:
            raise InputError(f"{pred_name}: no prediction for video {vid}")
        n_img, n_gt, n_pred = len(images), len(gt_frames[vid]), len(pred_frames[vid])
        if not n_img == n_gt == n_pred:
            raise InputError(f"video {vid}: {n_img} GT images, {n_gt} GT frame annotations, {n_pred} predicted frames")
        file_names[vid] = [str(img.get("file_name")) for img in images]
    if not file_names:
        raise InputError(f"{gt_name}: no 'videos'")
    extra = sorted(set(pred_frames) - set(file_names))
    if extra:
        raise InputError(f"{pred_name}: video {extra[0]} is not in the ground truth")
    return VipsegSet(categories=categories, video_ids=tuple(file_names), _gt_frames=gt_frames,
                     _pred_frames=pred_frames, _file_names=file_names,
                     gt_dir=Path(gt_pan_dir), pred_dir=Path(pred_pan_dir))
