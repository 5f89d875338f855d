"""`<stem>.tracks.csv`: one row per track, a summary a spreadsheet or pandas reads directly.

Columns: id, class, score, first_frame, last_frame, first_time, last_time, frames_present,
mean_area. Frames are source frame numbers (0-based), times seconds from the frame timestamps
(exact also for variable frame rate video), mean_area the mean mask area in pixels over the frames
where the track is present. A track that is never present has empty first/last/mean cells.
"""
from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from pathlib import Path

from dvis_cli.atomic import atomic_open
from dvis_cli.export.common import open_store, rle_area
from dvis_cli.inference.results import ResultStore, Track

COLUMNS = ("id", "class", "score", "first_frame", "last_frame", "first_time", "last_time", "frames_present", "mean_area")


@dataclass
class TrackStats:
    track: Track
    first_frame: int | None = None
    last_frame: int | None = None
    first_time: float | None = None
    last_time: float | None = None
    frames_present: int = 0
    total_area: int = 0

    @property
    def mean_area(self) -> float | None:
        return self.total_area / self.frames_present if self.frames_present else None

    def add(self, index: int, time: float, area: int) -> None:
        if self.first_frame is None:
            self.first_frame, self.first_time = index, time
        self.last_frame, self.last_time = index, time
        self.frames_present += 1
        self.total_area += area


def track_stats(store: ResultStore) -> list[TrackStats]:
    """Per-track presence and area, in track order, from one pass over the store."""
    stats = [TrackStats(t) for t in store.tracks]
    for frame in store.frames():
        for entry, (_, rle) in zip(stats, store.track_masks(frame)):
            if rle is not None:
                entry.add(frame.index, frame.time, rle_area(rle))
    return stats


def _cell(value, fmt: str) -> str:
    return "" if value is None else format(value, fmt)


def write_tracks_csv(store: ResultStore | str | os.PathLike, path: str | os.PathLike) -> Path:
    """Write the per-track summary; returns the path written."""
    store = open_store(store)
    path = Path(path)
    with atomic_open(path, newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(COLUMNS)
        for s in track_stats(store):
            writer.writerow([
                s.track.track_id, s.track.class_name, f"{s.track.score:.4f}",
                _cell(s.first_frame, "d"), _cell(s.last_frame, "d"),
                _cell(s.first_time, ".6f"), _cell(s.last_time, ".6f"),
                s.frames_present, _cell(s.mean_area, ".1f"),
            ])
    return path
