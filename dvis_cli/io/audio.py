"""Putting a source's audio track into a rendered mp4: copied when browsers play it, else AAC."""
from __future__ import annotations

import os
from dataclasses import dataclass

from dvis_cli.io import ffmpeg
from dvis_cli.io.probe import probe_audio_codec

# Codecs that mp4 holds and every major browser plays: copied bit for bit.
COPYABLE_AUDIO = frozenset({"aac", "mp3"})
AAC_BITRATE = "192k"


@dataclass(frozen=True)
class AudioPlan:
    """How the audio of `source` goes into the output, from `start` seconds for `duration`."""

    source: str
    codec: str  # the source's audio codec
    copy: bool
    start: float = 0.0
    duration: float | None = None

    def input_args(self) -> list[str]:
        args = []
        if self.start > 0:
            args += ["-ss", f"{self.start:.6f}"]
        if self.duration is not None:
            args += ["-t", f"{self.duration:.6f}"]
        return args + ["-i", self.source]

    def codec_args(self) -> list[str]:
        if self.copy:
            return ["-c:a", "copy"]
        return ["-c:a", "aac", "-b:a", AAC_BITRATE]

    def describe(self) -> str:
        return f"{self.codec} copied" if self.copy else f"{self.codec} re-encoded to aac"


def plan_audio(source: str | os.PathLike, start: float = 0.0, end: float | None = None) -> AudioPlan | None:
    """The audio plan for `source`, or None when it has no audio track."""
    path = os.fspath(source)
    codec = probe_audio_codec(path)
    if codec is None:
        return None
    duration = None if end is None else max(0.0, end - start)
    return AudioPlan(path, codec, codec in COPYABLE_AUDIO, max(0.0, start), duration)


def mux_audio(video: str, plan: AudioPlan, output: str, duration: float) -> AudioPlan:
    """Write `output` (mp4): the video stream of `video` copied, plus the planned audio, cut to
    `duration` seconds. Falls back to AAC when copying fails; returns the plan that worked.
    Raises RuntimeError with ffmpeg's reason when none does."""
    attempts = [plan] if not plan.copy else [plan, AudioPlan(plan.source, plan.codec, False, plan.start, plan.duration)]
    reason = ""
    for attempt in attempts:
        args = ffmpeg.LOG_OPTIONS + ["-y", "-i", video] + attempt.input_args() + [
            "-map", "0:v:0", "-map", "1:a:0", "-c:v", "copy", *attempt.codec_args(),
            "-t", f"{duration:.6f}", "-movflags", "+faststart", "-f", "mp4", output,
        ]
        result = ffmpeg.run(args)
        if result.returncode == 0:
            return attempt
        reason = ffmpeg.main_error(result.stderr)
    raise RuntimeError(reason)
