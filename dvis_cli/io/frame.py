"""A decoded frame, and which frames a `start`/`end`/`stride` request picks."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dvis_cli.errors import InputError
from dvis_cli.io.probe import VideoInfo
from dvis_cli.io.timecode import Position, format_duration, parse_position


@dataclass(frozen=True, eq=False)
class Frame:
    """One frame: `image` is RGB uint8 (H, W, 3) in display orientation.

    `index` counts frames from the start of the source (0-based, before any stride), `time` is
    the presentation time in seconds (exact per frame, also for variable frame rate video),
    `name` the file name for image sequences.
    """

    index: int
    time: float
    image: np.ndarray
    name: str | None = None


class DecodeError(InputError):
    """A source that stops before its end (truncated file, unreadable image).

    Raised after the frames before the break were yielded; `frames_read` says how many that was and
    `frame_index` which frame could not be read.
    """

    def __init__(self, message: str, *, frame_index: int, frames_read: int) -> None:
        super().__init__(message)
        self.frame_index = frame_index
        self.frames_read = frames_read


@dataclass(frozen=True)
class FrameSelection:
    """Frames `start`, `start + stride`, ... below `stop` (frame indices of the source)."""

    start: int
    stop: int
    stride: int

    def __len__(self) -> int:
        return len(range(self.start, self.stop, self.stride))

    def __contains__(self, index: int) -> bool:
        return self.start <= index < self.stop and (index - self.start) % self.stride == 0

    def indices(self) -> range:
        return range(self.start, self.stop, self.stride)


def select_frames(info: VideoInfo, start=None, end=None, stride: int = 1) -> FrameSelection:
    """Resolve `start`/`end` (frame numbers or times, see `parse_position`) against a source.

    `end` is exclusive: frame `end`, or the first frame at or after time `end`, is not included.
    """
    if not isinstance(stride, int) or isinstance(stride, bool) or stride < 1:
        raise InputError(f"stride must be a whole number >= 1, not {stride!r}")
    first = parse_position(start)
    last = parse_position(end)
    count = info.frame_count
    begin = 0 if first is None else _to_index(info, first)
    stop = count if last is None else min(_to_index(info, last), count)
    if begin >= count:
        raise InputError(
            f"start {first} is past the end of {info.path} ({count} frames, {format_duration(info.duration)})"
        )
    if stop <= begin:
        raise InputError(f"end {last} is not after start {first or 'frame 0'}: no frames selected")
    return FrameSelection(begin, stop, stride)


def frame_times(info: VideoInfo) -> np.ndarray:
    """Presentation time of every frame in seconds (from the probe, or index / fps)."""
    if info.frame_times is not None:
        return info.frame_times
    return np.arange(info.frame_count, dtype=np.float64) / float(info.fps)


def _to_index(info: VideoInfo, position: Position) -> int:
    if position.frame is not None:
        return position.frame
    times = frame_times(info)
    # The first frame shown at or after the time; 1 us of slack for times printed with rounding.
    return int(np.searchsorted(times, position.seconds - 1e-6, side="left"))
