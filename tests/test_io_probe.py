"""probe_video: sizes after rotation, exact rates, VFR, counted frames, audio, broken files."""
from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
from test_io_media import VFR_TIMES, media  # noqa: F401  (media is a fixture)

from dvis_cli.errors import InputError
from dvis_cli.io import probe_video
from dvis_cli.io.audio import plan_audio
from dvis_cli.io.probe import probe_audio_codec


def test_constant_rate_with_audio(media):
    info = probe_video(media.plain)
    assert (info.width, info.height) == (64, 48) and info.rotation == 0
    assert info.fps == Fraction(30000, 1001) and info.avg_fps == Fraction(30000, 1001)
    assert not info.vfr and info.frame_count == 60
    assert info.duration == pytest.approx(60 * 1001 / 30000, abs=1e-6)
    assert info.audio_codec == "aac" and info.has_audio
    assert info.codec == "h264" and info.pix_fmt == "yuv420p"
    np.testing.assert_allclose(info.frame_times, np.arange(60) * 1001 / 30000, atol=1e-9)
    assert not info.truncated and info.notes == ()


def test_without_audio(media):
    info = probe_video(media.silent)
    assert info.audio_codec is None and not info.has_audio and info.audio_streams == 0
    assert info.fps == 30 and info.frame_count == 30


@pytest.mark.parametrize("name, rotation", [("rot90", 90), ("rot270", 270), ("silent", 0)])
def test_rotation_and_display_size(media, name, rotation):
    info = probe_video(getattr(media, name))
    assert info.rotation == rotation
    assert (info.coded_width, info.coded_height) == (64, 48)
    assert info.size == ((48, 64) if rotation in (90, 270) else (64, 48))


def test_variable_frame_rate(media):
    info = probe_video(media.vfr)
    assert info.vfr
    assert info.frame_count == 60  # not the 120 a constant-rate decode would make
    assert info.fps == 30  # stream rate
    assert info.avg_fps == Fraction(59, Fraction(39, 10))  # 59 intervals over 3.9 s
    np.testing.assert_allclose(info.frame_times, VFR_TIMES, atol=1e-6)
    assert any("variable frame rate" in note for note in info.notes)


def test_odd_size(media):
    info = probe_video(media.odd)
    assert info.size == (65, 37) and info.fps == 25 and info.frame_count == 10


def test_audio_longer_than_video_is_not_damage(media):
    info = probe_video(media.long_audio)
    assert info.frame_count == 30 and info.header_duration == pytest.approx(3.0, abs=0.05)
    assert not info.truncated and info.audio_codec == "aac"


def test_truncated_file_is_counted_not_believed(media):
    info = probe_video(media.truncated)
    assert info.truncated
    assert info.header_duration == pytest.approx(4.0)
    assert 0 < info.frame_count < 120  # counted from the data present, not the header's 120
    assert info.duration < 3.0
    assert any("truncated" in note for note in info.notes)


@pytest.mark.parametrize(
    "name, message",
    [
        ("not_video", "not a video ffmpeg can read"),
        ("empty", "no frames"),
        ("no_frames", "has no frames"),
        ("audio_only", "no video stream"),
    ],
)
def test_unusable_files_are_input_errors(media, name, message):
    with pytest.raises(InputError, match=message) as caught:
        probe_video(getattr(media, name))
    assert "\n" not in str(caught.value)


def test_missing_path_and_folder(tmp_path):
    with pytest.raises(InputError, match="no such file"):
        probe_video(tmp_path / "nope.mp4")
    with pytest.raises(InputError, match="folder"):
        probe_video(tmp_path)


def test_to_dict_is_json_ready(media):
    import json

    data = json.loads(json.dumps(probe_video(media.plain).to_dict()))
    assert data["fps"] == "30000/1001" and data["frame_count"] == 60 and data["audio_codec"] == "aac"


def test_audio_plans(media):
    assert probe_audio_codec(media.audio_only) == "aac"
    assert plan_audio(media.silent) is None
    assert plan_audio(media.plain).copy
    pcm = plan_audio(media.pcm, start=1.0, end=2.5)
    assert pcm.codec == "pcm_s16le" and not pcm.copy and pcm.duration == pytest.approx(1.5)
