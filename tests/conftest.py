"""Shared fixtures: official-layout checkpoints with the oracle's deterministic weights."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import torch

ORACLE = Path(__file__).parent / "data" / "oracle"
OFFICIAL_KEY_FILES = ("minvis_r50_ovis", "dvis_online_r50_ovis", "dvis_offline_r50_ovis")


def _fill_module():
    spec = importlib.util.spec_from_file_location("oracle_fill", ORACLE / "fill.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def official_keys(name: str) -> list[tuple[str, list[int]]]:
    return json.loads((ORACLE / f"{name}.keys.json").read_text())


def official_state_dict(name: str, salt: str = "") -> dict[str, torch.Tensor]:
    return _fill_module().build_state_dict(official_keys(name), salt)


@pytest.fixture(scope="session")
def official_checkpoints(tmp_path_factory) -> dict[str, Path]:
    """{name: path} of detectron2-style `{"model": state_dict}` files built from the official keys."""
    root = tmp_path_factory.mktemp("official")
    paths = {}
    for name in OFFICIAL_KEY_FILES:
        paths[name] = root / f"{name}.pth"
        torch.save({"model": official_state_dict(name)}, paths[name])
    return paths


@pytest.fixture(scope="session")
def oracle_clip() -> np.ndarray:
    return np.load(ORACLE / "clip.npy")


@pytest.fixture(scope="session")
def oracle_outputs() -> dict[str, np.ndarray]:
    return dict(np.load(ORACLE / "outputs.npz"))


@pytest.fixture(scope="session")
def offline_model(official_checkpoints):
    from dvis_cli.checkpoint.load import load_model

    torch.set_num_threads(2)
    return load_model(official_checkpoints["dvis_offline_r50_ovis"])
