"""`dvis weights merge`: stages of several files in one, refused when they do not fit."""
from __future__ import annotations

import subprocess
import sys
from dataclasses import replace

import pytest
import torch

from dvis_cli.checkpoint.load import read_any
from dvis_cli.checkpoint.merge import merge_stages
from dvis_cli.checkpoint.store import save_weights
from dvis_cli.classes import ClassSet
from dvis_cli.config import TrackerConfig, tiny_config
from dvis_cli.errors import CheckpointError
from dvis_cli.model.build import build_dvis


def _save(path, config, seed):
    torch.manual_seed(seed)
    save_weights(path, build_dvis(config).state_dict(), config)
    return path


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("merge")
    offline = tiny_config("offline")
    return {
        "seg_only": _save(root / "seg.safetensors", replace(tiny_config("minvis"), input=replace(offline.input, min_size_test=144)), 1),
        "offline_a": _save(root / "a.safetensors", offline, 2),
        "offline_b": _save(root / "b.safetensors", offline, 3),
        "narrow_tracker": _save(root / "narrow.safetensors", replace(tiny_config("online"), tracker=TrackerConfig(hidden_dim=32, nheads=4, dim_feedforward=64, num_layers=3)), 4),
        "other_classes": _save(root / "cls.safetensors", tiny_config("offline", ClassSet(("a", "b", "c", "d", "e"), (1, 2, 3, 4, 5), 5), "synth"), 5),
    }


def test_each_stage_comes_from_its_file(files, tmp_path):
    dst = tmp_path / "merged.safetensors"
    r = subprocess.run([sys.executable, "-m", "dvis_cli", "weights", "merge", str(dst), "--segmenter", str(files["seg_only"]),
                        "--tracker", str(files["offline_a"]), "--refiner", str(files["offline_b"])], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "offline_tiny_synth" in r.stdout
    merged = read_any(dst)
    assert merged.config.stages == ("segmenter", "tracker", "refiner") and merged.config.arch == "offline"
    assert merged.config.input.min_size_test == 144  # test settings travel with the segmenter
    want = {"segmenter": read_any(files["seg_only"]), "tracker": read_any(files["offline_a"]), "refiner": read_any(files["offline_b"])}
    for key, value in merged.state_dict.items():
        assert torch.equal(value, want[key.split(".")[0]].state_dict[key]), key
    assert {k.split(".")[0] for k in merged.state_dict} == set(want)
    assert merged.metadata["tracker_from"] == "a.safetensors"


def test_segmenter_and_tracker_make_an_online_model(files):
    merged = merge_stages({"segmenter": files["offline_a"], "tracker": files["offline_b"]})
    assert merged.config.arch == "online" and merged.config.refiner is None
    assert not any(k.startswith("refiner.") for k in merged.state_dict)


@pytest.mark.parametrize(
    "sources, message",
    [
        ({"tracker": "offline_a"}, "needs --segmenter"),
        ({"segmenter": "offline_a", "refiner": "offline_b"}, "pass --tracker too"),
        ({"segmenter": "offline_a", "tracker": "seg_only"}, "holds no tracker"),
        ({"segmenter": "offline_a", "tracker": "other_classes"}, "classes differ"),
        ({"segmenter": "offline_a", "tracker": "narrow_tracker"}, "do not fit together"),
    ],
)
def test_stages_that_do_not_fit_are_refused(files, sources, message):
    with pytest.raises(CheckpointError, match=message):
        merge_stages({stage: files[name] for stage, name in sources.items()})


def test_cli_error_is_one_line_and_writes_nothing(files, tmp_path):
    dst = tmp_path / "out.safetensors"
    r = subprocess.run([sys.executable, "-m", "dvis_cli", "weights", "merge", str(dst), "--segmenter", str(files["offline_a"]),
                        "--tracker", str(files["narrow_tracker"])], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and r.stderr.startswith("error:") and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert list(tmp_path.iterdir()) == []
