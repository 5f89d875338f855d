"""The synthetic data generator: determinism, YouTube-VIS layout, occlusion labels, CLI."""
from __future__ import annotations

import json
import subprocess
from pathlib import Path

import cv2
import numpy as np
import pytest
from pycocotools import mask as mask_utils
from typer.testing import CliRunner

from dvis_cli.cli.app import app, main
from dvis_cli.data.synth import (
    OCCLUSION_NAMES,
    SynthConfig,
    generate_video,
    occlusion_label,
    write_dataset,
    write_example_clip,
)
from dvis_cli.errors import InputError

# pycocotools' decode warns under numpy 2 (its own code, harmless)
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

SMALL = SynthConfig(videos=3, frames=12, height=64, width=96, seed=5, occlusion="heavy")


def _present_runs(present: np.ndarray) -> int:
    """Number of separate stretches of True."""
    return int(present[0]) + int(np.sum(present[1:] & ~present[:-1]))


@pytest.fixture(scope="module")
def heavy_videos():
    cfg = SynthConfig(videos=8, frames=20, height=96, width=160, seed=11, occlusion="heavy")
    return [generate_video(cfg, i) for i in range(cfg.videos)]


@pytest.fixture(scope="module")
def normal_videos():
    cfg = SynthConfig(videos=8, frames=20, height=96, width=160, seed=3)
    return [generate_video(cfg, i) for i in range(cfg.videos)]


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth") / "ds"
    summary = write_dataset(out, SMALL)
    return out, summary, json.loads((out / "annotations.json").read_text())


def test_same_seed_same_video_and_seed_matters():
    a, b = generate_video(SMALL, 1), generate_video(SMALL, 1)
    assert np.array_equal(a.frames, b.frames)
    assert np.array_equal(a.visible, b.visible) and np.array_equal(a.occlusion, b.occlusion)
    assert a.category_ids == b.category_ids
    # video i does not depend on how many videos the set has
    bigger = SynthConfig(**{**SMALL.__dict__, "videos": 7})
    assert np.array_equal(generate_video(bigger, 1).frames, a.frames)
    other = SynthConfig(**{**SMALL.__dict__, "seed": 6})
    assert not np.array_equal(generate_video(other, 1).frames, a.frames)


def test_written_dataset_is_deterministic(tmp_path, written):
    _, _, data = written
    write_dataset(tmp_path / "again", SMALL)
    again = json.loads((tmp_path / "again" / "annotations.json").read_text())
    assert again == data


def test_layout_and_annotations_decode(written):
    out, summary, data = written
    assert set(data) >= {"info", "videos", "annotations", "categories"}
    assert [c["name"] for c in data["categories"]] == list(SMALL.classes)
    assert [c["id"] for c in data["categories"]] == list(range(1, len(SMALL.classes) + 1))
    assert len(data["videos"]) == SMALL.videos == summary.videos
    videos = {v["id"]: v for v in data["videos"]}
    for v in data["videos"]:
        assert (v["height"], v["width"], v["length"]) == (SMALL.height, SMALL.width, SMALL.frames)
        assert len(v["file_names"]) == v["length"]
        for name in v["file_names"]:
            path = out / "JPEGImages" / name
            assert path.is_file(), name
        image = cv2.imread(str(out / "JPEGImages" / v["file_names"][-1]))
        assert image.shape == (SMALL.height, SMALL.width, 3)
    ids = [a["id"] for a in data["annotations"]]
    assert len(ids) == len(set(ids)) == summary.annotations > 0
    cat_ids = {c["id"] for c in data["categories"]}
    for ann in data["annotations"]:
        v = videos[ann["video_id"]]
        assert ann["iscrowd"] == 0 and ann["category_id"] in cat_ids
        fields = [ann[k] for k in ("segmentations", "bboxes", "areas", "occlusion")]
        assert all(len(f) == v["length"] for f in fields)
        assert any(s is not None for s in ann["segmentations"])
        for seg, box, area, occ in zip(*fields):
            assert (seg is None) == (box is None) == (area is None) == (occ is None)
            if seg is None:
                continue
            assert isinstance(seg["counts"], str) and seg["size"] == [v["height"], v["width"]]
            m = mask_utils.decode({"size": seg["size"], "counts": seg["counts"].encode()})
            assert m.shape == (v["height"], v["width"])
            assert int(m.sum()) == area >= SMALL.min_area
            ys, xs = np.nonzero(m)
            assert box == [float(xs.min()), float(ys.min()), float(xs.max() - xs.min() + 1), float(ys.max() - ys.min() + 1)]
            assert occ in OCCLUSION_NAMES
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".")], "temporary folders left behind"


