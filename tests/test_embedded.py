"""The embedded default model (weights/dvis-tiny-synth.safetensors) and the example clips."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np

from dvis_cli.checkpoint.load import read_any
from dvis_cli.checkpoint.resolve import resolve_weights
from dvis_cli.data.synth import SynthConfig, generate_video, write_example_clip
from dvis_cli.inference.results import ResultStore, decode_mask

ROOT = Path(__file__).resolve().parents[1]
WEIGHTS = ROOT / "weights" / "dvis-tiny-synth.safetensors"
EXAMPLE = ROOT / "examples" / "shapes.mp4"
MIN_OFFLINE_AP = 0.6


def test_embedded_model_is_the_default_and_small():
    assert WEIGHTS.exists() and WEIGHTS.stat().st_size <= 20 * 2**20
    assert resolve_weights(None) == WEIGHTS
    loaded = read_any(WEIGHTS)
    assert loaded.config.stages == ("segmenter", "tracker", "refiner")
    assert loaded.config.classes.names == ("disc", "square", "triangle", "star", "ring")


def test_segment_the_example_with_the_default_model(tmp_path):
    r = subprocess.run([sys.executable, "-m", "dvis_cli", "segment", str(EXAMPLE), "--out", str(tmp_path), "--progress", "none", "--render"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    run = tmp_path / "exp"
    summary = json.loads((run / "summary.json").read_text())
    assert summary["frames"] == 48 and summary["instances"] > 0
    assert (run / "shapes.mp4").exists() and (run / "shapes.coco.json").exists()


def _track_masks(store: ResultStore) -> dict[int, dict[int, np.ndarray]]:
    out: dict[int, dict[int, np.ndarray]] = {t.track_id: {} for t in store.tracks}
    for frame in store.frames():
        for track, rle in store.track_masks(frame):
            if rle is not None:
                out[track.track_id][frame.index] = decode_mask(rle)
    return out


def test_semi_online_ids_stay_across_window_borders(tmp_path):
    """Windows of 8 frames on clips with known ground truth: an object that a track covers on both
    sides of a window border is covered by the same track as often as between frames of one window.

    (Restarting the tracker at every window, as the official demo does for offline models, drops
    the border rate to about 0.79 against 0.94 inside on these clips.)"""
    seeds, frames, window = range(1, 7), 48, 8
    clips = [write_example_clip(tmp_path / f"clip{seed}.mp4", seed, frames) for seed in seeds]
    r = subprocess.run([sys.executable, "-m", "dvis_cli", "segment", *map(str, clips), "--mode", "semi-online", "--window", str(window),
                        "--out", str(tmp_path / "runs"), "--progress", "none", "--conf", "0.3"],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    same = {"border": [], "inside": []}
    for seed, clip in zip(seeds, clips):
        truth = generate_video(SynthConfig(videos=1, frames=frames, seed=seed, occlusion="heavy"), 0).visible  # (N, T, H, W)
        masks = _track_masks(ResultStore(tmp_path / "runs" / "exp" / f"{clip.stem}.results"))

        def owner(obj: int, t: int):
            """The track whose mask overlaps object `obj` in frame t best (IoU >= 0.5), if any."""
            best, owner_id = 0.5, None
            for track_id, per_frame in masks.items():
                m = per_frame.get(t)
                if m is not None:
                    iou = (m & truth[obj, t]).sum() / max((m | truth[obj, t]).sum(), 1)
                    if iou >= best:
                        best, owner_id = iou, track_id
            return owner_id

        for obj in range(truth.shape[0]):
            owners = [owner(obj, t) for t in range(frames)]
            for t in range(1, frames):
                if owners[t - 1] is not None and owners[t] is not None:
                    same["border" if t % window == 0 else "inside"].append(owners[t - 1] == owners[t])
    border, inside = np.mean(same["border"]), np.mean(same["inside"])
    assert len(same["border"]) >= 60, "confident tracks should span window borders"
    assert inside >= 0.85, inside
    assert border >= inside - 0.08, (border, inside)


def test_embedded_model_segments_unseen_heavy_occlusion_videos(tmp_path):
    """The shipped model on 8 videos it never saw (another seed, heavy occlusion), scored with the
    official YouTube-VIS AP through `dvis eval`: it finds and follows the shapes, and the order of
    the paper's Table 5 holds: offline >= online >= per-frame queries associated by Hungarian
    matching (MinVIS). Round 4 gives 0.662 / 0.603 / 0.552 here (weights/README.md: the table on
    the 24 validation videos)."""
    from dvis_cli.data.synth import write_dataset

    data = tmp_path / "heavy"
    write_dataset(data, SynthConfig(videos=8, frames=16, seed=31, occlusion="heavy"))
    ap = {}
    for mode in ("minvis", "online", "offline"):
        r = subprocess.run([sys.executable, "-m", "dvis_cli", "eval", "ytvis-custom", "--gt", str(data / "annotations.json"),
                            "--frames", str(data / "JPEGImages"), "--mode", mode, "--out", str(tmp_path / "eval"), "--name", mode],
                           capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, r.stderr
        ap[mode] = json.loads((tmp_path / "eval" / mode / "metrics.json").read_text())["AP"]
    assert ap["offline"] >= MIN_OFFLINE_AP, ap
    assert ap["offline"] >= ap["online"] >= ap["minvis"], ap
