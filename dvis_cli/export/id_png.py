"""`masks/<stem>/%06d.png` (`--save-masks png`): one 16-bit single-channel PNG per processed frame.

Pixel value = track id (the ids of tracks.csv and the other exports), 0 = background. Where tracks
overlap, the track with the higher score wins (equal scores: the lower id). File names are the
0-based source frame numbers. 16 bits hold ids up to 65535 and open in any image library
(`cv2.imread(p, cv2.IMREAD_UNCHANGED)`, PIL mode "I;16").
"""
from __future__ import annotations

import os
import re
from pathlib import Path

import cv2
import numpy as np

from dvis_cli.errors import DvisError
from dvis_cli.atomic import write_bytes_atomic
from dvis_cli.export.common import open_store
from dvis_cli.inference.results import ResultStore, decode_mask

MAX_ID = np.iinfo(np.uint16).max
_FRAME_PNG = re.compile(r"^\d{6,}\.png$")


def id_png_name(index: int) -> str:
    return f"{index:06d}.png"


def id_map(store: ResultStore, frame) -> np.ndarray:
    """(H, W) uint16 track-id map of one FrameResult."""
    canvas = np.zeros((store.meta.height, store.meta.width), dtype=np.uint16)
    present = [(t, rle) for t, rle in store.track_masks(frame) if rle is not None]
    for track, rle in sorted(present, key=lambda item: (item[0].score, -item[0].track_id)):
        canvas[decode_mask(rle)] = track.track_id
    return canvas


def write_id_pngs(store: ResultStore | str | os.PathLike, folder: str | os.PathLike) -> Path:
    """Write one id PNG per frame of the store into `folder`; returns the folder.

    Each file is written atomically; frame PNGs left in the folder by an earlier export that this
    one did not write again are removed, so the folder matches the store.
    """
    store = open_store(store)
    folder = Path(folder)
    too_big = [t.track_id for t in store.tracks if not 0 < t.track_id <= MAX_ID]
    if too_big:
        raise DvisError(f"track id {too_big[0]} does not fit a 16-bit PNG (1..{MAX_ID})")
    folder.mkdir(parents=True, exist_ok=True)
    written = set()
    for frame in store.frames():
        ok, png = cv2.imencode(".png", id_map(store, frame))
        if not ok:  # pragma: no cover - cv2 encodes any uint16 image
            raise DvisError(f"could not encode the id PNG of frame {frame.index}")
        name = id_png_name(frame.index)
        write_bytes_atomic(folder / name, png.tobytes())
        written.add(name)
    for stale in folder.iterdir():
        if _FRAME_PNG.match(stale.name) and stale.name not in written:
            stale.unlink()
    return folder
