"""The ffmpeg binary that imageio-ffmpeg bundles: where it is, how to run it, what its logs say.

No system ffmpeg and no ffprobe is needed: `ffmpeg -i` prints the container header on stderr,
and the `framecrc` muxer / `showinfo` filter give per-frame timestamps.
"""
from __future__ import annotations

import functools
import os
import re
import subprocess

from dvis_cli.errors import DvisError


class FFmpegMissingError(DvisError):
    """No usable ffmpeg binary (imageio-ffmpeg without its bundled binary, bad IMAGEIO_FFMPEG_EXE)."""


@functools.lru_cache(maxsize=1)
def ffmpeg_exe() -> str:
    """Path of the ffmpeg binary (imageio-ffmpeg's bundled one unless IMAGEIO_FFMPEG_EXE says otherwise)."""
    try:
        import imageio_ffmpeg
    except ImportError as exc:  # pragma: no cover - a declared dependency
        raise FFmpegMissingError("imageio-ffmpeg is not installed: pip install imageio-ffmpeg") from exc
    try:
        exe = imageio_ffmpeg.get_ffmpeg_exe()
    except RuntimeError as exc:  # pragma: no cover - depends on the install
        raise FFmpegMissingError(f"no ffmpeg binary found: {exc}") from exc
    if not os.path.isfile(exe):  # pragma: no cover
        raise FFmpegMissingError(f"the ffmpeg binary {exe} does not exist")
    return exe


def base_command() -> list[str]:
    """ffmpeg with the options every call wants: no banner, no stdin, no progress lines."""
    return [ffmpeg_exe(), "-hide_banner", "-nostdin", "-nostats"]


def run(args: list[str]) -> subprocess.CompletedProcess:
    """Run ffmpeg with `args` after the base options and capture both streams as text."""
    # errors="replace": metadata and file names in logs need not be UTF-8
    return subprocess.run(base_command() + args, capture_output=True, text=True, errors="replace", check=False)


@functools.lru_cache(maxsize=1)
def available_encoders() -> frozenset[str]:
    """Names of the encoders this ffmpeg was built with."""
    out = run(["-encoders"]).stdout
    names = set()
    for line in out.splitlines():
        match = re.match(r"^\s[VAS][.A-Z]{5}\s+(\S+)", line)
        if match:
            names.add(match.group(1))
    return frozenset(names)


def h264_encoder() -> str:
    """The best software H.264 encoder at hand: libx264, else libopenh264."""
    encoders = available_encoders()
    for name in ("libx264", "libopenh264"):
        if name in encoders:
            return name
    raise FFmpegMissingError(f"{ffmpeg_exe()} has no H.264 encoder (libx264 or libopenh264)")


LOG_OPTIONS = ["-loglevel", "level+info"]  # every log line tagged [info], [warning], [error]...

_LOG_LINE = re.compile(r"^((?:\[[^\]]* @ 0x[0-9a-f]+\]\s*)*)(?:\[(trace|debug|verbose|info|warning|error|fatal|panic)\]\s?)?(.*)$")


def split_log_line(raw: str) -> tuple[str, str, str]:
    """(`context`, `level`, `message`) of one line logged with LOG_OPTIONS.

    `context` is the component in brackets (`Parsed_showinfo_0`, `in#0/mov,mp4,...`, `h264`) or "".
    """
    match = _LOG_LINE.match(raw.rstrip("\r\n"))
    assert match is not None  # the pattern matches every string
    prefix, level, message = match.groups()
    context = re.sub(r"\s*@ 0x[0-9a-f]+\]\s*$", "", prefix.strip()).split("] [")[-1].lstrip("[")
    return context, level or "info", message


def error_lines(stderr: str, levels: tuple[str, ...] = ("error", "fatal", "panic")) -> list[str]:
    """The messages of an ffmpeg log (logged with LOG_OPTIONS) at the given levels."""
    found = []
    for raw in stderr.splitlines():
        _, level, message = split_log_line(raw)
        if level in levels and message.strip():
            found.append(message.strip())
    return found


# Log lines that mean the input stops before its end (truncated download, copy cut short).
TRUNCATION = re.compile(
    r"partial file|Packet corrupt|File ended prematurely|stream ends prematurely|truncated|Truncating packet", re.I
)

_GENERIC = re.compile(r"^(Error opening (input|output) files?|Error opening input file|Conversion failed)")


def main_error(stderr: str, default: str = "ffmpeg failed") -> str:
    """The most telling single error line of an ffmpeg log: the first specific one."""
    lines = [line for line in error_lines(stderr) if not _GENERIC.match(line)] or error_lines(stderr)
    return lines[0] if lines else default

