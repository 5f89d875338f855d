"""Loading and validating YouTube-VIS / OVIS ground truth and result files; atomic JSON output.

Everything a user can get wrong raises :class:`dvis_cli.errors.InputError` with one line naming the
file, the video and the frame. The official tools are far more lenient (they drop unknown
categories, truncate frame lists, score size mismatches as IoU 0); we refuse instead, because
each of those silently changes the numbers. Inputs are never mutated.
"""
from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from pycocotools import mask as mask_api

from dvis_cli.atomic import write_json_atomic  # noqa: F401 - part of dvis_cli.eval's API
from dvis_cli.errors import InputError
from dvis_cli.eval.occlusion import occlusion_score
from dvis_cli.eval.rle import to_compressed_rle


@dataclass(frozen=True)
class VisVideo:
    id: int
    height: int
    width: int
    length: int
    file_names: tuple[str, ...]

    @property
    def label(self) -> str:
        """'video 3 (ff25f55852)' for messages: the id plus the folder of its frames when known."""
        folder = os.path.dirname(self.file_names[0]) if self.file_names else ""
        return f"video {self.id}" + (f" ({folder})" if folder else "")

    def frame_label(self, t: int) -> str:
        name = self.file_names[t] if t < len(self.file_names) else ""
        return f"frame {t}" + (f" ({name})" if name else "")


@dataclass(frozen=True)
class Track:
    """One ground-truth or predicted video-level track.

    `rles`: per frame a compressed RLE dict or None (absent). `mask_areas`: (T,) int64 pixel counts
    of those masks (0 when absent), used for the IoU. `avg_area`: the official `avg_area`, the mean
    of the truthy per-frame areas (GT: the JSON `areas`; predictions: mask areas), 0 if none.
    """

    index: int  # position in its file (results: tie order of equal scores)
    id: int  # GT annotation id; for predictions index + 1, as `loadRes` numbers them
    video_id: int
    category_id: int
    score: float  # GT: 1.0
    iscrowd: bool
    rles: tuple[dict | None, ...]
    mask_areas: np.ndarray
    avg_area: float
    occlusion_score: float | None = None


@dataclass(frozen=True)
class VisGroundTruth:
    videos: dict[int, VisVideo]
    categories: dict[int, str]
    tracks: tuple[Track, ...]
    source: str

    @property
    def has_occlusion(self) -> bool:
        return bool(self.tracks) and all(t.occlusion_score is not None for t in self.tracks)


def read_json(src: str | os.PathLike | Any, what: str) -> tuple[Any, str]:
    """(parsed object, name for messages) from a path; an already parsed object passes through."""
    if not isinstance(src, (str, os.PathLike)):
        return src, what
    path = Path(src)
    if not path.is_file():
        raise InputError(f"{what} file not found: {path}")
    try:
        with path.open("r", encoding="utf-8") as fh:
            return json.load(fh), str(path)
    except json.JSONDecodeError as exc:
        raise InputError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno}, column {exc.colno})") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: cannot read ({exc})") from None


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _require_list(obj: dict, key: str, where: str) -> list:
    value = obj.get(key)
    if not isinstance(value, list):
        raise InputError(f"{where}: '{key}' must be a list, got {type(value).__name__}")
    return value


def _load_video(raw: Any, where: str) -> VisVideo:
    if not isinstance(raw, dict):
        raise InputError(f"{where}: each entry of 'videos' must be an object")
    vid = raw.get("id")
    if not _is_int(vid):
        raise InputError(f"{where}: a video has no integer 'id' ({vid!r})")
    h, w = raw.get("height"), raw.get("width")
    if not (_is_int(h) and _is_int(w) and h > 0 and w > 0):
        raise InputError(f"{where}: video {vid} needs positive integer 'height' and 'width', got {h!r} x {w!r}")
    names = raw.get("file_names") or []
    length = raw.get("length", len(names))
    if not _is_int(length) or length <= 0 or (names and len(names) != length):
        raise InputError(f"{where}: video {vid} has 'length' {length!r} but {len(names)} file_names")
    return VisVideo(id=vid, height=h, width=w, length=length, file_names=tuple(str(n) for n in names))


def _rles_and_areas(segms: Any, video: VisVideo, where: str, *, allow_polygon: bool) -> tuple[tuple, np.ndarray]:
    if not isinstance(segms, list) or len(segms) != video.length:
        n = len(segms) if isinstance(segms, list) else type(segms).__name__
        # The official YTVIS code zips the lists and silently drops the missing frames.
        raise InputError(f"{where}, {video.label}: 'segmentations' has {n} frames, the video has {video.length}")
    rles: list[dict | None] = []
    for t, segm in enumerate(segms):
        try:
            rles.append(to_compressed_rle(segm, video.height, video.width, allow_polygon=allow_polygon))
        except ValueError as exc:
            raise InputError(f"{where}, {video.label}, {video.frame_label(t)}: {exc}") from None
    areas = np.zeros(video.length, dtype=np.int64)
    present = [t for t, r in enumerate(rles) if r is not None]
    if present:
        try:
            areas[present] = mask_api.area([rles[t] for t in present])
        except Exception as exc:
            raise InputError(f"{where}, {video.label}: unreadable RLE counts ({exc})") from None
        bad = [t for t in present if areas[t] > video.height * video.width]
        if bad:
            frame = video.frame_label(bad[0])
            raise InputError(f"{where}, {video.label}, {frame}: corrupt RLE (area exceeds the frame)")
    return tuple(rles), areas


