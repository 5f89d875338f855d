"""Streaming frames: orientation, VFR passthrough, timestamps, ranges, seeking, broken files, folders."""
from __future__ import annotations

import warnings

import cv2
import numpy as np
import pytest
from test_io_media import MARKER, VFR_TIMES, media  # noqa: F401  (media is a fixture)

import dvis_cli.io.video_source as video_source
from dvis_cli.errors import InputError
from dvis_cli.io import DecodeError, ImageSequenceSource, VideoFileSource, expand_sources, open_source
from dvis_cli.io.ffmpeg_frames import FFmpegFrames


def red_corner(image: np.ndarray) -> str:
    """Which corner holds the red marker."""
    h, w = image.shape[:2]
    m = MARKER // 2
    corners = {"top-left": image[m, m], "top-right": image[m, w - 1 - m],
               "bottom-left": image[h - 1 - m, m], "bottom-right": image[h - 1 - m, w - 1 - m]}
    red = [name for name, rgb in corners.items() if rgb[0] > 200 and rgb[1] < 60 and rgb[2] < 60]
    assert len(red) == 1, corners
    return red[0]


def test_frames_are_rgb_uint8_with_exact_times(media):
    source = open_source(media.plain)
    assert isinstance(source, VideoFileSource) and len(source) == 60
    frames = list(source.frames())
    assert [f.index for f in frames] == list(range(60))
    np.testing.assert_allclose([f.time for f in frames], np.arange(60) * 1001 / 30000, atol=1e-9)
    image = frames[0].image
    assert image.dtype == np.uint8 and image.shape == (48, 64, 3) and image.flags.c_contiguous
    assert red_corner(image) == "top-left"  # RGB order: red is channel 0


@pytest.mark.parametrize("name, corner, shape", [
    ("silent", "top-left", (48, 64, 3)),
    ("rot90", "top-right", (64, 48, 3)),  # turned clockwise: the top-left corner goes top-right
    ("rot270", "bottom-left", (64, 48, 3)),
])
def test_rotation_is_applied(media, name, corner, shape):
    first = next(iter(open_source(getattr(media, name)).frames()))
    assert first.image.shape == shape
    assert red_corner(first.image) == corner


def test_variable_frame_rate_is_passed_through(media):
    frames = list(open_source(media.vfr).frames())
    assert len(frames) == 60  # not duplicated to 120
    np.testing.assert_allclose([f.time for f in frames], VFR_TIMES, atol=1e-6)
    assert [f.index for f in frames] == list(range(60))


def test_start_end_stride(media):
    source = open_source(media.plain)
    assert [f.index for f in source.frames(start=10, end=20, stride=3)] == [10, 13, 16, 19]
    assert [f.index for f in source.frames(start="1.0s", end="00:00:01.2")] == list(range(30, 36))
    assert [f.index for f in source.frames(start=1.0, stride=10)] == [30, 40, 50]
    assert [f.index for f in source.frames(end="5")] == list(range(5))
    vfr = open_source(media.vfr)
    # 1.0 s is frame 30; after it frames are 0.1 s apart
    assert [round(f.time, 4) for f in vfr.frames(start="1s", end="1.35s")] == [1.0, 1.1, 1.2, 1.3]


@pytest.mark.parametrize("start, end", [(200, None), ("10s", None), (20, 10), (5, 5)])
def test_bad_ranges_are_input_errors(media, start, end):
    with pytest.raises(InputError):
        list(open_source(media.plain).frames(start=start, end=end))


def test_bad_stride(media):
    with pytest.raises(InputError, match="stride"):
        open_source(media.plain).frames(stride=0)


@pytest.fixture
def recorded_runs(monkeypatch):
    """Every FFmpegFrames the video source starts, with seeking allowed from 0 s."""
    runs = []

    class Recording(FFmpegFrames):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            runs.append(self)

    monkeypatch.setattr(video_source, "FFmpegFrames", Recording)
    monkeypatch.setattr(video_source, "SEEK_MIN_SECONDS", 0.0)
    return runs


@pytest.mark.parametrize("name", ["plain", "vfr"])
@pytest.mark.parametrize("start, end, stride", [(31, None, 1), ("1.05s", 50, 4), (45, 46, 1)])
def test_seeking_gives_the_same_frames(media, recorded_runs, name, start, end, stride):
    path = getattr(media, name)
    seeked = [(f.index, f.time, f.image) for f in VideoFileSource(path).frames(start, end, stride)]
    assert len(recorded_runs) == 1 and recorded_runs[0].seek is not None  # sought, no fallback
    video_source.SEEK_MIN_SECONDS = 1e9
    decoded = [(f.index, f.time, f.image) for f in VideoFileSource(path).frames(start, end, stride)]
    assert recorded_runs[-1].seek is None
    assert [(i, t) for i, t, _ in seeked] == [(i, t) for i, t, _ in decoded]
    for (_, _, a), (_, _, b) in zip(seeked, decoded):
        assert np.abs(a.astype(int) - b.astype(int)).max() <= 2


