"""Official checkpoints -> our model: every key consumed, every tensor filled; bad files refused."""
from __future__ import annotations

import os
import pickle

import numpy as np
import pytest
import torch
from conftest import OFFICIAL_KEY_FILES, official_keys, official_state_dict

from dvis_cli.checkpoint.load import load_model, load_state_into, read_any
from dvis_cli.checkpoint.official import official_to_ours, read_state_dict
from dvis_cli.checkpoint.store import read_weights, save_weights
from dvis_cli.errors import CheckpointError
from dvis_cli.model.build import build_dvis

EXPECTED = {"minvis_r50_ovis": "minvis_r50_ovis", "dvis_online_r50_ovis": "online_r50_ovis", "dvis_offline_r50_ovis": "offline_r50_ovis"}


@pytest.mark.parametrize("name", OFFICIAL_KEY_FILES)
def test_every_official_key_is_consumed_and_every_tensor_filled(name, official_checkpoints):
    loaded = read_any(official_checkpoints[name])
    assert loaded.config.name == EXPECTED[name]
    keys = [k for k, _ in official_keys(name)]
    assert loaded.report.consumed + len(loaded.report.ignored) == len(keys)
    assert loaded.report.ignored == ["criterion.empty_weight"]
    model = build_dvis(loaded.config)
    own = model.state_dict()
    assert set(own) == set(loaded.state_dict), "every parameter and buffer of ours is filled, nothing left over"
    for key, value in loaded.state_dict.items():
        assert own[key].shape == value.shape, key
    load_state_into(model, loaded.state_dict)
    for key, value in model.state_dict().items():
        assert torch.equal(value, loaded.state_dict[key]), key


def test_legacy_names_are_accepted(tmp_path):
    sd = official_state_dict("dvis_offline_r50_ovis")
    legacy = {}
    for key, value in sd.items():
        if key.startswith("refiner."):
            key = "offline_tracker." + key[len("refiner.") :]
        elif key.startswith("sem_seg_head.pixel_decoder."):
            key = "sem_seg_head.pixel_decoder.pixel_decoder." + key[len("sem_seg_head.pixel_decoder.") :]
        elif key.endswith("predictor.query_feat.weight"):
            key = key.replace("query_feat", "static_query")
        legacy["module." + key] = value
    path = tmp_path / "legacy.pth"
    torch.save({"model": legacy, "iteration": 3}, path)
    loaded = read_any(path)
    assert loaded.config.name == "offline_r50_ovis"
    load_state_into(build_dvis(loaded.config), loaded.state_dict)
    # the un-prefixed pixel-decoder names of metadata-less detectron2 checkpoints, and a bare state dict
    bare = {("sem_seg_head." + k[len("sem_seg_head.pixel_decoder.") :] if k.startswith("sem_seg_head.pixel_decoder.") else k): v for k, v in sd.items()}
    torch.save(bare, path)
    assert read_any(path).config.name == "offline_r50_ovis"


def test_detectron2_pkl_with_numpy_arrays(tmp_path):
    sd = {k: v.numpy() for k, v in official_state_dict("minvis_r50_ovis").items()}
    path = tmp_path / "model_final.pkl"
    with open(path, "wb") as f:
        pickle.dump({"model": sd, "__author__": "dvis tests"}, f)
    loaded = read_any(path)
    assert loaded.config.name == "minvis_r50_ovis"
    load_state_into(build_dvis(loaded.config), loaded.state_dict)


def test_safetensors_round_trip_keeps_config_and_weights(tmp_path, official_checkpoints):
    loaded = read_any(official_checkpoints["dvis_online_r50_ovis"])
    path = save_weights(tmp_path / "w.safetensors", loaded.state_dict, loaded.config)
    sd, config, meta = read_weights(path)
    assert config == loaded.config
    assert meta["stages"] == "segmenter,tracker" and meta["preset"] == "online_r50_ovis"
    assert set(sd) == set(loaded.state_dict) and all(torch.equal(sd[k], loaded.state_dict[k]) for k in sd)
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".part")]


