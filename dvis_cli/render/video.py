"""Render a result store onto its source video: an H.264 mp4 at the source rate, with its audio.

Works from saved results, without running the model again. Frames are streamed: one source frame
and one store record in memory at a time. The frames rendered are those from the first to the
last frame the store holds (the whole video for a full run; the --start/--end range otherwise;
`full=True` renders the whole source); frames inside that range without a record (a --stride
run) are written as they are. The audio is cut to the same time range.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator

from dvis_cli.errors import InputError
from dvis_cli.export.common import open_store
from dvis_cli.inference.results import FrameResult, ResultStore
from dvis_cli.render.overlay import DEFAULT_SHOW, Instance, draw_overlay, parse_show

Progress = Callable[[int, int], None]  # (frames done, frames in total)


@dataclass
class RenderReport:
    path: Path
    frames: int  # frames written
    annotated: int  # of which had a record in the store
    size: tuple[int, int]  # (width, height) of the mp4 (odd sizes padded to even)
    audio: str | None  # what happened to the audio ("aac copied", ...), None without audio
    missing: int  # store records not drawn: their frame is not in the source (a shorter or other video)
    warning: str | None = None  # the source broke off: the frames before the break were written


def frame_instances(store: ResultStore, record: FrameResult) -> list[Instance]:
    """The tracks present in one store record, ready for `draw_overlay`."""
    return [Instance(t.track_id, rle, t.class_name, t.score) for t, rle in store.track_masks(record) if rle is not None]


def _record_range(store: ResultStore) -> tuple[int, int, int] | None:
    """(first index, last index, number of records), or None for a store without frames."""
    first = last = None
    count = 0
    for record in store.frames():
        first = record.index if first is None else first
        last = record.index
        count += 1
    return None if first is None else (first, last, count)


def _match(records: Iterator[FrameResult], frames: Iterable) -> Iterator[tuple[object, FrameResult | None]]:
    """Pair each source frame with the store record of the same index (None where there is none)."""
    pending = next(records, None)
    for frame in frames:
        while pending is not None and pending.index < frame.index:
            pending = next(records, None)
        if pending is not None and pending.index == frame.index:
            yield frame, pending
            pending = next(records, None)
        else:
            yield frame, None


def _same_file(a: str | os.PathLike, b: str | os.PathLike) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def render_video_report(store: ResultStore | str | os.PathLike, source_path: str | os.PathLike,
                        out_path: str | os.PathLike, alpha: float = 0.5, show: Iterable[str] = DEFAULT_SHOW,
                        progress: Progress | None = None, full: bool = False) -> RenderReport:
    """Render and say what was written (see `render_video`)."""
    from dvis_cli.io import DecodeError, VideoWriter, open_source
    from dvis_cli.io.frame import frame_times

    store = open_store(store)
    if not 0.0 <= float(alpha) <= 1.0:
        raise InputError(f"alpha must be between 0 and 1, not {alpha}")
    show = parse_show(show)
    source = open_source(source_path)
    info = source.info
    if (info.width, info.height) != (store.meta.width, store.meta.height):
        raise InputError(f"{source_path} is {info.width}x{info.height} but the results in {store.folder} are for a "
                         f"{store.meta.width}x{store.meta.height} video ({store.meta.source})")
    out_path = Path(out_path)
    if _same_file(out_path, source.path):
        raise InputError(f"{out_path}: the render would overwrite its own source video")
    span = _record_range(store)
    if span is None:
        raise InputError(f"{store.folder}: the results hold no frames")
    count = info.frame_count
    start, stop = (0, count) if full else (min(span[0], count), min(span[1] + 1, count))
    if start >= stop:
        raise InputError(f"{source_path} has {count} frames, but the results are for frames {span[0]}..{span[1]}: "
                         f"is it the video they were made from?")
    times = frame_times(info) if info.kind == "video" else None
    audio_start = float(times[start]) if times is not None and start > 0 else 0.0
    audio_end = float(times[stop]) if times is not None and stop < len(times) else None
    audio_from = source.path if info.kind == "video" and info.has_audio else None

    total = stop - start
    done = annotated = 0
    warning = None
    records = store.frames()
    try:
        with VideoWriter(out_path, info.fps, info.size, audio_from=audio_from,
                         audio_start=audio_start, audio_end=audio_end) as writer:
            try:
                for frame, record in _match(records, source.frames(start=start, end=stop)):
                    if record is None:
                        writer.write(frame.image)
                    else:
                        writer.write(draw_overlay(frame.image, frame_instances(store, record), alpha, show))
                        annotated += 1
                    done += 1
                    if progress is not None:
                        progress(done, total)
            except DecodeError as exc:
                if writer.frames_written == 0:
                    raise
                warning = f"{exc}; the render stops there"
    finally:
        records.close()
    return RenderReport(out_path, writer.frames_written, annotated, writer.output_size, writer.audio,
                        span[2] - annotated, warning)


def render_video(store: ResultStore | str | os.PathLike, source_path: str | os.PathLike,
                 out_path: str | os.PathLike, alpha: float = 0.5, show: Iterable[str] = DEFAULT_SHOW,
                 progress: Progress | None = None, full: bool = False) -> Path:
    """Draw the store's tracks on `source_path` and write `out_path` (mp4); returns its path.

    `alpha`: mask fill opacity; `show`: any of mask, contour, box, label (a set or "mask,label");
    `progress(done, total)` is called after every frame; `full`: render every source frame, not
    only the results' range.
    The mp4 is H.264 yuv420p at the source's exact rate, odd sizes padded, the source's audio
    copied, written atomically. Raises InputError for a missing, unfinished or mismatched input.
    """
    return render_video_report(store, source_path, out_path, alpha, show, progress, full).path