def test_written_masks_are_the_visible_masks(written):
    _, _, data = written
    video = generate_video(SMALL, 0)
    anns = [a for a in data["annotations"] if a["video_id"] == 1]
    assert [a["category_id"] for a in anns] == video.category_ids
    for k, ann in enumerate(anns):
        for t, seg in enumerate(ann["segmentations"]):
            if seg is None:
                assert not video.visible[k, t].any() and video.occlusion[k, t] == -1
            else:
                m = mask_utils.decode({"size": seg["size"], "counts": seg["counts"].encode()})
                assert np.array_equal(m.astype(bool), video.visible[k, t])
                assert ann["occlusion"][t] == OCCLUSION_NAMES[video.occlusion[k, t]]


def test_occlusion_labels_match_masks(heavy_videos):
    for video in heavy_videos:
        n, t = video.occlusion.shape
        assert video.visible.shape == video.amodal.shape == (n, t, 96, 160)
        assert not (video.visible & ~video.amodal).any(), "visible mask outside the full mask"
        assert (video.visible.sum(0) <= 1).all(), "two objects visible on one pixel"
        areas, full = video.visible.sum((2, 3)), video.amodal.sum((2, 3))
        present = video.occlusion >= 0
        assert np.array_equal(present, areas > 0)
        for k, f in zip(*np.nonzero(present)):
            assert video.occlusion[k, f] == occlusion_label(areas[k, f], full[k, f])
    assert occlusion_label(100, 100) == 0 and occlusion_label(60, 100) == 1 and occlusion_label(40, 100) == 2


def test_heavy_mode_has_severe_occlusion_and_full_disappearance(heavy_videos):
    labels = np.concatenate([v.occlusion.ravel() for v in heavy_videos])
    counted = np.bincount(labels[labels >= 0], minlength=3)
    assert counted[2] >= 0.05 * counted.sum() and counted[1] > 0 and counted[0] > 0
    # fully hidden by another object (in the frame, not visible), seen before AND after
    comebacks = 0
    for v in heavy_videos:
        present = v.occlusion >= 0
        in_frame = v.amodal.any((2, 3))
        for k in range(len(present)):
            idx = np.nonzero(present[k])[0]
            gap = np.arange(idx[0], idx[-1] + 1)
            hidden = gap[~present[k, gap] & in_frame[k, gap]]
            comebacks += len(hidden) > 0
    assert comebacks >= 3
    assert sum(any(e.startswith("hide") for e in v.events) for v in heavy_videos) >= 6
    assert sum(any(e.startswith("crossing") for e in v.events) for v in heavy_videos) >= 6


def test_objects_enter_and_leave(normal_videos):
    entering = leaving = 0
    for v in normal_videos:
        present = v.occlusion >= 0
        entering += int((~present[:, 0] & present.any(1)).sum())
        leaving += int((~present[:, -1] & present.any(1)).sum())
        # an object absent from frame 0 is really outside the frame (or hidden), not lost
        for k in np.nonzero(~present[:, 0])[0]:
            assert not v.visible[k, 0].any()
    assert entering >= 2 and leaving >= 2
    heavy_fraction = np.mean([(v.occlusion == 2).sum() / max(1, (v.occlusion >= 0).sum()) for v in normal_videos])
    assert heavy_fraction < 0.2, "normal mode should not be as crowded as heavy"


