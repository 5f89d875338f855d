"""The ResNet's norm: FrozenBatchNorm (official, pretrained) or GroupNorm (trained from scratch)."""
from __future__ import annotations

import json
from dataclasses import replace

import pytest
import torch
from torch import nn

from dvis_cli.checkpoint.load import LoadedWeights, read_any
from dvis_cli.checkpoint.store import save_weights
from dvis_cli.checkpoint.summary import summarize
from dvis_cli.config import BackboneConfig, get_preset, tiny_config
from dvis_cli.model.backbone.resnet import FrozenBatchNorm2d, ResNet, make_norm
from dvis_cli.model.build import build_dvis


def _gn_config():
    config = tiny_config("minvis")
    return replace(config, backbone=replace(config.backbone, norm="GN", norm_groups=8))


def test_group_norm_goes_where_frozen_batchnorm_was():
    frozen = ResNet((1, 1, 1, 1), 16, 16, 64, norm="FrozenBN")
    gn = ResNet((1, 1, 1, 1), 16, 16, 64, norm="GN", norm_groups=8)
    frozen_norms = {n for n, m in frozen.named_modules() if isinstance(m, FrozenBatchNorm2d)}
    gn_norms = {n: m for n, m in gn.named_modules() if isinstance(m, nn.GroupNorm)}
    assert frozen_norms == set(gn_norms) and len(gn_norms) == 17  # stem + 4 blocks x (3 convs + shortcut)
    # at most 8 groups, fewer where the channels do not divide
    assert gn_norms["stem.conv1.norm"].num_groups == 8
    assert make_norm("GN", 12, 8).num_groups == 4
    # detectron2 names: `<conv>.norm.weight`; GroupNorm's affine terms are trained, FrozenBN's are not
    params = dict(gn.named_parameters())
    assert "stem.conv1.norm.weight" in params and "res2.0.conv1.norm.bias" in params
    assert "stem.conv1.norm.weight" not in dict(frozen.named_parameters())
    with pytest.raises(ValueError, match="unknown backbone norm"):
        make_norm("SyncBN", 16)


def test_msra_initialisation_keeps_activations_alive_from_scratch():
    """He-normal convs + GroupNorm: the stride-32 features of a fresh network are neither zero nor huge."""
    torch.manual_seed(0)
    net = ResNet((1, 1, 1, 1), 16, 16, 64, norm="GN", norm_groups=8)
    out = net(torch.randn(2, 3, 96, 160))
    assert out["res5"].shape == (2, 512, 3, 5)
    std = out["res5"].std().item()
    assert 0.1 < std < 10.0, std
    conv = net.res3[0].conv2
    expected = (2.0 / (conv.out_channels * 9)) ** 0.5  # fan_out of a 3x3 conv
    assert conv.weight.std().item() == pytest.approx(expected, rel=0.1)


def test_gn_weights_round_trip_and_count_their_norm_parameters(tmp_path):
    config = _gn_config()
    model = build_dvis(config)
    path = save_weights(tmp_path / "gn.safetensors", model.state_dict(), config)
    loaded = read_any(path)
    assert loaded.config.backbone.norm == "GN" and loaded.config.backbone.norm_groups == 8
    again = build_dvis(loaded.config)
    again.load_state_dict(loaded.state_dict)  # strict: the same tensors, GN weights included
    summary = summarize(loaded)
    assert summary.parameters["backbone"] == sum(p.numel() for p in model.segmenter.backbone.parameters())
    assert summary.total_parameters == sum(p.numel() for p in model.parameters())


def test_frozen_bn_counts_stay_buffers():
    with torch.device("meta"):
        model = build_dvis(get_preset("minvis_r50_ovis"))
    state = {k: torch.empty(v.shape) for k, v in model.state_dict().items()}
    summary = summarize(LoadedWeights(state, get_preset("minvis_r50_ovis"), "dvis"))
    assert summary.parameters["backbone"] == sum(p.numel() for p in model.segmenter.backbone.parameters())


def test_weights_written_before_the_norm_setting_load_as_frozen_bn(tmp_path):
    """A dvis file whose config has no `norm` (written by dvis before GN existed) is FrozenBN."""
    from safetensors.torch import load_file, save_file
    from safetensors import safe_open

    config = tiny_config("minvis")
    config = replace(config, backbone=replace(config.backbone, norm="FrozenBN"))
    model = build_dvis(config)
    path = save_weights(tmp_path / "old.safetensors", model.state_dict(), config)
    with safe_open(str(path), framework="pt") as f:
        meta = dict(f.metadata())
    saved = json.loads(meta["config"])
    del saved["backbone"]["norm"], saved["backbone"]["norm_groups"]
    meta["config"] = json.dumps(saved)
    save_file(load_file(str(path)), str(path), metadata=meta)
    loaded = read_any(path)
    assert loaded.config.backbone == replace(config.backbone, norm="FrozenBN", norm_groups=BackboneConfig().norm_groups)
    build_dvis(loaded.config).load_state_dict(loaded.state_dict)
