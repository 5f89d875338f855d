"""What a weights file holds: model, stages, parameters per component, classes."""
from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

import torch

from dvis_cli.checkpoint.load import LoadedWeights

COMPONENTS = (
    ("backbone", "segmenter.backbone."),
    ("pixel decoder", "segmenter.pixel_decoder."),
    ("transformer decoder", "segmenter.decoder."),
    ("referring tracker", "tracker."),
    ("temporal refiner", "refiner."),
)
# Tensors that are buffers, not trainable parameters (FrozenBatchNorm statistics and affine terms,
# Swin's relative position index).
_BUFFER_SUFFIXES = (".running_mean", ".running_var", "relative_position_index")


def is_parameter(key: str, keys: Collection[str] | None = None) -> bool:
    """Whether `key` is a trainable parameter. FrozenBatchNorm weight/bias are buffers: in ResNets
    they sit at `*.norm.{weight,bias}` of a conv, beside `*.norm.running_mean`; GroupNorm's (a
    backbone trained from scratch) are parameters. Without `keys` every ResNet norm counts as frozen."""
    if key.endswith(_BUFFER_SUFFIXES):
        return False
    if key.startswith("segmenter.backbone.") and ".norm." in key and ("stem." in key or ".res" in key):
        if keys is None:
            return False
        return key.rsplit(".", 1)[0] + ".running_mean" not in keys
    return True


@dataclass
class WeightsSummary:
    preset: str
    arch: str
    stages: tuple[str, ...]
    num_classes: int
    num_queries: int
    class_names: tuple[str, ...]
    parameters: dict[str, int]  # component -> trainable parameters
    tensors: int
    source_format: str

    @property
    def total_parameters(self) -> int:
        return sum(self.parameters.values())


def summarize(loaded: LoadedWeights) -> WeightsSummary:
    params = {}
    for name, prefix in COMPONENTS:
        n = sum(v.numel() for k, v in loaded.state_dict.items() if k.startswith(prefix) and is_parameter(k, loaded.state_dict))
        if n:
            params[name] = n
    c = loaded.config
    return WeightsSummary(
        c.name, c.arch, c.stages, c.num_classes, c.decoder.num_queries, c.classes.names, params, len(loaded.state_dict), loaded.source_format
    )


def count_model_parameters(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
