"""`dvis info` as a user runs it."""
from __future__ import annotations

import json
import os
import subprocess
import sys

from test_io_media import media  # noqa: F401  (a fixture)


def dvis(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "dvis_cli", *map(str, args)], capture_output=True, text=True,
                          timeout=120, env={**os.environ, "COLUMNS": "120"})


def field(output: str, name: str) -> str:
    """The value printed beside `name` in an info table."""
    for line in output.splitlines():
        if line.strip().startswith(name + "  "):
            return line.strip()[len(name):].strip()
    raise AssertionError(f"{name!r} not in:\n{output}")


def test_info_tables(media):
    result = dvis("info", media.plain, media.rot90, media.vfr, media.frames)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    tables = out.split("\n\n")
    assert len(tables) == 4
    plain, rotated, vfr, frames = tables
    assert field(plain, "display size") == "64x48"
    assert field(plain, "stream fps") == "29.97 (30000/1001)" == field(plain, "average fps")
    assert field(plain, "variable frame rate") == "no"
    assert field(plain, "frames") == "60 (counted)"
    assert field(plain, "duration") == "2.002 s"
    assert field(plain, "audio") == "aac"
    assert field(rotated, "display size") == "48x64 (coded 64x48)"
    assert field(rotated, "rotation") == "90° clockwise"
    assert field(rotated, "audio") == "none"
    assert field(vfr, "variable frame rate") == "yes"
    assert field(vfr, "stream fps") == "30" and field(vfr, "average fps").startswith("15.128")
    assert field(frames, "kind") == "image sequence" and field(frames, "frames") == "120 files"
    assert field(frames, "stream fps") == "30 (assumed)"


def test_info_json(media):
    result = dvis("info", "--json", media.silent, media.frames / "*.png", "--fps", "12.5")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert [d["kind"] for d in data] == ["video", "frames"]
    assert data[0]["fps"] == "30/1" and data[0]["audio_codec"] is None
    assert data[1]["fps"] == "25/2" and data[1]["frame_count"] == 120


def test_user_errors_are_one_line_and_exit_2(media, tmp_path):
    for path, message in [
        (tmp_path / "missing.mp4", "no such file or folder"),
        (media.not_video, "not a video ffmpeg can read"),
        (media.empty, "no frames"),
        (media.no_frames, "has no frames"),
    ]:
        result = dvis("info", path)
        assert result.returncode == 2, result.stdout
        assert result.stderr.count("\n") == 1 and message in result.stderr, result.stderr
        assert "Traceback" not in result.stderr


def test_one_bad_input_among_good_ones(media):
    result = dvis("info", media.silent, media.not_video)
    assert result.returncode == 2
    assert "silent.mp4" in result.stdout
    assert "not_video.mp4" in result.stderr and "1 of 2 inputs could not be read" in result.stderr


def test_truncated_file_is_reported(media):
    result = dvis("info", media.truncated)
    assert result.returncode == 0
    assert "truncated" in result.stdout and "header says 4.000 s" in result.stdout
