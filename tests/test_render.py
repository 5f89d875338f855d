"""Palette, frame overlays, whole-video renders from a result store, and `dvis render`."""
from __future__ import annotations

import itertools
import subprocess
from pathlib import Path

import cv2
import imageio_ffmpeg
import numpy as np
import pytest
from test_export import TRACKS, build_store

from dvis_cli.cli.app import main
from dvis_cli.errors import InputError
from dvis_cli.io import open_source, probe_video
from dvis_cli.io.ffmpeg import ffmpeg_exe
from dvis_cli.render import Instance, draw_overlay, parse_show, render_video, render_video_report, track_color

pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning")

GRAY = 100
FPS = 8


def _write_video(path: Path, frames: list[np.ndarray], pix_fmt: str = "yuv420p") -> Path:
    height, width = frames[0].shape[:2]
    writer = imageio_ffmpeg.write_frames(str(path), (width, height), fps=FPS, codec="libx264", pix_fmt_out=pix_fmt,
                                         macro_block_size=1, quality=None, output_params=["-crf", "12"],
                                         ffmpeg_log_level="error")
    writer.send(None)
    for frame in frames:
        writer.send(np.ascontiguousarray(frame))
    writer.close()
    return path


@pytest.fixture(scope="module")
def videos(tmp_path_factory) -> dict[str, Path]:
    """gray: 160x120 uniform gray, 12 frames, with a sine audio track; odd: 97x61 gradient, 10 frames, silent."""
    root = tmp_path_factory.mktemp("render_media")
    silent = _write_video(root / "gray_silent.mp4", [np.full((120, 160, 3), GRAY, np.uint8)] * 12)
    gray = root / "gray.mp4"
    subprocess.run([ffmpeg_exe(), "-y", "-hide_banner", "-loglevel", "error", "-i", str(silent), "-f", "lavfi",
                    "-i", f"sine=frequency=440:duration={12 / FPS}", "-map", "0:v", "-map", "1:a", "-c:v", "copy",
                    "-c:a", "aac", "-shortest", str(gray)], check=True, timeout=60)
    ramp = np.linspace(0, 255, 97, dtype=np.uint8)[None, :, None].repeat(61, 0).repeat(3, 2)
    odd = _write_video(root / "odd.mp4", [ramp] * 10, pix_fmt="yuv444p")
    return {"gray": gray, "odd": odd}


# -- palette and overlay -----------------------------------------------------------------------

def test_palette_fixed_bright_and_distinct():
    colors = [track_color(i) for i in range(1, 31)]
    assert colors == [track_color(i) for i in range(1, 31)]  # a function of the id alone
    assert all(max(c) >= 200 and all(0 <= v <= 255 for v in c) for c in colors)
    closest = min(np.linalg.norm(np.subtract(a, b)) for a, b in itertools.combinations(colors[:20], 2))
    assert closest > 30
    assert len(set(colors)) == 30


def test_overlay_blends_masks_and_leaves_the_rest():
    image = np.full((120, 160, 3), GRAY, np.uint8)
    mask = np.zeros((120, 160), bool)
    mask[40:90, 50:110] = True
    out = draw_overlay(image, [Instance(4, mask, "dog", 0.5)], alpha=0.5, show={"mask"})
    expected = np.round(0.5 * GRAY + 0.5 * np.array(track_color(4)))
    assert np.abs(out[mask].astype(int) - expected).max() <= 1
    assert (out[~mask] == GRAY).all() and (image == GRAY).all()  # the input is not changed

    full = draw_overlay(image, [Instance(4, mask, "dog", 0.5)], alpha=0.5)
    changed = (full != out).any(axis=2)
    assert changed[38:40, 50:110].any()  # the label sits above the box
    assert changed[40, 50:110].all()  # box / contour on the top edge
    assert not changed[60:70, 70:90].any()  # the interior is only the fill
    assert (draw_overlay(image, [Instance(4, np.zeros_like(mask))]) == image).all()  # empty masks draw nothing


def test_overlay_small_masks_stay_on_top():
    image = np.zeros((60, 80, 3), np.uint8)
    big = np.zeros((60, 80), bool)
    big[5:55, 5:75] = True
    small = np.zeros_like(big)
    small[20:30, 30:40] = True
    out = draw_overlay(image, [Instance(2, small), Instance(1, big)], alpha=1.0, show={"mask"})
    assert tuple(out[25, 35]) == track_color(2) and tuple(out[10, 10]) == track_color(1)


def test_parse_show():
    assert parse_show("mask, LABEL") == {"mask", "label"}
    assert parse_show("") == frozenset()
    with pytest.raises(InputError, match="--show takes"):
        parse_show("mask,glow")


# -- whole videos ------------------------------------------------------------------------------

def _interior(mask: np.ndarray, others: list[np.ndarray]) -> np.ndarray:
    """Mask pixels well away from its outline and from the other masks."""
    kernel = np.ones((9, 9), np.uint8)
    inner = cv2.erode(mask.astype(np.uint8), kernel).astype(bool)
    for other in others:
        inner &= ~cv2.dilate(other.astype(np.uint8), kernel).astype(bool)
    return inner


