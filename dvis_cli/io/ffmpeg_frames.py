"""One ffmpeg process that decodes a video to raw RGB frames on a pipe, with exact timestamps.

Decoding runs with `-fps_mode passthrough`, so variable frame rate video comes out frame for
frame (ffmpeg's default would duplicate frames to a constant rate). The `showinfo` filter logs
each frame's pts on stderr before the frame reaches stdout; a thread reads that log, so every
frame read from the pipe is paired with its own timestamp. Memory stays bounded: one frame is
read at a time and the log thread keeps only the timestamps not yet claimed.
"""
from __future__ import annotations

import queue
import re
import subprocess
import threading
from dataclasses import dataclass
from fractions import Fraction
from typing import Iterator

import numpy as np

from dvis_cli.io import ffmpeg
from dvis_cli.io.probe import VIDEO_MAP

_FRAME_LINE = re.compile(r"\bn:\s*(\d+)\s+pts:\s*(-?\d+|NOPTS)\b")
_CONFIG = re.compile(r"config in time_base: (\d+)/(\d+)")
_RAW_STREAM = re.compile(r"Stream #0:0.*: Video: rawvideo.*?[ ,](\d+)x(\d+)[ ,\[]")
_EOF = object()


@dataclass(frozen=True)
class RawFrame:
    """A decoded frame as ffmpeg delivered it: `ordinal` counts output frames from 0."""

    ordinal: int
    decoded: int  # showinfo's n: frames decoded before this one since the start (or the seek)
    seconds: float | None  # pts in seconds (plus the seek offset); None when the frame had no pts
    image: np.ndarray


class FFmpegFrames:
    """Decode `path` from `seek` seconds (input seeking) and yield every `stride`-th frame from
    the `first`-th decoded one, at most `limit` frames."""

    def __init__(self, path: str, *, seek: float | None = None, first: int = 0, stride: int = 1,
                 limit: int | None = None) -> None:
        self.path = path
        self.seek = seek
        self.first = first
        self.stride = stride
        self.limit = limit
        self.returncode: int | None = None
        self.stopped_early = False  # we ended ffmpeg before it finished on its own
        self.partial_bytes = 0
        self.problems: list[str] = []  # error lines (bounded)
        self.truncation: str | None = None  # the log line saying the input ends too early
        self.frames_out = 0
        self._events: queue.Queue = queue.Queue()
        self._size: tuple[int, int] | None = None
        self._size_known = threading.Event()
        self._time_base: Fraction | None = None
        self._proc: subprocess.Popen | None = None
        self._thread: threading.Thread | None = None

    def command(self) -> list[str]:
        chain = "showinfo=checksum=0"
        if self.first > 0 or self.stride > 1:
            chain += f",select='gte(n,{self.first})*not(mod(n-{self.first},{self.stride}))'"
        args = list(ffmpeg.LOG_OPTIONS)
        if self.seek is not None:
            args += ["-ss", f"{self.seek:.6f}"]
        args += ["-i", self.path, "-map", VIDEO_MAP, "-vf", chain, "-fps_mode", "passthrough"]
        if self.limit is not None:
            args += ["-frames:v", str(self.limit)]
        args += ["-f", "rawvideo", "-pix_fmt", "rgb24", "pipe:1"]
        return ffmpeg.base_command() + args

    def __iter__(self) -> Iterator[RawFrame]:
        self._proc = subprocess.Popen(self.command(), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE)
        self._thread = threading.Thread(target=self._read_log, name="dvis-ffmpeg-log", daemon=True)
        self._thread.start()
        try:
            yield from self._read_frames()
        finally:
            self.close()

    def close(self) -> None:
        """End ffmpeg (if it still runs) and the log thread; safe to call twice."""
        proc = self._proc
        if proc is None:
            return
        if proc.poll() is None:
            self.stopped_early = True
            proc.kill()
        try:
            proc.stdout.close()
        finally:
            self.returncode = proc.wait()
            if self._thread is not None:
                self._thread.join(timeout=10)
            proc.stderr.close()
            self._proc = None

    # -- stdout: the frames ---------------------------------------------------------------

    def _read_frames(self) -> Iterator[RawFrame]:
        proc = self._proc
        assert proc is not None and proc.stdout is not None
        while not self._size_known.wait(0.05):
            if proc.poll() is not None and not self._thread.is_alive():
                break
        if self._size is None:  # ffmpeg ended before producing a frame
            proc.wait()
            return
        width, height = self._size
        ordinal = 0
        while self.limit is None or ordinal < self.limit:
            image = np.empty((height, width, 3), np.uint8)
            got = _read_exactly(proc.stdout, memoryview(image).cast("B"))
            if got < image.nbytes:
                self.partial_bytes = got
                break
            decoded, seconds = self._next_timestamp()
            ordinal += 1
            self.frames_out = ordinal
            yield RawFrame(ordinal - 1, decoded, seconds, image)
        proc.wait()

    def _next_timestamp(self) -> tuple[int, float | None]:
        while True:
            try:
                event = self._events.get(timeout=30)
            except queue.Empty:  # pragma: no cover - ffmpeg logs each frame before writing it
                return -1, None
            if event is _EOF:
                self._events.put(_EOF)
                return -1, None
            decoded, pts = event
            if decoded >= self.first and (decoded - self.first) % self.stride == 0:
                return decoded, self._seconds(pts)

    def _seconds(self, pts: int | None) -> float | None:
        if pts is None or self._time_base is None:
            return None
        value = float(pts * self._time_base)
        return value + self.seek if self.seek is not None else value

    # -- stderr: the log ------------------------------------------------------------------

    def _read_log(self) -> None:
        proc = self._proc
        assert proc is not None and proc.stderr is not None
        try:
            for raw in proc.stderr:
                self._handle_log_line(raw.decode("utf-8", "replace"))
        except (OSError, ValueError):  # pragma: no cover - pipe closed under us
            pass
        finally:
            self._events.put(_EOF)
            self._size_known.set()

    def _handle_log_line(self, line: str) -> None:
        context, level, message = ffmpeg.split_log_line(line)
        if context.startswith("Parsed_showinfo"):
            match = _FRAME_LINE.search(message)
            if match:
                pts = None if match.group(2) == "NOPTS" else int(match.group(2))
                self._events.put((int(match.group(1)), pts))
                return
            match = _CONFIG.search(message)
            if match and self._time_base is None:
                self._time_base = Fraction(int(match.group(1)), int(match.group(2)))
            return
        if not context and self._size is None:
            match = _RAW_STREAM.search(message)
            if match:
                self._size = (int(match.group(1)), int(match.group(2)))
                self._size_known.set()
                return
        if level in ("error", "fatal", "panic"):
            if len(self.problems) < 50:
                self.problems.append(message.strip())
            if self.truncation is None and ffmpeg.TRUNCATION.search(message):
                self.truncation = message.strip()


def _read_exactly(stream, view: memoryview) -> int:
    """Fill `view` from a raw pipe; returns the bytes read (less than asked only at end of stream)."""
    total = 0
    while total < len(view):
        got = stream.readinto(view[total:])
        if not got:
            break
        total += got
    return total
