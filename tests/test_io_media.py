"""Test media made with the bundled ffmpeg (shared by the tests/test_io_*.py modules), and checks
that the media are what the other tests assume."""
from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pytest

from dvis_cli.io.ffmpeg import ffmpeg_exe

RED = (255, 0, 0)
MARKER = 16  # side of the red square drawn in the top-left corner of the coded picture
# 30 frames at 30 fps, then every third frame of the next 90 (10 fps): 60 frames over 4 s.
VFR_TIMES = [n / 30 for n in range(30)] + [n / 30 for n in range(30, 120, 3)]


def ffmpeg(*args: str) -> None:
    subprocess.run([ffmpeg_exe(), "-y", "-hide_banner", "-loglevel", "error", *args], check=True, timeout=60)


@dataclass
class Media:
    root: Path

    def __getattr__(self, name: str) -> Path:  # media.plain -> root / "plain.mp4" etc.
        return self.root / _FILES[name]


_FILES = {
    "plain": "plain.mp4",  # 64x48, 30000/1001 fps, 60 frames, AAC audio, red marker top-left
    "silent": "silent.mp4",  # 64x48, 30 fps, 30 frames, no audio, red marker top-left
    "rot90": "rot90.mp4",  # silent.mp4 with a display matrix: play turned 90 degrees clockwise
    "rot270": "rot270.mp4",  # ... turned 90 degrees counter-clockwise
    "vfr": "vfr.mp4",  # VFR_TIMES
    "odd": "odd.mp4",  # 65x37 (yuv444p so that odd sizes encode)
    "long_audio": "long_audio.mp4",  # silent.mp4 (1 s) plus 3 s of AAC audio
    "pcm": "pcm.mkv",  # 64x48, 25 fps, 3 s, pcm_s16le audio (cannot be copied into mp4 for browsers)
    "long": "long.mp4",  # 160x120, 30 fps, 120 frames, moov first (faststart)
    "truncated": "truncated.mp4",  # long.mp4 cut in the middle
    "no_frames": "no_frames.mp4",  # long.mp4's header only: a video stream without frames
    "empty": "empty.mp4",  # an mp4 written with zero frames (ffmpeg leaves out the empty track)
    "not_video": "not_video.mp4",  # text
    "audio_only": "audio_only.m4a",
    "frames": "frames",  # 1.png ... 120.png, 32x24, pixel value = file number
}


def _marker_source(size: str, rate: str) -> list[str]:
    return ["-f", "lavfi", "-i",
            f"color=c=black:size={size}:rate={rate},drawbox=x=0:y=0:w={MARKER}:h={MARKER}:color=red:t=fill"]


def make_media(root: Path) -> Media:
    media = Media(root)
    h264 = ["-c:v", "libx264", "-pix_fmt", "yuv420p"]
    ffmpeg(*_marker_source("64x48", "30000/1001"), "-f", "lavfi", "-i", "sine=frequency=440:duration=3",
           "-frames:v", "60", *h264, "-c:a", "aac", str(media.plain))
    ffmpeg(*_marker_source("64x48", "30"), "-frames:v", "30", *h264, str(media.silent))
    ffmpeg("-i", str(media.silent), "-f", "lavfi", "-i", "sine=duration=3", "-c:v", "copy", "-c:a", "aac",
           str(media.long_audio))
    ffmpeg("-display_rotation", "-90", "-i", str(media.silent), "-c", "copy", str(media.rot90))
    ffmpeg("-display_rotation", "90", "-i", str(media.silent), "-c", "copy", str(media.rot270))
    ffmpeg("-f", "lavfi", "-i", "testsrc2=size=64x48:rate=30:duration=4", "-vf", r"select=lt(n\,30)+not(mod(n\,3))",
           "-fps_mode", "passthrough", *h264, str(media.vfr))
    ffmpeg(*_marker_source("65x37", "25"), "-frames:v", "10", "-c:v", "libx264", "-pix_fmt", "yuv444p", str(media.odd))
    ffmpeg("-f", "lavfi", "-i", "testsrc2=size=64x48:rate=25:duration=3", "-f", "lavfi", "-i", "sine=duration=3",
           *h264, "-c:a", "pcm_s16le", str(media.pcm))
    ffmpeg("-f", "lavfi", "-i", "testsrc2=size=160x120:rate=30", "-frames:v", "120", *h264,
           "-movflags", "+faststart", str(media.long))
    data = media.long.read_bytes()
    media.truncated.write_bytes(data[: len(data) // 2])
    media.no_frames.write_bytes(data[: data.index(b"mdat") + 4])
    ffmpeg("-f", "lavfi", "-i", "color=size=64x48:rate=30", "-frames:v", "0", *h264, str(media.empty))
    media.not_video.write_text("this is not a video\n")
    ffmpeg("-f", "lavfi", "-i", "sine=duration=1", str(media.audio_only))
    media.frames.mkdir()
    for number in range(1, 121):
        cv2.imwrite(str(media.frames / f"{number}.png"), np.full((24, 32, 3), number, np.uint8))
    return media


@pytest.fixture(scope="session")
def media(tmp_path_factory) -> Media:
    return make_media(tmp_path_factory.mktemp("io_media"))


def test_media_files_exist(media):
    for name in _FILES:
        assert getattr(media, name).exists(), name
    assert len(list(media.frames.iterdir())) == 120
    assert media.empty.stat().st_size < 1000  # no frames in it
