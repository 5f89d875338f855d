"""VIPSeg-format exports of a VPS result store: what the official VPQ / STQ scripts and
`dvis eval score --pred-pan ... --pred-json ...` read.

    <folder>/pan_pred/<video_id>/<frame>.png   RGB, segment id = R + 256 G + 256^2 B, black = void
    <folder>/pred.json                          {"annotations": [{"video_id", "annotations": [per frame
                                                 {"image_id", "file_name", "segments_info": [{"id",
                                                 "category_id", "iscrowd": 0, "bbox", "area"}]}]}]}

One PNG and one `pred.json` frame entry per processed frame, in order. `id` is the PNG id of the
segment: the store's segment id (1, 2, ...) times an odd constant modulo 2^24, a bijection, so ids
stay unique and non-zero and the PNGs show distinct colours; a segment keeps its id in every frame.
`category_id` is the dataset's category id (VIPSeg 0..123), `bbox` [x, y, w, h] and `area` are of
the segment in that frame; only segments present in a frame are listed. Frame names are the source
frame files' stems when the run read a frame folder (VIPSeg's own `<frame>.jpg` -> `<frame>.png`),
else the 0-based frame number, `%06d.png`. `pred.json` holds every video exported into `folder`:
writing a video replaces its entry and keeps the others.
"""
from __future__ import annotations

import json
import os
import re
from pathlib import Path

import cv2
import numpy as np

from dvis_cli.errors import DvisError, InputError
from dvis_cli.atomic import atomic_open, write_bytes_atomic
from dvis_cli.export.common import open_store, rle_area, rle_bbox
from dvis_cli.inference.results import ResultStore, decode_mask

ID_BITS = 24
_MULTIPLIER = 0x9E3779B1  # odd: multiplication modulo 2^24 is a bijection
PRED_JSON = "pred.json"
PAN_DIR = "pan_pred"


def pan_id(segment_id: int) -> int:
    """The PNG id (24-bit colour) of a store segment id."""
    if not 0 < segment_id < 1 << ID_BITS:
        raise DvisError(f"segment id {segment_id} does not fit a 24-bit panoptic PNG")
    return segment_id * _MULTIPLIER % (1 << ID_BITS)


def frame_png_names(store: ResultStore) -> dict[int, str] | None:
    """Frame index -> PNG name from the source frame files (a frame-folder run), or None."""
    files = store.meta.extra.get("frame_files")
    if not files:
        return None
    stems = [os.path.splitext(os.path.basename(f))[0] for f in files]
    if len(set(stems)) != len(stems):
        return None  # e.g. a.jpg and a.png: fall back to frame numbers
    return {i: f"{s}.png" for i, s in enumerate(stems)}


def _png(ids: np.ndarray) -> bytes:
    ids = ids.astype(np.uint32)
    bgr = np.stack([ids >> 16 & 255, ids >> 8 & 255, ids & 255], axis=-1).astype(np.uint8)  # OpenCV order
    ok, png = cv2.imencode(".png", bgr)
    if not ok:  # pragma: no cover - cv2 encodes any uint8 image
        raise DvisError("could not encode a panoptic PNG")
    return png.tobytes()


def write_vipseg_pngs(store: ResultStore | str | os.PathLike, folder: str | os.PathLike) -> list[dict]:
    """Write one panoptic PNG per frame into `folder`; returns the frames' `pred.json` entries.

    PNGs in `folder` that this export did not write again are removed, so it matches the store.
    """
    store = open_store(store)
    if store.meta.task != "vps":
        raise InputError(f"{store.folder}: VIPSeg exports need a VPS run (this store is {store.meta.task!r})")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    names = frame_png_names(store)
    by_segment = {t.slot: t for t in store.tracks}
    shape = (store.meta.height, store.meta.width)
    frames, written = [], set()
    for frame in store.frames():
        name = names.get(frame.index) if names else None
        name = name or f"{frame.index:06d}.png"
        canvas = np.zeros(shape, dtype=np.uint32)
        infos = []
        for segment_id, rle in sorted(frame.masks.items()):
            track = by_segment.get(segment_id)
            if track is None:
                raise InputError(f"{store.folder}: frame {frame.index} has segment {segment_id}, which tracks.json does not list")
            pid = pan_id(segment_id)
            canvas[decode_mask(rle)] = pid
            infos.append({"id": pid, "category_id": int(track.category_id), "iscrowd": 0,
                          "bbox": [int(v) for v in rle_bbox(rle)], "area": rle_area(rle)})
        write_bytes_atomic(folder / name, _png(canvas))
        written.add(name)
        frames.append({"image_id": name[:-4], "file_name": name, "segments_info": infos})
    for stale in folder.iterdir():
        if stale.suffix == ".png" and stale.name not in written:
            stale.unlink()
    return frames


def write_vipseg(store: ResultStore | str | os.PathLike, folder: str | os.PathLike, video_id: str | None = None) -> dict[str, Path]:
    """PNGs under `folder/pan_pred/<video_id>/` and the video's entry in `folder/pred.json`.

    `video_id` defaults to the store folder's name without `.results`. Returns the paths written:
    {"pan_pred": the video's PNG folder, "pred_json": pred.json}.
    """
    store = open_store(store)
    folder = Path(folder)
    video_id = video_id or re.sub(r"\.results$", "", store.folder.name)
    pan = folder / PAN_DIR / video_id
    entry = {"video_id": video_id, "annotations": write_vipseg_pngs(store, pan)}
    path = folder / PRED_JSON
    videos = []
    if path.exists():
        try:
            videos = json.loads(path.read_text())["annotations"]
            if not isinstance(videos, list):
                raise TypeError
        except (ValueError, KeyError, TypeError):
            raise InputError(f"{path}: exists but is not a VIPSeg pred.json; move it away to export here") from None
    at = [i for i, v in enumerate(videos) if isinstance(v, dict) and v.get("video_id") == video_id]
    if at:
        videos[at[0]] = entry
    else:
        videos.append(entry)
    with atomic_open(path) as fh:
        json.dump({"annotations": videos}, fh, separators=(",", ":"))
    return {"pan_pred": pan, "pred_json": path}
