"""A video file as a source of frames: probe once, then stream any range of frames."""
from __future__ import annotations

import os
import warnings
from typing import Iterator

import numpy as np

from dvis_cli.io.ffmpeg_frames import FFmpegFrames
from dvis_cli.io.frame import DecodeError, Frame, FrameSelection, select_frames
from dvis_cli.io.probe import VideoInfo, probe_video

# Below this start time, decoding from the beginning is cheaper than seeking.
SEEK_MIN_SECONDS = 2.0


class DecodeWarning(UserWarning):
    """Frames that ffmpeg could not decode, where the video goes on after them."""


class VideoFileSource:
    """Frames of a video file: RGB uint8, display orientation, exact per-frame timestamps."""

    kind = "video"

    def __init__(self, path: str | os.PathLike, info: VideoInfo | None = None) -> None:
        self.path = os.fspath(path)
        self.info = info if info is not None else probe_video(self.path)
        self.problems: list[str] = []  # decoder errors of the last read that did not stop it

    def __len__(self) -> int:
        return self.info.frame_count

    def __repr__(self) -> str:
        return f"VideoFileSource({self.path!r}, {self.info.frame_count} frames)"

    def frames(self, start=None, end=None, stride: int = 1) -> Iterator[Frame]:
        """Stream frames `start` (inclusive) to `end` (exclusive), every `stride`-th.

        `start`/`end`: a frame number (int, "150") or a time (float seconds, "1.5s", "00:01:02.5").
        Raises DecodeError after the last good frame if the video breaks off.
        """
        selection = select_frames(self.info, start, end, stride)
        return self._frames(selection)

    def _frames(self, selection: FrameSelection) -> Iterator[Frame]:
        times = self.info.frame_times
        seek = self._seek_point(selection)
        if seek is not None:
            run = FFmpegFrames(self.path, seek=seek, first=0, stride=selection.stride, limit=len(selection))
            frames = iter(run)
            first = next(frames, None)
            expected = float(times[selection.start])
            if first is not None and first.seconds is not None and abs(first.seconds - expected) < self._slack():
                head = self._frame(first, selection, None)
                yield head
                yield from self._rest(frames, run, selection, head)
                return
            run.close()  # the seek did not land on the frame asked for: decode from the start
        run = FFmpegFrames(self.path, first=selection.start, stride=selection.stride, limit=len(selection))
        yield from self._rest(iter(run), run, selection)

    def _rest(self, frames, run: FFmpegFrames, selection: FrameSelection,
              last: Frame | None = None) -> Iterator[Frame]:
        try:
            for raw in frames:
                last = self._frame(raw, selection, last)
                yield last
        finally:
            run.close()
        self._check_end(run, selection, last)

    def _frame(self, raw, selection: FrameSelection, previous: Frame | None) -> Frame:
        """Number and time the frame: the next one in the selection, unless its timestamp shows
        that the decoder skipped frames it could not decode (the container's numbering is kept).
        The time is the container's exact timestamp of that frame."""
        index = selection.start if previous is None else previous.index + selection.stride
        times = self.info.frame_times
        seconds = raw.seconds
        if seconds is None:
            return Frame(index=index, time=self._time_of(index), image=raw.image)
        if index >= len(times) or abs(times[index] - seconds) > self._slack():
            nearest = _nearest(times, seconds)
            if abs(times[nearest] - seconds) > self._slack() or (previous is not None and nearest <= previous.index):
                return Frame(index=index, time=seconds, image=raw.image)
            index = nearest
        return Frame(index=index, time=float(times[index]), image=raw.image)

    def _time_of(self, index: int) -> float:
        times = self.info.frame_times
        return float(times[index]) if index < len(times) else index / float(self.info.fps)

    def _seek_point(self, selection: FrameSelection) -> float | None:
        """Where to seek the input so that the first decoded frame is `selection.start`."""
        times = self.info.frame_times
        if selection.start == 0 or times is None or times[selection.start] < SEEK_MIN_SECONDS:
            return None
        target = float(times[selection.start])
        previous = float(times[selection.start - 1])
        return max(0.0, target - 0.25 * (target - previous))

    def _slack(self) -> float:
        return 0.5 / float(self.info.fps)

    def _check_end(self, run: FFmpegFrames, selection: FrameSelection, last: Frame | None) -> None:
        self.problems = list(run.problems)
        if run.stopped_early:
            return
        read = run.frames_out
        wanted = len(selection)
        reached_end = selection.indices()[-1] >= self.info.frame_count - selection.stride
        broken = run.partial_bytes > 0 or run.returncode not in (0, None) or run.truncation is not None
        broken = broken or (reached_end and self.info.truncated)
        if broken or (read < wanted and self._ends_early(last, selection)):
            if last is None:
                at, next_index = f"before frame {selection.start}", selection.start
            else:
                at, next_index = f"after frame {last.index} ({last.time:.3f} s)", last.index + 1
            reason = run.truncation or (run.problems[-1] if run.problems else None) or (
                "incomplete frame data" if run.partial_bytes
                else f"ffmpeg exited with status {run.returncode}" if run.returncode
                else "the file is truncated"
            )
            raise DecodeError(
                f"{self.path}: the video breaks off {at}: {reason}; {read} of {wanted} selected frame(s) were read",
                frame_index=next_index,
                frames_read=read,
            )
        if read < wanted or run.problems:
            message = f"{self.path}: {read} of {wanted} frame(s) decoded"
            if run.problems:
                message += f"; ffmpeg reported: {run.problems[0]}"
            warnings.warn(message, DecodeWarning, stacklevel=2)

    def _ends_early(self, last: Frame | None, selection: FrameSelection) -> bool:
        """Whether decoding stopped well before the last selected frame's time."""
        if last is None:
            return True
        final = self._time_of(selection.indices()[-1])
        return last.time < final - 2 * self._slack()


def _nearest(times: np.ndarray, seconds: float) -> int:
    """Index of the value in sorted `times` closest to `seconds`."""
    right = int(np.searchsorted(times, seconds))
    if right == 0:
        return 0
    if right == len(times):
        return right - 1
    return right if times[right] - seconds < seconds - times[right - 1] else right - 1
