"""`dvis segment` end to end: the oracle clip as an mp4 and as a frame folder, every mode."""
from __future__ import annotations

import json
import subprocess
import sys

import cv2
import numpy as np
import pytest
from pycocotools.coco import COCO

from dvis_cli.inference.clip import predict_clip
from dvis_cli.inference.predictor import SegmentOptions, VideoPredictor
from dvis_cli.inference.results import decode_mask
from dvis_cli.inference.segment import segment_video
from dvis_cli.io import VideoWriter, open_source


@pytest.fixture(scope="module")
def media(tmp_path_factory, oracle_clip):
    root = tmp_path_factory.mktemp("media")
    folder = root / "frames"
    folder.mkdir()
    for i, frame in enumerate(oracle_clip):
        cv2.imwrite(str(folder / f"{i + 1}.png"), frame[:, :, ::-1])
    video = root / "clip.mp4"
    with VideoWriter(video, 10, (oracle_clip.shape[2], oracle_clip.shape[1])) as writer:
        for frame in oracle_clip:
            writer.write(frame)
    return {"folder": folder, "video": video}


def _ytvis_masks(path, num_frames, shape):
    entries = json.loads(path.read_text())
    out = np.zeros((len(entries), num_frames, *shape), bool)
    for k, entry in enumerate(entries):
        assert len(entry["segmentations"]) == num_frames
        for t, rle in enumerate(entry["segmentations"]):
            if rle is not None:
                out[k, t] = decode_mask(rle)
    return entries, out


@pytest.mark.parametrize("kind", ["folder", "video"])
@pytest.mark.parametrize("mode", ["offline", "online", "minvis", "semi-online"])
def test_exports_equal_model_core(kind, mode, media, offline_model, tmp_path):
    frames = np.stack([f.image for f in open_source(media[kind]).frames()])
    ref = predict_clip(offline_model, frames, mode="offline" if mode == "semi-online" else mode, size=128)
    options = SegmentOptions(mode=mode, size=128, window=6 if mode == "semi-online" else None)
    report = segment_video(VideoPredictor(offline_model), str(media[kind]), tmp_path, "clip", options)
    assert report.frames == 6 and report.tracks == len(ref)
    entries, masks = _ytvis_masks(tmp_path / "clip.ytvis.json", 6, frames.shape[1:3])
    np.testing.assert_array_equal(masks, ref.masks)
    assert [e["category_id"] for e in entries] == (ref.labels + 1).tolist()  # OVIS ids are 1-based
    np.testing.assert_allclose([e["score"] for e in entries], ref.scores, atol=1e-6)


def test_cli_run_folder_and_exports(media, official_checkpoints, tmp_path):
    cmd = [sys.executable, "-m", "dvis_cli", "segment", str(media["folder"]), "--weights",
           str(official_checkpoints["dvis_online_r50_ovis"]), "--size", "128", "--out", str(tmp_path / "runs"),
           "--progress", "none", "--save-masks", "png", "--max-instances", "5"]
    for expected in ("exp", "exp2"):
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, r.stderr
        assert (tmp_path / "runs" / expected / "summary.json").exists()
    run = tmp_path / "runs" / "exp"
    summary = json.loads((run / "summary.json").read_text())
    assert summary["frames"] == 6 and summary["instances"] == 5 and summary["peak_rss_mb"] > 0
    coco = COCO(str(run / "frames.coco.json"))
    assert len(coco.getImgIds()) == 6
    ann = coco.loadAnns(coco.getAnnIds())[0]
    assert ann["keyframe"] is True and "track_id" in ann
    entries, masks = _ytvis_masks(run / "frames.ytvis.json", 6, (128, 224))
    for a in coco.loadAnns(coco.getAnnIds()):
        np.testing.assert_array_equal(coco.annToMask(a).astype(bool), masks[a["track_id"] - 1, a["image_id"] - 1])
    pngs = sorted((run / "masks" / "frames").glob("*.png"))
    assert len(pngs) == 6
    ids = cv2.imread(str(pngs[0]), cv2.IMREAD_UNCHANGED)
    assert ids.dtype == np.uint16 and ids.shape == (128, 224) and ids.max() <= 5
    header = (run / "frames.tracks.csv").read_text().splitlines()[0]
    assert header.startswith("id,class,score,first_frame,last_frame")


