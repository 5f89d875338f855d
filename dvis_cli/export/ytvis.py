"""`<stem>.ytvis.json`: the YouTube-VIS / OVIS results format that the evaluators and CodaLab take.

A flat list, one entry per track: `{video_id, category_id, score, segmentations}` where
`segmentations` has one item per frame of the store (in frame order): a compressed RLE with str
counts, or null where the track is absent. `category_id` is the dataset's id, not the contiguous
class index.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

from dvis_cli.atomic import atomic_open
from dvis_cli.export.common import open_store
from dvis_cli.inference.results import ResultStore


def write_ytvis(store: ResultStore | str | os.PathLike, path: str | os.PathLike, video_id: int = 1) -> Path:
    """Write the store's tracks as YouTube-VIS results; returns the path written."""
    store = open_store(store)
    path = Path(path)
    segmentations: list[list[dict | None]] = [[] for _ in store.tracks]
    for frame in store.frames():
        for column, (_, rle) in zip(segmentations, store.track_masks(frame)):
            column.append(rle)  # {"size": [H, W], "counts": str} or None
    results = [
        {"video_id": int(video_id), "category_id": int(track.category_id), "score": float(track.score), "segmentations": column}
        for track, column in zip(store.tracks, segmentations)
    ]
    with atomic_open(path) as fh:
        json.dump(results, fh, separators=(",", ":"))
    return path