def test_preset_detection_and_override(tmp_path):
    sd = official_state_dict("dvis_online_r50_ovis")
    # 40 classes: YouTube-VIS 2019 by default, 2021 when asked
    sd["sem_seg_head.predictor.class_embed.weight"] = torch.zeros(41, 256)
    sd["sem_seg_head.predictor.class_embed.bias"] = torch.zeros(41)
    sd["tracker.class_embed.weight"] = torch.zeros(41, 256)
    sd["tracker.class_embed.bias"] = torch.zeros(41)
    path = tmp_path / "ytvis.pth"
    torch.save(sd, path)
    assert read_any(path).config.name == "online_r50_ytvis19"
    assert read_any(path, preset="online_r50_ytvis21").config.classes.names[0] == "airplane"
    # an offline preset applied to online weights keeps only the stages the file holds
    assert read_any(path, preset="dvis_offline_r50_ytvis21").config.arch == "online"


def test_unknown_class_count_needs_a_preset(tmp_path):
    sd = official_state_dict("minvis_r50_ovis")
    sd["sem_seg_head.predictor.class_embed.weight"] = torch.zeros(81, 256)
    sd["sem_seg_head.predictor.class_embed.bias"] = torch.zeros(81)
    path = tmp_path / "coco.pth"
    torch.save({"model": sd}, path)
    with pytest.raises(CheckpointError, match="cannot tell the dataset of a 80-class checkpoint"):
        read_any(path)


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda p: None, "no such file"),
        (lambda p: p.write_bytes(b"hello, not weights"), "not a checkpoint"),
        (lambda p: p.write_bytes(b""), "empty file"),
        (lambda p: torch.save({"model": {"fc.weight": torch.zeros(2, 2)}}, p), "not a DVIS / MinVIS / Mask2Former checkpoint"),
        (lambda p: torch.save({"model": {"a": _Evil()}}, p), r"it would run code \(posix.system\)"),
    ],
)
def test_bad_files_are_refused_with_one_clear_line(tmp_path, make, message):
    path = tmp_path / "w.pth"
    make(path)
    with pytest.raises(CheckpointError, match=message):
        read_any(path)


def test_truncated_checkpoint(tmp_path, official_checkpoints):
    data = official_checkpoints["minvis_r50_ovis"].read_bytes()
    path = tmp_path / "trunc.pth"
    path.write_bytes(data[: len(data) // 3])
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        read_state_dict(path)


def test_pickle_that_runs_code_is_refused(tmp_path):
    path = tmp_path / "evil.pkl"
    with open(path, "wb") as f:
        pickle.dump({"model": {"w": np.zeros(3)}, "x": _Evil()}, f)
    marker = tmp_path / "ran"
    with pytest.raises(CheckpointError, match="it would run code"):
        read_any(path)
    assert not marker.exists()


def test_class_count_mismatch_with_preset(official_checkpoints):
    with pytest.raises(CheckpointError, match="class-count mismatch"):
        read_any(official_checkpoints["dvis_offline_r50_ovis"], preset="offline_r50_vipseg")


def test_missing_stage_tensors_are_named(tmp_path):
    sd = official_state_dict("dvis_online_r50_ovis")
    ours, _ = official_to_ours(sd)
    del ours["tracker.decoder_norm.weight"]
    model = build_dvis(read_any_config(ours))
    with pytest.raises(CheckpointError, match="lack 1 tensors"):
        load_state_into(model, ours)


def read_any_config(ours):
    from dvis_cli.checkpoint.official import detect_config

    return detect_config(ours)


def test_load_model_runs_any_lower_mode(official_checkpoints, oracle_clip):
    from dvis_cli.errors import DvisError

    model = load_model(official_checkpoints["dvis_online_r50_ovis"])
    assert model.best_mode == "online"
    with pytest.raises(DvisError, match="needs a refiner"):
        model.check_mode("offline")
    assert model.check_mode("minvis") == "minvis"


class _Evil:
    def __reduce__(self):
        return (os.system, ("echo this must never run",))