def test_classes_look_different():
    cfg = SynthConfig(videos=6, frames=4, height=96, width=160, seed=2, objects=(4, 4))
    hues: dict[int, list[float]] = {}
    for i in range(cfg.videos):
        v = generate_video(cfg, i)
        hsv = cv2.cvtColor(v.frames[0], cv2.COLOR_RGB2HSV)
        for k, cat in enumerate(v.category_ids):
            m = v.visible[k, 0] & (v.occlusion[k, 0] == 0)
            if m.sum() > 40:
                hues.setdefault(cat, []).append(float(np.median(hsv[..., 0][m])))
    assert len(hues) >= 4
    assert abs(np.median(hues[3]) - np.median(hues[2])) > 20  # triangle green, square blue


def test_config_errors(tmp_path):
    with pytest.raises(InputError, match="unknown class"):
        SynthConfig(classes=("disc", "blob")).validate()
    with pytest.raises(InputError, match="occlusion"):
        SynthConfig(occlusion="extreme").validate()
    with pytest.raises(InputError, match="16x16"):
        SynthConfig(height=8).validate()
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("x")
    with pytest.raises(InputError, match="not empty"):
        write_dataset(tmp_path / "full", SMALL)
    assert (tmp_path / "full" / "keep.txt").read_text() == "x"
    (tmp_path / "file").write_text("x")
    with pytest.raises(InputError, match="not a directory"):
        write_dataset(tmp_path / "file", SMALL, overwrite=True)


def test_cli_synth_and_overwrite(tmp_path):
    out = tmp_path / "cli"
    args = ["data", "synth", str(out), "--videos", "2", "--frames", "6", "--size", "48x64", "--seed", "1", "--occlusion", "heavy"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "wrote 2 videos, 12 frames" in result.output
    data = json.loads((out / "annotations.json").read_text())
    assert data["videos"][0]["height"] == 48 and data["videos"][0]["width"] == 64
    result = CliRunner().invoke(app, args[:-2] + ["--seed", "2", "--overwrite"])
    assert result.exit_code == 0, result.output
    assert json.loads((out / "annotations.json").read_text())["info"]["config"]["seed"] == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cli"]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--size", "96by160"], "--size must be HEIGHTxWIDTH"),
        (["--occlusion", "mild"], "occlusion must be one of"),
        (["--classes", "disc,blob"], "unknown class blob"),
        (["--videos", "0"], "videos must be at least 1"),
    ],
)
def test_cli_bad_input_is_one_line(tmp_path, capsys, extra, message):
    with pytest.raises(SystemExit) as exc:
        main(["data", "synth", str(tmp_path / "x"), *extra])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not (tmp_path / "x").exists()


def test_cli_refuses_existing_output(tmp_path, capsys):
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "a").write_text("a")
    with pytest.raises(SystemExit) as exc:
        main(["data", "synth", str(tmp_path / "x"), "--videos", "1", "--frames", "2"])
    assert exc.value.code == 2
    assert "--overwrite" in capsys.readouterr().err


def _streams(path: Path) -> list[str]:
    import imageio_ffmpeg

    report = subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-i", str(path)], capture_output=True, text=True).stderr
    return [("video" if ": Video: h264" in line else "audio" if ": Audio:" in line else "other") for line in report.splitlines() if "Stream #" in line]


def test_example_clip(tmp_path):
    plain = write_example_clip(tmp_path / "plain.mp4", seed=1, frames=8, size=(48, 64))
    assert _streams(plain) == ["video"]
    voiced = write_example_clip(tmp_path / "voiced.mp4", seed=1, frames=8, size=(47, 63), audio=True)
    assert sorted(_streams(voiced)) == ["audio", "video"]
    cap = cv2.VideoCapture(str(voiced))
    ok, frame = cap.read()
    cap.release()
    assert ok and frame.shape == (48, 64, 3)
