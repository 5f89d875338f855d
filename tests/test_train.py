"""Training on tiny synthetic data: losses fall, resume is exact, bad input stops before training."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from dvis_cli.checkpoint.store import save_weights
from dvis_cli.config import tiny_config
from dvis_cli.data.synth import SynthConfig, write_dataset
from dvis_cli.errors import DvisError
from dvis_cli.model.build import build_dvis
from dvis_cli.training.config import TrainConfig, to_toml
from dvis_cli.training.trainer import Trainer, set_seed

SMALL = dict(num_points=300, min_sizes=[64], max_size=200, log_every=1, checkpoint_every=0, lr=4e-4, backbone_lr_multiplier=1.0)


@pytest.fixture(scope="module")
def synth(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("synth")
    write_dataset(root / "train", SynthConfig(videos=4, frames=8, height=64, width=96, seed=3))
    return root / "train"


@pytest.fixture(scope="module")
def segmenter_weights(synth, tmp_path_factory) -> Path:
    """An untrained tiny segmenter in dvis format (the tracker stage only needs one to start from)."""
    from dvis_cli.data.ytvis import load_ytvis

    torch.manual_seed(0)
    config = tiny_config("minvis", load_ytvis(synth).class_set())
    path = tmp_path_factory.mktemp("w") / "segmenter.safetensors"
    save_weights(path, build_dvis(config).state_dict(), config)
    return path


def _trainer(tmp_path, **kw) -> Trainer:
    cfg = TrainConfig(**{**SMALL, **kw})
    set_seed(cfg.seed)
    return Trainer(cfg, tmp_path / "run")


def _params(trainer: Trainer) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in trainer.module.state_dict().items()}


def test_segmenter_loss_falls(synth, tmp_path):
    trainer = _trainer(tmp_path, stage="segmenter", data=[str(synth)], iters=40, batch=2)
    trainer.train()
    import json

    losses = [json.loads(l)["loss"] for l in (trainer.folder / "metrics.jsonl").read_text().splitlines()]
    assert len(losses) == 40
    assert sum(losses[-8:]) / 8 < 0.8 * sum(losses[:8]) / 8
    assert (trainer.folder / "weights" / "last.safetensors").exists()


def _backbone_rates(trainer: Trainer) -> set[float]:
    backbone = {id(p) for p in trainer.model.segmenter.backbone.parameters()}
    return {g["lr"] for g in trainer.optimizer.param_groups if any(id(p) in backbone for p in g["params"])}


def test_backbone_lr_is_full_from_scratch_and_a_tenth_when_pretrained(synth, segmenter_weights, tmp_path):
    kw = {k: v for k, v in SMALL.items() if k != "backbone_lr_multiplier"}
    scratch = Trainer(TrainConfig(**kw, stage="segmenter", data=[str(synth)], iters=10, batch=1), tmp_path / "a")
    assert scratch.cfg.backbone_lr_multiplier == 1.0 and _backbone_rates(scratch) == {4e-4}
    assert "backbone_lr_multiplier = 1.0" in to_toml(scratch.cfg)
    pretrained = Trainer(TrainConfig(**kw, stage="segmenter", data=[str(synth)], iters=10, batch=1,
                                     from_weights=str(segmenter_weights)), tmp_path / "b")
    assert pretrained.cfg.backbone_lr_multiplier == 0.1 and sorted(_backbone_rates(pretrained)) == pytest.approx([4e-5])
    explicit = Trainer(TrainConfig(**kw, stage="segmenter", data=[str(synth)], iters=10, batch=1, backbone_lr_multiplier=0.5),
                       tmp_path / "c")
    assert _backbone_rates(explicit) == {2e-4}


def test_resume_is_exact_across_the_matching_phase_switch(synth, segmenter_weights, tmp_path, monkeypatch):
    """6 iterations (matching on the segmenter's predictions until 3) vs a run that crashes in
    iteration 3 (last checkpoint at 2) and is resumed by a new trainer."""
    kw = dict(stage="tracker", data=[str(synth)], from_weights=str(segmenter_weights), iters=6, batch=1,
              num_frames=3, frame_range=1, checkpoint_every=2)
    full = _trainer(tmp_path / "a", **kw)
    full.train()
    first = _trainer(tmp_path / "b", **kw)
    real_step = first.step

    def crashing_step(samples):
        if first.iteration == 3:
            raise RuntimeError("power cut")
        return real_step(samples)

    monkeypatch.setattr(first, "step", crashing_step)
    with pytest.raises(RuntimeError):
        first.train()
    resumed = _trainer(tmp_path / "b", **kw)
    assert resumed.resume() and resumed.iteration == 2
    resumed.train()
    a, b = _params(full), _params(resumed)
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_interrupt_leaves_a_loadable_checkpoint(synth, tmp_path, monkeypatch):
    trainer = _trainer(tmp_path, stage="segmenter", data=[str(synth)], iters=10, batch=1)
    real_step = trainer.step

    def step(samples):
        if trainer.iteration == 3:
            raise KeyboardInterrupt
        return real_step(samples)

    monkeypatch.setattr(trainer, "step", step)
    with pytest.raises(KeyboardInterrupt):
        trainer.train()
    state = torch.load(trainer.folder / "last.pt", weights_only=True)
    assert state["iteration"] == 3
    assert not list(trainer.folder.glob("*.part"))


def test_bad_input_stops_before_training(synth, segmenter_weights, tmp_path):
    with pytest.raises(DvisError, match="not found"):
        _trainer(tmp_path, stage="segmenter", data=[str(tmp_path / "missing")], iters=10, batch=1)
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(DvisError):
        _trainer(tmp_path, stage="segmenter", data=[str(bad)], iters=10, batch=1)
    with pytest.raises(DvisError, match="refiner stage needs trained tracker"):
        _trainer(tmp_path, stage="refiner", data=[str(synth)], from_weights=str(segmenter_weights), iters=10, batch=1)
    other = tiny_config("minvis")  # the 5 synthetic class names, but a different order
    from dataclasses import replace

    from dvis_cli.classes import ClassSet

    shuffled = replace(other, classes=ClassSet(tuple(reversed(other.classes.names)), other.classes.dataset_ids, 5))
    path = tmp_path / "other.safetensors"
    save_weights(path, build_dvis(shuffled).state_dict(), shuffled)
    with pytest.raises(DvisError, match="classes differ"):
        _trainer(tmp_path, stage="tracker", data=[str(synth)], from_weights=str(path), iters=10, batch=1)


def test_cli_bad_input_one_line(tmp_path):
    r = subprocess.run([sys.executable, "-m", "dvis_cli", "train", "segmenter", "--data", str(tmp_path / "nope"), "--out", str(tmp_path)],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and r.stderr.startswith("error:") and len(r.stderr.strip().splitlines()) == 1
    r = subprocess.run([sys.executable, "-m", "dvis_cli", "train", "tracker", "--data", str(tmp_path), "--out", str(tmp_path / "runs")],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "error:" in r.stderr


def test_two_processes_equal_one_process_with_the_same_global_batch(synth, tmp_path):
    """DDP with gloo on CPU (2 processes x 1 video) == 1 process x 2 videos, after 5 iterations."""
    from safetensors.torch import load_file

    def run(name, *extra):
        cmd = [sys.executable, "-m", "dvis_cli", "train", "segmenter", "--data", str(synth), "--iters", "5", "--device", "cpu",
               "--out", str(tmp_path), "--name", name, "--progress", "none", "--set", "num_points=300", "--set", "min_sizes=64",
               "--set", "checkpoint_every=0", *extra]
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, r.stderr[-2000:]
        return load_file(str(tmp_path / name / "segmenter" / "weights" / "last.safetensors"))

    two = run("two", "--batch", "2", "--gpus", "2")
    one = run("one", "--batch", "2")
    other = run("other", "--batch", "1")  # different data: shows the comparison can fail

    def mean_diff(a, b) -> float:
        return torch.cat([(a[k].float() - b[k].float()).abs().flatten() for k in a]).mean().item()

    # Not the max: Adam turns a backbone weight whose summed gradient is ~0 into a step of +-lr, so
    # float summation order (one batch of 2 vs an all-reduce of 2 x 1) flips a few hundred of the
    # 2.5 M steps (~1e-5 each) and the 5 iterations spread that. A wrong DDP batch differs everywhere.
    same, different = mean_diff(two, one), mean_diff(two, other)
    assert different > 1e-5, different
    assert same < 0.02 * different, (same, different)


def test_init_heads_copies_the_previous_stage(synth, segmenter_weights, tmp_path):
    trainer = _trainer(tmp_path, stage="tracker", data=[str(synth)], from_weights=str(segmenter_weights), iters=10, batch=1, init_heads=True)
    seg, trk = trainer.model.segmenter.decoder, trainer.model.tracker
    for name in ("decoder_norm", "class_embed", "mask_embed"):
        a, b = getattr(seg, name).state_dict(), getattr(trk, name).state_dict()
        assert all(torch.equal(a[k], b[k]) for k in a)
    plain = _trainer(tmp_path / "plain", stage="tracker", data=[str(synth)], from_weights=str(segmenter_weights), iters=10, batch=1)
    assert not torch.equal(plain.model.tracker.class_embed.weight, seg.class_embed.weight)


def test_segmenter_from_a_coco_mask2former_checkpoint(synth, tmp_path):
    """A COCO Mask2Former (80 classes): everything loads but the class head, re-initialised for the data."""
    import pickle

    from conftest import official_state_dict

    sd = official_state_dict("minvis_r50_ovis")
    sd["sem_seg_head.predictor.class_embed.weight"] = torch.zeros(81, 256)
    sd["sem_seg_head.predictor.class_embed.bias"] = torch.zeros(81)
    sd.pop("criterion.empty_weight")
    pkl = tmp_path / "model_final_coco.pkl"
    with open(pkl, "wb") as f:
        pickle.dump({"model": {k: v.numpy() for k, v in sd.items()}, "__author__": "test"}, f)
    trainer = _trainer(tmp_path, stage="segmenter", data=[str(synth)], from_weights=str(pkl), iters=10, batch=1)
    model = trainer.model
    assert model.config.num_classes == 5 and model.config.decoder.num_queries == 100
    assert torch.equal(model.segmenter.backbone.stem.conv1.weight, sd["backbone.stem.conv1.weight"])
    assert "class head re-initialised" in trainer.origin
    # a bare backbone checkpoint (torchvision R-50 converted to detectron2 names): backbone only
    bare = {k[len("backbone."):]: v.numpy() for k, v in sd.items() if k.startswith("backbone.")}
    bare["stem.fc.weight"] = np.zeros((1000, 2048), np.float32)
    with open(tmp_path / "R-50.pkl", "wb") as f:
        pickle.dump({"model": bare, "__author__": "torchvision"}, f)
    trainer = _trainer(tmp_path / "b", stage="segmenter", data=[str(synth)], from_weights=str(tmp_path / "R-50.pkl"), iters=10, batch=1)
    assert trainer.origin.endswith("(backbone only)")
    assert torch.equal(trainer.model.segmenter.backbone.res5[2].conv3.weight, sd["backbone.res5.2.conv3.weight"])


def test_test_size_is_recorded_in_the_exported_weights(synth, segmenter_weights, tmp_path):
    """`--set test_size=N`: the weights a stage exports run at shorter side N by default."""
    from dvis_cli.checkpoint.load import read_any

    trainer = _trainer(tmp_path, stage="tracker", data=[str(synth)], from_weights=str(segmenter_weights), iters=10, batch=1, test_size=96)
    trainer.train()
    assert read_any(str(trainer.folder / "weights" / "last.safetensors")).config.input.min_size_test == 96
    kept = _trainer(tmp_path / "kept", stage="tracker", data=[str(synth)], from_weights=str(segmenter_weights), iters=10, batch=1)
    kept.train()
    assert read_any(str(kept.folder / "weights" / "last.safetensors")).config.input.min_size_test == 128
    with pytest.raises(DvisError):
        TrainConfig(data=[str(synth)], test_size=-1).validate()
