"""What a video file holds: display size, rotation, frame rates, VFR, exact frame count, audio.

One ffmpeg call, no decoding of the whole file:
* the `Input #0` header that ffmpeg prints (container, streams, display matrix, audio codec);
* the `framecrc` muxer over a stream copy of the video: one line per packet with its pts, so
  the frames are *counted* (the container's own numbers can be wrong) and their timestamps known;
* one decoded frame through `showinfo`: the exact stream rate (e.g. 30000/1001) and the size of
  the frames as the reader yields them (after ffmpeg's automatic rotation).
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from fractions import Fraction

import numpy as np

from dvis_cli.errors import InputError
from dvis_cli.io import ffmpeg
from dvis_cli.io.timecode import parse_rate, snap_rate

# The video stream every dvis call reads: the first one that is not cover art.
VIDEO_MAP = "0:V:0"

_NOPTS = -(2**63)
_PKT_CORRUPT = 0x2
_PKT_DISCARD = 0x4


@dataclass(frozen=True)
class VideoInfo:
    """Facts about a source, as the readers will deliver it.

    `width`/`height` are the size of the frames yielded (after rotation), `rotation` the clockwise
    turn (0, 90, 180, 270) a player applies to the coded picture. `fps` is the stream's nominal
    rate (ffmpeg's r_frame_rate), `avg_fps` frames / duration; they differ for variable frame
    rate (`vfr`) video. `frame_count` is counted, not read from the header; `truncated` says the
    file ends before its header says it should. `frame_times` holds
    every frame's presentation time in seconds (None for image sequences at an assumed rate).
    """

    path: str
    kind: str  # "video" or "frames"
    width: int
    height: int
    frame_count: int
    fps: Fraction
    avg_fps: Fraction
    duration: float
    vfr: bool = False
    rotation: int = 0
    coded_width: int = 0
    coded_height: int = 0
    codec: str | None = None
    pix_fmt: str | None = None
    container: str | None = None
    audio_codec: str | None = None
    audio_streams: int = 0
    header_duration: float | None = None
    fps_assumed: bool = False
    truncated: bool = False
    notes: tuple[str, ...] = ()
    frame_times: np.ndarray | None = field(default=None, repr=False, compare=False)

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) of the frames as yielded."""
        return self.width, self.height

    @property
    def has_audio(self) -> bool:
        return self.audio_codec is not None

    def to_dict(self) -> dict:
        """Plain JSON-ready facts (rates as "num/den" strings plus floats; no per-frame times)."""
        return {
            "path": self.path,
            "kind": self.kind,
            "width": self.width,
            "height": self.height,
            "coded_width": self.coded_width,
            "coded_height": self.coded_height,
            "rotation": self.rotation,
            "fps": f"{self.fps.numerator}/{self.fps.denominator}",
            "fps_float": float(self.fps),
            "avg_fps": f"{self.avg_fps.numerator}/{self.avg_fps.denominator}",
            "avg_fps_float": float(self.avg_fps),
            "fps_assumed": self.fps_assumed,
            "vfr": self.vfr,
            "frame_count": self.frame_count,
            "duration": self.duration,
            "header_duration": self.header_duration,
            "codec": self.codec,
            "pix_fmt": self.pix_fmt,
            "container": self.container,
            "audio_codec": self.audio_codec,
            "audio_streams": self.audio_streams,
            "truncated": self.truncated,
            "notes": list(self.notes),
        }


@dataclass
class _Stream:
    index: int
    kind: str
    description: str
    rotation_ccw: float | None = None
    attached_pic: bool = False


@dataclass
class _Header:
    container: str | None = None
    duration: float | None = None
    streams: list[_Stream] = field(default_factory=list)

    def video(self) -> _Stream | None:
        return next((s for s in self.streams if s.kind == "Video" and not s.attached_pic), None)

    def audio(self) -> list[_Stream]:
        return [s for s in self.streams if s.kind == "Audio"]


def probe_video(path: str | os.PathLike) -> VideoInfo:
    """Probe one video file. Raises InputError for a missing, unreadable, empty or non-video file."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise InputError(f"no such file: {path}")
    if os.path.isdir(path):
        raise InputError(f"{path} is a folder, not a video file")
    args = ffmpeg.LOG_OPTIONS + ["-i", path,
            "-map", VIDEO_MAP, "-c", "copy", "-f", "framecrc", "pipe:1",
            "-map", VIDEO_MAP, "-frames:v", "1", "-vf", "showinfo=checksum=0", "-f", "null", "-"]
    result = ffmpeg.run(args)
    header = _parse_header(result.stderr)
    stream = header.video()
    if header.container is None:
        raise InputError(f"{path}: not a video ffmpeg can read ({ffmpeg.main_error(result.stderr, 'unknown format')})")
    if not header.streams:
        raise InputError(f"{path}: empty video: the file holds no streams, so no frames")
    if stream is None:
        kinds = ", ".join(sorted({s.kind.lower() for s in header.streams}))
        raise InputError(f"{path}: no video stream (the file holds only {kinds})")
    packets = _parse_framecrc(result.stdout)
    if packets.count == 0:
        raise InputError(f"{path}: the video stream has no frames ({ffmpeg.main_error(result.stderr, 'empty')})")
    return _build_info(path, header, stream, packets, result.stderr)


def probe_audio_codec(path: str | os.PathLike) -> str | None:
    """Codec of the first audio stream of any media file (None when it has none or is unreadable)."""
    result = ffmpeg.run(ffmpeg.LOG_OPTIONS + ["-i", os.fspath(path)])
    audio = _parse_header(result.stderr).audio()
    return _codec_name(audio[0]) if audio else None


def _codec_name(stream: _Stream) -> str | None:
    words = stream.description.split(",")[0].split()
    return words[0] if words else None


# ---- header -------------------------------------------------------------------------------

_INPUT = re.compile(r"^Input #0, (.+), from '")
_DURATION = re.compile(r"^\s*Duration: (?:(\d+):(\d+):(\d+(?:\.\d+)?)|N/A)")
_STREAM = re.compile(r"^\s*Stream #0:(\d+)[^:]*: (Video|Audio|Subtitle|Data|Attachment): (.*)$")
_DISPLAY_MATRIX = re.compile(r"(?:Display Matrix|displaymatrix): rotation of (-?[\d.]+) degrees", re.I)
_ROTATE_TAG = re.compile(r"^\s*rotate\s*: (-?\d+)")


def _parse_header(stderr: str) -> _Header:
    """Read the `Input #0` block of an ffmpeg log (it ends where output or mapping starts)."""
    header = _Header()
    inside = False
    current: _Stream | None = None
    for raw in stderr.splitlines():
        context, _, message = ffmpeg.split_log_line(raw)
        if context:
            continue
        if not inside:
            match = _INPUT.match(message)
            if match:
                header.container, inside = match.group(1), True
            continue
        if message.startswith(("Stream mapping", "Output #", "Input #")):
            break
        match = _DURATION.match(message)
        if match:
            if match.group(1) is not None:
                h, m, s = match.groups()
                header.duration = int(h) * 3600 + int(m) * 60 + float(s)
            continue
        match = _STREAM.match(message)
        if match:
            current = _Stream(int(match.group(1)), match.group(2), match.group(3))
            current.attached_pic = "(attached pic)" in message
            header.streams.append(current)
            continue
        if current is not None:
            match = _DISPLAY_MATRIX.search(message)
            if match:
                current.rotation_ccw = float(match.group(1))
            match = _ROTATE_TAG.match(message)
            if match and current.rotation_ccw is None:
                current.rotation_ccw = -float(match.group(1))
    return header


def _top_level_fields(description: str) -> list[str]:
    """Split a stream description at commas that are not inside parentheses or brackets."""
    fields, depth, start = [], 0, 0
    for i, char in enumerate(description):
        if char in "([":
            depth += 1
        elif char in ")]":
            depth -= 1
        elif char == "," and depth == 0:
            fields.append(description[start:i].strip())
            start = i + 1
    fields.append(description[start:].strip())
    return fields


def _video_facts(stream: _Stream) -> dict:
    fields = _top_level_fields(stream.description)
    facts: dict = {"codec": fields[0].split()[0] if fields and fields[0] else None}
    if len(fields) > 1:
        pix = fields[1].split("(")[0].strip()
        facts["pix_fmt"] = None if pix in ("", "none") else pix
    for item in fields:
        size = re.match(r"^(\d+)x(\d+)(?:\s|$)", item)
        if size and "coded" not in facts:
            facts["coded"] = (int(size.group(1)), int(size.group(2)))
        rate = re.match(r"^([\d.]+k?) (fps|tbr)$", item)
        if rate:
            facts[rate.group(2)] = parse_rate(rate.group(1))
    return facts


# ---- packets ------------------------------------------------------------------------------


@dataclass
class _Packets:
    time_base: Fraction = Fraction(1, 1)
    pts: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))  # sorted, shown frames
    last_duration: int = 0  # of the frame shown last, in time_base units
    corrupt: int = 0
    discarded: int = 0

    @property
    def count(self) -> int:
        return int(self.pts.size)


def _parse_framecrc(text: str) -> _Packets:
    """Packets of stream 0 from `-f framecrc` output, in presentation order."""
    packets = _Packets()
    pts_list: list[int] = []
    durations: list[int] = []
    for line in text.splitlines():
        if line.startswith("#tb 0:"):
            packets.time_base = Fraction(line.split(":", 1)[1].strip())
            continue
        if not line.startswith("0,"):
            continue
        parts = [p.strip() for p in line.split(",")]
        if len(parts) < 6:
            continue
        dts, pts, duration = int(parts[1]), int(parts[2]), int(parts[3])
        flags = next((int(p[4:], 16) for p in parts[6:] if p.startswith("F=0x")), 0x1)
        if flags & _PKT_DISCARD:
            packets.discarded += 1
            continue
        if flags & _PKT_CORRUPT:
            packets.corrupt += 1
            continue
        pts_list.append(dts if pts == _NOPTS else pts)
        durations.append(duration)
    if pts_list:
        order = np.argsort(np.asarray(pts_list, np.int64), kind="stable")
        packets.pts = np.asarray(pts_list, np.int64)[order]
        packets.last_duration = max(int(durations[int(order[-1])]), 0)
    return packets


# ---- putting it together ------------------------------------------------------------------

_CONFIG = re.compile(r"config in time_base: (\d+)/(\d+), frame_rate: (\d+)/(\d+)")
_FRAME_SIZE = re.compile(r"\bn:\s*0\s.*\bs:(\d+)x(\d+)\b")


def _showinfo_facts(stderr: str) -> tuple[Fraction | None, tuple[int, int] | None]:
    rate = size = None
    for raw in stderr.splitlines():
        context, _, message = ffmpeg.split_log_line(raw)
        if not context.startswith("Parsed_showinfo"):
            continue
        match = _CONFIG.search(message)
        if match and rate is None and int(match.group(3)) > 0 and int(match.group(4)) > 0:
            rate = Fraction(int(match.group(3)), int(match.group(4)))
        match = _FRAME_SIZE.search(message)
        if match and size is None:
            size = (int(match.group(1)), int(match.group(2)))
    return rate, size


def _build_info(path: str, header: _Header, stream: _Stream, packets: _Packets, stderr: str) -> VideoInfo:
    facts = _video_facts(stream)
    tb = packets.time_base
    pts = packets.pts
    times = (pts.astype(np.float64) * tb.numerator) / tb.denominator
    intervals = np.diff(pts)
    rate, display = _showinfo_facts(stderr)
    positive = intervals[intervals > 0]
    typical = int(np.median(positive)) if positive.size else 0
    last = packets.last_duration or typical
    span_ticks = int(pts[-1] - pts[0]) + last
    stream_rate = rate or facts.get("tbr") or facts.get("fps")
    between = int(pts[-1] - pts[0])  # first to last frame, in ticks
    if between > 0:
        avg_fps = Fraction(packets.count - 1) / (between * tb)
    else:  # a single frame
        avg_fps = stream_rate or (1 / (last * tb) if last > 0 else Fraction(30))
    if stream_rate is not None and abs(avg_fps - stream_rate) <= stream_rate / 1000:
        avg_fps = stream_rate  # the difference is timestamp rounding (e.g. milliseconds in mkv)
    avg_fps = snap_rate(avg_fps)
    stream_rate = stream_rate or avg_fps
    duration = float(span_ticks * tb) if span_ticks > 0 else float(packets.count / avg_fps)
    vfr = _is_variable(intervals, tb, stream_rate, avg_fps)

    rotation = round(-(stream.rotation_ccw or 0.0)) % 360
    coded = facts.get("coded") or display or (0, 0)
    if display is None:
        display = (coded[1], coded[0]) if rotation in (90, 270) else coded

    notes = []
    truncated = any(ffmpeg.TRUNCATION.search(line) for line in ffmpeg.error_lines(stderr))
    if header.duration is not None and header.duration > duration + max(0.5, 0.05 * duration):
        # Not proof of damage: an audio track may simply run longer than the video.
        notes.append(f"the header says {header.duration:.3f} s but the video stream ends at {duration:.3f} s")
    if truncated:
        notes.insert(0, "the file is truncated or damaged: reading will stop early")
    if packets.corrupt:
        notes.append(f"{packets.corrupt} corrupt packet(s) not counted")
    if vfr:
        notes.append("variable frame rate: use the per-frame timestamps, not index / fps")
    audio = header.audio()
    return VideoInfo(
        path=path,
        kind="video",
        width=display[0],
        height=display[1],
        frame_count=packets.count,
        fps=stream_rate,
        avg_fps=avg_fps,
        duration=duration,
        vfr=vfr,
        rotation=rotation,
        coded_width=coded[0],
        coded_height=coded[1],
        codec=facts.get("codec"),
        pix_fmt=facts.get("pix_fmt"),
        container=header.container,
        audio_codec=_codec_name(audio[0]) if audio else None,
        audio_streams=len(audio),
        header_duration=header.duration,
        truncated=truncated,
        notes=tuple(notes),
        frame_times=times,
    )


def _is_variable(intervals: np.ndarray, tb: Fraction, stream_rate: Fraction, avg_fps: Fraction) -> bool:
    """True when frames are not evenly spaced at the stream rate (beyond timestamp rounding)."""
    if intervals.size < 2:
        return False
    nominal = 1 / stream_rate / tb  # in ticks
    tolerance = max(1.5, 0.1 * float(nominal))
    if np.any(np.abs(intervals.astype(np.float64) - float(nominal)) > tolerance):
        return True
    return abs(float(avg_fps) - float(stream_rate)) > 0.005 * float(stream_rate)
