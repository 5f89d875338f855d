"""VideoWriter: browser-safe H.264 mp4, exact rate, padding, audio passthrough, atomic writes."""
from __future__ import annotations

import os
from fractions import Fraction

import numpy as np
import pytest
from test_io_media import media  # noqa: F401  (a fixture)

from dvis_cli.errors import InputError
from dvis_cli.io import VideoWriteError, VideoWriter, open_source, probe_video


def patches(width: int, height: int) -> np.ndarray:
    """Four vertical colour bands: red, green, blue, grey."""
    image = np.zeros((height, width, 3), np.uint8)
    quarter = width // 4
    image[:, :quarter] = (255, 0, 0)
    image[:, quarter:2 * quarter] = (0, 255, 0)
    image[:, 2 * quarter:3 * quarter] = (0, 0, 255)
    image[:, 3 * quarter:] = (128, 128, 128)
    return image


def write(path, frames: int, size=(64, 48), fps=25, **kwargs) -> VideoWriter:
    with VideoWriter(path, fps, size, **kwargs) as writer:
        for _ in range(frames):
            writer.write(patches(*size))
    return writer


def test_h264_yuv420p_exact_rate_faststart(tmp_path):
    out = tmp_path / "clip.mp4"
    writer = write(out, 30, fps=Fraction(30000, 1001))
    info = probe_video(out)
    assert info.codec == "h264" and info.pix_fmt == "yuv420p"
    assert info.fps == Fraction(30000, 1001) and info.avg_fps == Fraction(30000, 1001)
    assert info.frame_count == 30 == writer.frames_written
    assert info.audio_codec is None and writer.audio is None
    data = out.read_bytes()
    assert data.index(b"moov") < data.index(b"mdat")  # +faststart: playable while downloading


@pytest.mark.parametrize("fps, expected", [(29.97, Fraction(30000, 1001)), ("24000/1001", Fraction(24000, 1001)),
                                           (12.5, Fraction(25, 2)), (60, Fraction(60)),
                                           (Fraction(240000, 1001), Fraction(240000, 1001)), (0.5, Fraction(1, 2))])
def test_rates_are_kept_exactly(tmp_path, fps, expected):
    out = tmp_path / "rate.mp4"
    write(out, 5, fps=fps)
    assert probe_video(out).fps == expected


def test_odd_size_is_padded_not_rescaled(tmp_path):
    out = tmp_path / "odd.mp4"
    writer = write(out, 3, size=(65, 37))
    assert writer.output_size == (66, 38)
    frame = next(iter(open_source(out).frames())).image
    assert frame.shape == (38, 66, 3)
    source = patches(65, 37)
    # the picture keeps its pixels where they were (away from band edges and the padding)
    for x in (8, 24, 40, 56):
        assert np.abs(frame[18, x].astype(int) - source[18, x].astype(int)).max() <= 4
    # black padding row and column (a little colour bleeds in from the 2x2 chroma blocks)
    assert frame[37, 30].mean() < 20 and frame[20, 65].mean() < 20


def test_round_trip_of_an_odd_source(media, tmp_path):
    source = open_source(media.odd)
    out = tmp_path / "odd_copy.mp4"
    with VideoWriter(out, source.info.fps, source.info.size) as writer:
        for frame in source.frames():
            writer.write(frame.image)
    info = probe_video(out)
    assert info.size == (66, 38) and info.frame_count == 10 and info.fps == 25
    first = next(iter(open_source(out).frames())).image
    assert first[4, 4, 0] > 200 and first[4, 4, 1] < 60  # the red marker stays top-left


def test_audio_is_copied(media, tmp_path):
    out = tmp_path / "with_audio.mp4"
    writer = write(out, 50, fps=Fraction(30000, 1001), audio_from=media.plain)
    info = probe_video(out)
    assert writer.audio == "aac copied" and info.audio_codec == "aac"
    assert info.frame_count == 50 and info.fps == Fraction(30000, 1001)  # the audio pass keeps the rate
    assert info.header_duration == pytest.approx(50 * 1001 / 30000, abs=0.05)  # audio cut to the video


def test_audio_range(media, tmp_path):
    out = tmp_path / "middle.mp4"
    write(out, 25, audio_from=media.long_audio, audio_start=1.0, audio_end=2.0)
    assert probe_video(out).header_duration == pytest.approx(1.0, abs=0.05)


def test_audio_that_mp4_cannot_carry_is_reencoded(media, tmp_path):
    out = tmp_path / "from_pcm.mp4"
    writer = write(out, 25, audio_from=media.pcm)
    assert writer.audio == "pcm_s16le re-encoded to aac" and probe_video(out).audio_codec == "aac"


def test_source_without_audio_is_fine(media, tmp_path):
    out = tmp_path / "silent.mp4"
    writer = write(out, 5, audio_from=media.silent)
    assert writer.audio is None and probe_video(out).audio_codec is None


def test_missing_audio_source(tmp_path):
    with pytest.raises(InputError, match="audio"):
        VideoWriter(tmp_path / "x.mp4", 25, (64, 48), audio_from=tmp_path / "nope.mp4")


def leftovers(folder) -> list[str]:
    return sorted(os.listdir(folder))


def test_error_in_the_with_block_leaves_nothing(tmp_path):
    out = tmp_path / "clip.mp4"
    out.write_bytes(b"previous render")
    with pytest.raises(RuntimeError):
        with VideoWriter(out, 25, (64, 48)) as writer:
            writer.write(patches(64, 48))
            raise RuntimeError("model crashed")
    assert leftovers(tmp_path) == ["clip.mp4"] and out.read_bytes() == b"previous render"


def test_encoder_failure_is_a_clear_error_and_leaves_nothing(tmp_path):
    with pytest.raises(VideoWriteError, match="preset") as caught:
        write(tmp_path / "clip.mp4", 100, preset="no-such-preset")
    assert "\n" not in str(caught.value)
    assert leftovers(tmp_path) == []


def test_no_frames_no_file(tmp_path):
    with pytest.raises(VideoWriteError, match="no frames"):
        write(tmp_path / "clip.mp4", 0)
    assert leftovers(tmp_path) == []


def test_file_appears_only_when_done(tmp_path):
    out = tmp_path / "sub" / "clip.mp4"
    with VideoWriter(out, 25, (64, 48)) as writer:
        writer.write(patches(64, 48))
        assert not out.exists()  # frames go to a hidden temporary file beside it
        assert all(name.startswith(".clip.mp4.") for name in leftovers(out.parent))
    assert leftovers(out.parent) == ["clip.mp4"]


def test_wrong_frames_are_refused(tmp_path):
    with VideoWriter(tmp_path / "clip.mp4", 25, (64, 48)) as writer:
        with pytest.raises(ValueError, match="shape"):
            writer.write(np.zeros((64, 48, 3), np.uint8))
        with pytest.raises(ValueError, match="uint8"):
            writer.write(np.zeros((48, 64, 3), np.float32))
        writer.write(patches(64, 48))
    assert probe_video(tmp_path / "clip.mp4").frame_count == 1