def _mean_truthy(values) -> float:
    """The official `avg_area`: mean of the per-frame areas that are truthy (None and 0 dropped)."""
    kept = [float(v) for v in values if v]
    return float(np.array(kept).mean()) if kept else 0.0


def load_vis_ground_truth(src: str | os.PathLike | dict) -> VisGroundTruth:
    """YouTube-VIS / OVIS ground truth (path or parsed dict), validated; OVIS `occlusion` kept."""
    data, name = read_json(src, "ground-truth")
    if not isinstance(data, dict):
        raise InputError(f"{name}: ground truth must be a JSON object with 'videos', 'categories', 'annotations'")
    if data.get("annotations") is None:
        raise InputError(f"{name}: has no 'annotations' (a valid/test split? its GT is only on the server)")
    videos: dict[int, VisVideo] = {}
    for raw in _require_list(data, "videos", name):
        video = _load_video(raw, name)
        if video.id in videos:
            raise InputError(f"{name}: video id {video.id} appears twice")
        videos[video.id] = video
    categories: dict[int, str] = {}
    for raw in _require_list(data, "categories", name):
        cid = raw.get("id") if isinstance(raw, dict) else None
        if not _is_int(cid) or cid in categories:
            raise InputError(f"{name}: category ids must be unique integers, got {cid!r}")
        categories[cid] = str(raw.get("name", cid))
    anns = _require_list(data, "annotations", name)
    with_occ = sum(1 for a in anns if isinstance(a, dict) and "occlusion" in a)
    tracks: list[Track] = []
    seen: set[int] = set()
    for i, ann in enumerate(anns):
        where = f"{name}: annotation {i}"
        if not isinstance(ann, dict):
            raise InputError(f"{where} is not an object")
        aid = ann.get("id")
        # id 0 would read as "unmatched" inside the official matcher.
        if not _is_int(aid) or aid < 1 or aid in seen:
            raise InputError(f"{where}: 'id' must be a unique integer >= 1, got {aid!r}")
        seen.add(aid)
        where = f"{name}: annotation {aid}"
        video = videos.get(ann.get("video_id"))
        if video is None:
            raise InputError(f"{where}: unknown video_id {ann.get('video_id')!r}")
        if ann.get("category_id") not in categories:
            raise InputError(f"{where}, {video.label}: unknown category_id {ann.get('category_id')!r}")
        rles, mask_areas = _rles_and_areas(ann.get("segmentations"), video, where, allow_polygon=True)
        json_areas = ann.get("areas")
        if json_areas is None:
            json_areas = mask_areas.tolist()  # the official code needs `areas`; we fall back to the masks
        elif not isinstance(json_areas, list) or len(json_areas) != video.length:
            raise InputError(f"{where}, {video.label}: 'areas' must list one value per frame ({video.length})")
        elif not all(a is None or (isinstance(a, (int, float)) and math.isfinite(a)) for a in json_areas):
            raise InputError(f"{where}, {video.label}: 'areas' must hold numbers or null")
        occ = None
        if with_occ:
            occ = _occlusion(ann, video, where, with_occ, len(anns))
        tracks.append(Track(
            index=i, id=aid, video_id=video.id, category_id=ann["category_id"], score=1.0,
            iscrowd=bool(ann.get("iscrowd", 0)), rles=rles, mask_areas=mask_areas,
            avg_area=_mean_truthy(json_areas), occlusion_score=occ,
        ))
    return VisGroundTruth(videos=videos, categories=categories, tracks=tuple(tracks), source=name)


def _occlusion(ann: dict, video: VisVideo, where: str, with_occ: int, total: int) -> float:
    labels = ann.get("occlusion")
    if labels is None:
        raise InputError(f"{where}, {video.label}: no 'occlusion' labels while {with_occ} of {total} "
                         "annotations have them")
    if not isinstance(labels, list) or len(labels) != video.length:
        raise InputError(f"{where}, {video.label}: 'occlusion' must list one label per frame ({video.length})")
    try:
        return occlusion_score(labels)
    except ValueError as exc:
        raise InputError(f"{where}, {video.label}: {exc}") from None


def load_vis_results(src: str | os.PathLike | list, gt: VisGroundTruth) -> tuple[Track, ...]:
    """A YouTube-VIS result list (path or parsed list) checked against `gt`."""
    data, name = read_json(src, "results")
    if not isinstance(data, list):
        raise InputError(f"{name}: results must be a JSON list of {{video_id, category_id, score, segmentations}}")
    tracks: list[Track] = []
    for i, res in enumerate(data):
        where = f"{name}: entry {i}"
        if not isinstance(res, dict):
            raise InputError(f"{where} is not an object")
        video = gt.videos.get(res.get("video_id"))
        if video is None:
            raise InputError(f"{where}: video_id {res.get('video_id')!r} is not in the ground truth")
        cat = res.get("category_id")
        if cat not in gt.categories:
            # The official evaluator silently drops these.
            raise InputError(f"{where}, {video.label}: category_id {cat!r} is not in the ground truth")
        score = res.get("score")
        if isinstance(score, bool) or not isinstance(score, (int, float)) or not math.isfinite(score):
            raise InputError(f"{where}, {video.label}: 'score' must be a finite number, got {score!r}")
        rles, areas = _rles_and_areas(res.get("segmentations"), video, where, allow_polygon=False)
        tracks.append(Track(
            index=i, id=i + 1, video_id=video.id, category_id=cat, score=float(score), iscrowd=False,
            rles=rles, mask_areas=areas, avg_area=_mean_truthy(areas.tolist()),
        ))
    return tuple(tracks)
