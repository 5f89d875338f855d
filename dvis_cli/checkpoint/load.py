"""One entry point for weights: any supported file (or embedded name) -> a ready DVIS model."""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import torch

from dvis_cli.checkpoint.official import ConversionReport, detect_config, official_to_ours, read_state_dict
from dvis_cli.checkpoint.resolve import resolve_weights
from dvis_cli.checkpoint.store import read_weights
from dvis_cli.config import DVISConfig
from dvis_cli.errors import CheckpointError
from dvis_cli.model.build import build_dvis
from dvis_cli.model.dvis import DVIS

# Buffers our modules derive themselves; official files may or may not carry them.
DERIVED_BUFFERS = ("relative_position_index",)


@dataclass
class LoadedWeights:
    state_dict: dict[str, torch.Tensor]  # our names
    config: DVISConfig
    source_format: str  # "dvis" | "official"
    report: ConversionReport | None = None
    metadata: dict[str, str] | None = None


def read_any(path: str | Path, preset: str | None = None) -> LoadedWeights:
    path = Path(path)
    if path.suffix.lower() == ".safetensors":
        sd, config, meta = read_weights(path)
        if preset is not None:
            from dvis_cli.config import get_preset

            wanted = get_preset(preset)
            if wanted.num_classes != config.num_classes:
                raise CheckpointError(
                    f"class-count mismatch: {path.name} has {config.num_classes} classes, preset {wanted.name} has {wanted.num_classes}"
                )
        return LoadedWeights(sd, config, "dvis", None, meta)
    ours, report = official_to_ours(read_state_dict(path))
    return LoadedWeights(ours, detect_config(ours, preset), "official", report)


def group_counts(keys) -> str:
    counts = Counter(".".join(k.split(".")[:2]) for k in keys)
    return ", ".join(f"{n} under {g}" for g, n in counts.most_common(4))


def load_state_into(model: DVIS, state_dict: dict[str, torch.Tensor]) -> None:
    """Strict load that names what is wrong: missing, unexpected, or mis-shaped tensors."""
    own = model.state_dict()
    bad_shapes = [
        f"{k} {tuple(v.shape)} vs {tuple(own[k].shape)}" for k, v in state_dict.items() if k in own and own[k].shape != v.shape
    ]
    if bad_shapes:
        cls = [s for s in bad_shapes if "class_embed" in s]
        if cls:
            raise CheckpointError(f"class-count mismatch: {cls[0]} (checkpoint vs model)")
        raise CheckpointError(f"{len(bad_shapes)} tensors have the wrong shape for this model, e.g. {bad_shapes[0]}")
    missing = [k for k in own if k not in state_dict and not k.endswith(DERIVED_BUFFERS)]
    unexpected = [k for k in state_dict if k not in own]
    if missing:
        raise CheckpointError(f"the weights lack {len(missing)} tensors of the model ({group_counts(missing)})")
    if unexpected:
        raise CheckpointError(f"the weights hold {len(unexpected)} tensors the model does not have ({group_counts(unexpected)})")
    model.load_state_dict(state_dict, strict=False)


def load_model(
    weights: str | Path | None = None, preset: str | None = None, device: str | torch.device = "cpu", official_matching: bool | None = None
) -> DVIS:
    """Build the model a weights file describes and load it (eval mode)."""
    loaded = read_any(resolve_weights(weights), preset)
    config = loaded.config
    if official_matching is not None and config.tracker is not None:
        from dataclasses import replace

        config = replace(config, tracker=replace(config.tracker, official_matching=official_matching))
    model = build_dvis(config)
    load_state_into(model, loaded.state_dict)
    return model.eval().to(device)
