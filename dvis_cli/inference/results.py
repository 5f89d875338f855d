"""The result store: a video's segmentation on disk, written frame by frame, read by exporters.

Layout of a store folder:
  meta.json     video and model facts (size, fps, frames, class names, dataset ids, task, ...)
  frames.jsonl  one line per processed frame: {"i": index, "t": seconds, "m": {slot: rle counts}}
                (slot = tracker query slot; only non-empty masks; COCO compressed RLE, str counts)
  tracks.json   the final tracks once the video is done: id, slot, label, class, score, ...

Masks are keyed by query slot because which slots become tracks (and with which class) is only
known at the end of the video (the official top-k over video-level class scores); a slot can
even become two tracks with different classes. Memory stays flat: nothing is kept per frame.
"""
from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np
from pycocotools import mask as mask_utils

from dvis_cli.atomic import write_text_atomic


@dataclass
class Track:
    track_id: int  # 1-based, stable for the whole video, never recycled
    slot: int  # query slot whose masks this track uses
    label: int  # contiguous class index
    category_id: int  # the dataset's category id
    class_name: str
    score: float


@dataclass
class FrameResult:
    index: int  # frame number in the source
    time: float  # seconds
    masks: dict[int, dict]  # slot -> COCO RLE {"size": [H, W], "counts": str}


@dataclass
class StoreMeta:
    source: str
    width: int
    height: int
    fps: float | None
    task: str = "vis"
    class_names: list[str] = field(default_factory=list)
    dataset_ids: list[int] = field(default_factory=list)
    num_things: int | None = None
    mode: str = "online"
    weights: str = ""
    extra: dict = field(default_factory=dict)


def encode_mask(mask: np.ndarray) -> dict:
    """(H, W) bool -> COCO compressed RLE with str counts."""
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    rle["counts"] = rle["counts"].decode("ascii")
    return rle


def decode_mask(rle: dict) -> np.ndarray:
    return mask_utils.decode({"size": rle["size"], "counts": rle["counts"].encode("ascii")}).astype(bool)


def _write_json_atomic(path: Path, data) -> None:
    write_text_atomic(path, json.dumps(data))


class ResultWriter:
    """Append frames while segmenting; `finish` writes the tracks."""

    def __init__(self, folder: str | Path, meta: StoreMeta, resume_frames: int | None = None) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        _write_json_atomic(self.folder / "meta.json", asdict(meta))
        self._frames_path = self.folder / "frames.jsonl"
        (self.folder / "tracks.json").unlink(missing_ok=True)
        if resume_frames is None:
            self._frames_path.unlink(missing_ok=True)
        else:
            self._truncate(resume_frames)
        self._fh = open(self._frames_path, "a", encoding="utf-8")

    def _truncate(self, num_frames: int) -> None:
        """Keep the first `num_frames` complete lines (resuming after a kill)."""
        keep = []
        if self._frames_path.exists():
            with open(self._frames_path, encoding="utf-8") as f:
                for line in f:
                    if len(keep) == num_frames or not line.endswith("\n"):
                        break
                    keep.append(line)
        write_text_atomic(self._frames_path, "".join(keep))

    def append(self, index: int, time: float, masks: dict[int, dict]) -> None:
        line = {"i": int(index), "t": round(float(time), 6), "m": {str(k): v["counts"] for k, v in masks.items()}}
        self._fh.write(json.dumps(line, separators=(",", ":")) + "\n")

    def flush(self) -> None:
        """Make every appended frame durable (at checkpoints, so --resume can trust it)."""
        self._fh.flush()
        os.fsync(self._fh.fileno())

    def finish(self, tracks: list[Track]) -> None:
        self.close()
        _write_json_atomic(self.folder / "tracks.json", [asdict(t) for t in tracks])

    def close(self) -> None:
        if not self._fh.closed:
            self.flush()
            self._fh.close()


class ResultStore:
    """A finished (or partial) store, read back by exporters and the renderer."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        meta_path = self.folder / "meta.json"
        if not meta_path.exists():
            from dvis_cli.errors import InputError

            raise InputError(f"{self.folder}: not a dvis result store (no meta.json)")
        self.meta = StoreMeta(**json.loads(meta_path.read_text()))
        tracks_path = self.folder / "tracks.json"
        self.tracks: list[Track] = [Track(**t) for t in json.loads(tracks_path.read_text())] if tracks_path.exists() else []
        self.finished = tracks_path.exists()

    def frames(self) -> Iterator[FrameResult]:
        size = [self.meta.height, self.meta.width]
        with open(self.folder / "frames.jsonl", encoding="utf-8") as f:
            for line in f:
                if not line.endswith("\n"):
                    break  # a torn last line from a killed run
                rec = json.loads(line)
                yield FrameResult(rec["i"], rec["t"], {int(k): {"size": size, "counts": c} for k, c in rec["m"].items()})

    def num_frames(self) -> int:
        return sum(1 for _ in self.frames())

    def track_masks(self, frame: FrameResult) -> list[tuple[Track, dict | None]]:
        """Each final track with its RLE in this frame (None where the slot's mask is empty)."""
        return [(t, frame.masks.get(t.slot)) for t in self.tracks]