@pytest.mark.parametrize(
    "args, message",
    [
        (["does-not-exist.mp4"], "no such file or folder"),
        (["{txt}"], ""),
        (["{folder}", "--precision", "fp16", "--device", "cpu"], "fp16 needs a CUDA device"),
        (["{folder}", "--mode", "sideways"], "unknown mode"),
        (["{folder}", "--mode", "semi-online"], "mode 'semi-online' needs a refiner"),
        (["{folder}", "--mode", "semi-online", "--weights", "{offline}"], "needs --window"),
        (["{folder}", "--classes", "unicorn"], "unknown class 'unicorn'"),
        (["{folder}", "--weights", "no-such-weights"], "unknown weights"),
    ],
)
def test_bad_input_is_one_clear_line(args, message, media, official_checkpoints, tmp_path):
    txt = tmp_path / "notes.txt"
    txt.write_text("not a video")
    args = [a.format(txt=txt, folder=media["folder"], offline=official_checkpoints["dvis_offline_r50_ovis"]) for a in args]
    if "--weights" not in args:
        args += ["--weights", str(official_checkpoints["dvis_online_r50_ovis"])]
    r = subprocess.run([sys.executable, "-m", "dvis_cli", "segment", *args, "--out", str(tmp_path / "runs"), "--progress", "none"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode != 0
    assert "Traceback" not in r.stderr and r.stderr.strip().startswith("error:"), r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    assert message in r.stderr


def test_stream_breaking_mid_video_keeps_what_is_done(official_checkpoints, oracle_clip, tmp_path):
    video = tmp_path / "long.mp4"
    with VideoWriter(video, 10, (224, 128)) as writer:
        for i in range(40):
            writer.write(oracle_clip[i % 6])
    data = video.read_bytes()
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(data[: int(len(data) * 0.6)])
    r = subprocess.run([sys.executable, "-m", "dvis_cli", "segment", str(broken), "--weights", str(official_checkpoints["dvis_online_r50_ovis"]),
                        "--size", "128", "--out", str(tmp_path / "runs"), "--progress", "none"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 2 and "breaks off after frame" in r.stderr and "kept the" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    kept = json.loads((tmp_path / "runs" / "exp" / "broken.ytvis.json").read_text())
    assert kept and 0 < len(kept[0]["segmentations"]) < 40


def test_resume_a_killed_run(tmp_path):
    """Kill `dvis segment` after its first checkpoint; `--resume` finishes with the same result."""
    import os
    import signal
    import time

    import torch

    from dvis_cli.checkpoint.store import save_weights
    from dvis_cli.config import tiny_config
    from dvis_cli.data.synth import write_example_clip
    from dvis_cli.model.build import build_dvis

    torch.manual_seed(0)
    config = tiny_config("online")
    weights = tmp_path / "tiny.safetensors"
    save_weights(weights, build_dvis(config).state_dict(), config)
    video = tmp_path / "long.mp4"
    write_example_clip(video, seed=5, frames=90, size=(96, 160))

    def cmd(name, *extra):
        return [sys.executable, "-m", "dvis_cli", "segment", str(video), "--weights", str(weights), "--out", str(tmp_path / "runs"),
                "--name", name, "--progress", "none", "--checkpoint-every", "9", "--exist-ok", *extra]

    assert subprocess.run(cmd("whole"), capture_output=True, timeout=300).returncode == 0
    proc = subprocess.Popen(cmd("killed"), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    marker = tmp_path / "runs" / "killed" / "long.results" / "resume.pt"
    deadline = time.time() + 120
    while not marker.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert marker.exists(), "the run finished or failed before its first checkpoint"
    assert not (tmp_path / "runs" / "killed" / "long.ytvis.json").exists()
    r = subprocess.run(cmd("killed", "--resume"), capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    whole = json.loads((tmp_path / "runs" / "whole" / "long.ytvis.json").read_text())
    resumed = json.loads((tmp_path / "runs" / "killed" / "long.ytvis.json").read_text())
    assert len(resumed[0]["segmentations"]) == 90
    assert resumed == whole