def test_stopping_early_ends_ffmpeg(media, recorded_runs):
    frames = VideoFileSource(media.long).frames()
    next(frames)
    frames.close()
    assert recorded_runs[0].returncode is not None  # the process was ended and reaped


def test_truncated_video_stops_cleanly_and_says_where(media):
    source = open_source(media.truncated)
    got = []
    with pytest.raises(DecodeError) as caught:
        for frame in source.frames():
            got.append(frame)
    error = caught.value
    assert got and error.frames_read == len(got)
    assert error.frame_index == got[-1].index + 1
    assert f"after frame {got[-1].index}" in str(error) and "\n" not in str(error)
    # a range that ends before the break reads without error
    assert len(list(source.frames(end=10))) == 10


def test_zero_frame_and_not_video_are_input_errors(media):
    for path in (media.empty, media.no_frames, media.not_video):
        with pytest.raises(InputError):
            open_source(path)


# ---- folders and globs ----------------------------------------------------------------------


def test_folder_natural_order(media):
    source = open_source(media.frames)
    assert isinstance(source, ImageSequenceSource)
    assert source.info.frame_count == 120 and source.info.fps == 30 and source.info.fps_assumed
    frames = list(source.frames())
    assert [f.name for f in frames[:3]] == ["1.png", "2.png", "3.png"]
    assert [int(f.image[0, 0, 0]) for f in frames] == list(range(1, 121))  # 2.png before 10.png
    assert frames[0].image.shape == (24, 32, 3) and frames[0].image.dtype == np.uint8
    assert frames[30].time == pytest.approx(1.0)


def test_glob_and_ranges(media):
    source = open_source(str(media.frames / "*.png"), fps="10")
    assert source.info.fps == 10 and not source.info.fps_assumed
    picked = list(source.frames(start="1s", end=40, stride=10))
    assert [f.index for f in picked] == [10, 20, 30] and [f.name for f in picked] == ["11.png", "21.png", "31.png"]
    assert open_source(str(media.frames / "1?.png")).info.frame_count == 10


def test_folder_extensions_and_hidden_files(tmp_path):
    image = np.zeros((8, 8, 3), np.uint8)
    for name in ("b.jpeg", "a.JPG", "c.png", ".hidden.png", "notes.txt"):
        cv2.imwrite(str(tmp_path / name), image) if not name.endswith(".txt") else (tmp_path / name).write_text("x")
    assert [f.name for f in open_source(tmp_path).frames()] == ["a.JPG", "b.jpeg", "c.png"]


def test_folder_with_a_bad_frame(tmp_path):
    for i in range(5):
        cv2.imwrite(str(tmp_path / f"{i}.png"), np.zeros((8, 8, 3), np.uint8))
    cv2.imwrite(str(tmp_path / "3.png"), np.zeros((9, 8, 3), np.uint8))
    (tmp_path / "4.png").write_bytes(b"broken")
    got = []
    with pytest.raises(DecodeError, match=r"frame 3 \(3.png\) is 8x9") as caught:
        got.extend(open_source(tmp_path).frames())
    assert len(got) == 3 and caught.value.frames_read == 3
    with pytest.raises(DecodeError, match="cannot be read"):
        list(open_source(tmp_path).frames(start=4))


def test_unusable_specs(tmp_path, media):
    with pytest.raises(InputError, match="no such file"):
        open_source(tmp_path / "missing.mp4")
    with pytest.raises(InputError, match="no jpg/jpeg/png frames"):
        open_source(tmp_path)
    with pytest.raises(InputError, match="no files match"):
        open_source(str(tmp_path / "*.png"))
    with pytest.raises(InputError, match="not frames"):
        open_source(str(media.root / "*.mp4"))


def test_single_image_and_expand(media):
    single = open_source(media.frames / "7.png")
    assert len(single) == 1 and int(next(iter(single.frames())).image[0, 0, 0]) == 7
    videos = expand_sources([str(media.root / "rot*.mp4"), str(media.frames / "*.png"), str(media.plain)])
    assert [v.rsplit("/", 1)[-1] for v in videos] == ["rot90.mp4", "rot270.mp4", "*.png", "plain.mp4"]


def test_decoder_errors_that_do_not_stop_are_warnings(media, tmp_path):
    data = bytearray(media.long.read_bytes())
    middle = len(data) // 2
    data[middle:middle + 2000] = bytes(2000)  # damage some frames; the file goes on
    damaged = tmp_path / "damaged.mp4"
    damaged.write_bytes(bytes(data))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        frames = list(open_source(damaged).frames())
    assert frames and frames[-1].index == 119  # read to the end, numbering kept
    assert [f.index for f in frames] == sorted({f.index for f in frames})
    assert any(issubclass(w.category, video_source.DecodeWarning) for w in caught)
