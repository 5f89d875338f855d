"""`dvis eval` with a model: a YouTube-VIS-format dataset in, submission zip and metrics out."""
from __future__ import annotations

import json
import subprocess
import sys
import zipfile

import pytest
import torch

from dvis_cli.checkpoint.store import save_weights
from dvis_cli.config import tiny_config
from dvis_cli.data.synth import SynthConfig, write_dataset
from dvis_cli.inference.dataset import official_paths
from dvis_cli.model.build import build_dvis


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("evalrun")
    write_dataset(root / "data", SynthConfig(videos=3, frames=6, height=48, width=64, seed=4))
    torch.manual_seed(0)
    config = tiny_config("online")
    save_weights(root / "tiny.safetensors", build_dvis(config).state_dict(), config)
    return root


def _eval(setup, *extra):
    cmd = [sys.executable, "-m", "dvis_cli", "eval", "ytvis-custom", "--gt", str(setup / "data" / "annotations.json"),
           "--frames", str(setup / "data" / "JPEGImages"), "--weights", str(setup / "tiny.safetensors"), "--out", str(setup / "runs"), *extra]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300)


def test_custom_dataset_run_writes_submission_and_metrics(setup):
    r = _eval(setup, "--limit", "2")
    assert r.returncode == 0, r.stderr
    run = setup / "runs" / "custom"
    with zipfile.ZipFile(run / "results.zip") as z:
        assert z.namelist() == ["results.json"]
        results = json.loads(z.read("results.json"))
    assert {e["video_id"] for e in results} <= {1, 2} and all(len(e["segmentations"]) == 6 for e in results)
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["videos"] == 2 and "AP" in metrics and "AP_heavy" in metrics
    # resuming skips the finished videos and keeps the same results
    r = _eval(setup, "--limit", "2", "--resume")
    assert r.returncode == 0, r.stderr
    assert json.loads((run / "results.json").read_text()) == results


def test_category_mismatch_is_one_line(setup, tmp_path):
    gt = json.loads((setup / "data" / "annotations.json").read_text())
    gt["categories"][0]["name"] = "unicorn"
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(gt))
    cmd = [sys.executable, "-m", "dvis_cli", "eval", "ytvis-custom", "--gt", str(bad), "--frames", str(setup / "data" / "JPEGImages"),
           "--weights", str(setup / "tiny.safetensors"), "--out", str(tmp_path / "runs")]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert r.returncode == 2 and "do not match the model's classes" in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_semi_online_evaluation_refines_in_windows(setup, tmp_path):
    """`--mode semi-online` takes `--window` / `--context` as `dvis segment` does; without a window
    it is one clear line (it once ran the whole video as one window, i.e. offline, silently)."""
    torch.manual_seed(1)
    config = tiny_config("offline")
    weights = tmp_path / "offline.safetensors"
    save_weights(weights, build_dvis(config).state_dict(), config)
    base = [sys.executable, "-m", "dvis_cli", "eval", "ytvis-custom", "--gt", str(setup / "data" / "annotations.json"),
            "--frames", str(setup / "data" / "JPEGImages"), "--weights", str(weights), "--out", str(tmp_path / "runs"), "--limit", "1"]

    def results(name, *extra):
        r = subprocess.run([*base, "--name", name, *extra], capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, r.stderr
        return json.loads((tmp_path / "runs" / name / "results.json").read_text())

    r = subprocess.run([*base, "--mode", "semi-online"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 2 and "--window" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    offline = results("offline", "--mode", "offline")
    assert results("whole", "--mode", "semi-online", "--window", "6") == offline  # one window = the video
    assert results("windows", "--mode", "semi-online", "--window", "3", "--context", "0") != offline


def test_official_layouts():
    assert official_paths("ovis", "/d", "valid") == (
        __import__("pathlib").Path("/d/ovis/annotations/annotations_valid.json"), __import__("pathlib").Path("/d/ovis/valid"))
    assert str(official_paths("ytvis21", "/d", "train")[1]) == "/d/ytvis_2021/train/JPEGImages"
