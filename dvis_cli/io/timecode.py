"""Frame rates as exact fractions, and start/end positions given as a time or a frame number."""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from fractions import Fraction

from dvis_cli.errors import InputError

# NTSC rates are n*1000/1001; a float like 29.97 or 23.976 means one of them.
_NTSC_BASES = (24, 30, 48, 60, 120, 240)


def as_fraction(fps: Fraction | float | int | str) -> Fraction:
    """An exact frame rate from a Fraction, a number or text ("30000/1001", "29.97", "25").

    Floats close to an NTSC rate (29.97, 23.976, 59.94, ...) become n*1000/1001 exactly.
    """
    if isinstance(fps, Fraction):
        value = fps
    elif isinstance(fps, int):
        value = Fraction(fps)
    else:
        text = str(fps).strip()
        try:
            value = Fraction(text) if isinstance(fps, str) else Fraction(float(fps))
        except (ValueError, ZeroDivisionError) as exc:
            raise InputError(f"not a frame rate: {fps!r}") from exc
        value = snap_rate(value)
    if value <= 0:
        raise InputError(f"a frame rate must be positive, not {fps!r}")
    return value


def snap_rate(value: Fraction) -> Fraction:
    """Replace a rounded rate by the exact one it stands for (29.97 -> 30000/1001, 25.0 -> 25)."""
    if value.denominator == 1 or value.denominator == 1001:
        return value
    for base in _NTSC_BASES:
        ntsc = Fraction(base * 1000, 1001)
        if abs(float(value) - float(ntsc)) < 0.006:
            return ntsc
    nearest = round(value)
    if nearest and abs(value - nearest) < Fraction(1, 1000):
        return Fraction(nearest)
    return value.limit_denominator(1001)


def parse_rate(text: str) -> Fraction | None:
    """A rate as ffmpeg prints it in a header ("29.97", "30", "1k", "90k"), snapped; None if absent."""
    match = re.fullmatch(r"([\d.]+)(k?)", text.strip())
    if not match:
        return None
    value = Fraction(match.group(1)) * (1000 if match.group(2) else 1)
    return snap_rate(value) if value > 0 else None


@dataclass(frozen=True)
class Position:
    """A point in a video: a frame number or a time in seconds (exactly one is set)."""

    frame: int | None = None
    seconds: float | None = None

    def __str__(self) -> str:
        return f"frame {self.frame}" if self.frame is not None else f"{self.seconds:g} s"


_CLOCK = re.compile(r"^(?:(\d+):)?(\d+):(\d+(?:\.\d*)?)$")


def parse_position(value: Position | int | float | str | None) -> Position | None:
    """Read a start/end position.

    int or "150" or "150f": frame number. float, "1.5s", "1.5" (with a decimal point),
    "00:00:01.5" or "1:30": time. None stays None.
    """
    if value is None or isinstance(value, Position):
        return value
    if isinstance(value, bool):
        raise InputError(f"not a frame number or time: {value!r}")
    if isinstance(value, int):
        return _frame(value, value)
    if isinstance(value, float):
        return _seconds(value, value)
    text = str(value).strip().lower()
    if re.fullmatch(r"\d+f?", text):
        return _frame(int(text.rstrip("f")), value)
    match = re.fullmatch(r"(\d+(?:\.\d*)?|\.\d+)\s*(s|sec|ms)?", text)
    if match and (match.group(2) or "." in match.group(1)):
        number = float(match.group(1))
        return _seconds(number / 1000 if match.group(2) == "ms" else number, value)
    match = _CLOCK.match(text)
    if match:
        hours, minutes, seconds = match.groups()
        if float(seconds) >= 60 or (hours is not None and int(minutes) >= 60):
            raise InputError(f"not a valid time: {value!r}")
        return _seconds(int(hours or 0) * 3600 + int(minutes) * 60 + float(seconds), value)
    raise InputError(
        f"not a frame number or time: {value!r} (use 150 for a frame, 1.5s, 1:30 or 00:01:30.5 for a time)"
    )


def _frame(number: int, original: object) -> Position:
    if number < 0:
        raise InputError(f"a frame number cannot be negative: {original!r}")
    return Position(frame=number)


def _seconds(seconds: float, original: object) -> Position:
    if not math.isfinite(seconds) or seconds < 0:
        raise InputError(f"a time cannot be negative or infinite: {original!r}")
    return Position(seconds=seconds)


def format_duration(seconds: float | None) -> str:
    """"1:02:03.500" style (or "12.345 s" under a minute)."""
    if seconds is None or not math.isfinite(seconds):
        return "?"
    if seconds < 60:
        return f"{seconds:.3f} s"
    whole = int(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    frac = f"{seconds - whole:.3f}"[1:]
    return f"{hours}:{minutes:02d}:{secs:02d}{frac}" if hours else f"{minutes}:{secs:02d}{frac}"


def format_rate(rate: Fraction | None) -> str:
    """"29.97 (30000/1001)", "25" or "?"."""
    if rate is None:
        return "?"
    if rate.denominator == 1:
        return str(rate.numerator)
    return f"{float(rate):.3f}".rstrip("0").rstrip(".") + f" ({rate.numerator}/{rate.denominator})"