def test_render_gray_video_with_audio(videos, tmp_path):
    indices = [i for i in range(12) if i not in (6, 7)]  # frames 6 and 7 have no record
    store, truth = build_store(tmp_path / "gray.results", width=160, height=120, indices=indices, fps=FPS)
    calls = []
    report = render_video_report(store, videos["gray"], tmp_path / "gray.mp4", show={"mask", "contour", "box"},
                                 progress=lambda d, t: calls.append((d, t)))  # labels would cover other masks
    assert (report.frames, report.annotated, report.missing, report.size) == (12, 10, 0, (160, 120))
    assert report.audio == "aac copied" and calls[-1] == (12, 12) and len(calls) == 12

    info = probe_video(report.path)
    assert (info.frame_count, info.width, info.height, info.fps) == (12, 160, 120, FPS)
    assert info.audio_codec == "aac"

    seen: dict[int, list[np.ndarray]] = {}
    for frame in open_source(report.path).frames():
        image = frame.image.astype(int)
        if frame.index not in truth:
            assert np.abs(image - GRAY).max() <= 3  # written as it was
            continue
        masks = truth[frame.index]
        for track_id, mask in masks.items():
            inner = _interior(mask, [m for t, m in masks.items() if t != track_id])
            assert inner.sum() > 20
            color = np.median(image[inner], axis=0)
            expected = 0.5 * GRAY + 0.5 * np.array(track_color(track_id))
            assert np.abs(color - expected).max() <= 12, (frame.index, track_id, color, expected)
            seen.setdefault(track_id, []).append(color)
    assert set(seen) == set(TRACKS)
    for track_id, colors in seen.items():  # the same colour in every frame
        assert np.ptp(np.array(colors), axis=0).max() <= 8, track_id


def test_render_odd_size_is_padded(videos, tmp_path):
    store, _ = build_store(tmp_path / "odd.results", width=97, height=61, indices=range(10), fps=FPS)
    out = render_video(store, videos["odd"], tmp_path / "odd.mp4", alpha=0.4, show={"mask", "contour"})
    info = probe_video(out)
    assert out == tmp_path / "odd.mp4"
    assert (info.frame_count, info.width, info.height, info.audio_codec) == (10, 98, 62, None)


def test_render_covers_the_results_range_unless_full(videos, tmp_path):
    store, _ = build_store(tmp_path / "part.results", width=97, height=61, indices=range(3, 7), fps=FPS)
    part = render_video_report(store, videos["odd"], tmp_path / "part.mp4")
    assert (part.frames, part.annotated) == (4, 4)
    whole = render_video_report(store, videos["odd"], tmp_path / "whole.mp4", full=True)
    assert (whole.frames, whole.annotated) == (10, 4)
    assert probe_video(whole.path).frame_count == 10


def test_render_refuses_mismatched_inputs(videos, tmp_path):
    store, _ = build_store(tmp_path / "s.results", width=64, height=48)
    with pytest.raises(InputError, match="97x61 but the results"):
        render_video(store, videos["odd"], tmp_path / "x.mp4")
    with pytest.raises(InputError, match="alpha"):
        render_video(store, videos["odd"], tmp_path / "x.mp4", alpha=1.5)
    assert not list(tmp_path.glob("*.mp4")) and not list(tmp_path.glob(".*"))


# -- the command -------------------------------------------------------------------------------

def dvis(capsys, *args: str) -> tuple[int, str, str]:
    """Run `dvis ARGS` in this process as the console script does: (exit code, stdout, stderr)."""
    try:
        main([str(a) for a in args])
        code = 0
    except SystemExit as exc:
        code = exc.code or 0
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_cli_render(videos, tmp_path, capsys):
    results = tmp_path / "run" / "clip.results"
    build_store(results, width=97, height=61, fps=FPS, source=str(videos["odd"]))
    code, out, err = dvis(capsys, "render", results, "--alpha", "0.3", "--show", "mask,label")
    assert code == 0, err
    target = tmp_path / "run" / "clip.mp4"  # default: <run>/<stem>.mp4, video from the results
    assert target.is_file() and f"wrote {target}" in out.replace("\n", "") and "10 frames" in out
    assert probe_video(target).frame_count == 10

    code, out, err = dvis(capsys, "render", results, "--video", videos["odd"])
    assert code == 2 and "exists (use --overwrite" in err
    code, out, err = dvis(capsys, "render", results, "--video", videos["odd"], "--out", tmp_path / "o.mp4", "--overwrite")
    assert code == 0 and (tmp_path / "o.mp4").is_file()


@pytest.mark.parametrize("case, message", [
    ("no_results", "no such results folder"),
    ("no_video", "no such file or folder"),
    ("bad_show", "--show takes"),
    ("bad_alpha", "--alpha must be between 0 and 1"),
    ("not_a_store", "not a dvis result store"),
])
def test_cli_render_bad_input(videos, tmp_path, capsys, case, message):
    results = tmp_path / "clip.results"
    build_store(results, width=97, height=61, fps=FPS, source=str(videos["odd"]))
    args = ["render", results, "--video", videos["odd"], "--out", tmp_path / "out.mp4"]
    if case == "no_results":
        args[1] = tmp_path / "missing.results"
    elif case == "no_video":
        args[3] = tmp_path / "missing.mp4"
    elif case == "bad_show":
        args += ["--show", "mask,sparkles"]
    elif case == "bad_alpha":
        args += ["--alpha", "2"]
    elif case == "not_a_store":
        args[1] = tmp_path / "empty"
        args[1].mkdir()
    code, out, err = dvis(capsys, *args)
    assert code == 2
    assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "out.mp4").exists()
