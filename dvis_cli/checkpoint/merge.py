"""Put the stages of several weights files together: a segmenter from one file, the referring
tracker and temporal refiner from others.

What it is for: after fine-tuning the segmenter, the tracker and refiner trained on the earlier
segmenter are a far better start for their own fine-tuning than fresh ones
(`dvis weights merge start.safetensors --segmenter new.safetensors --tracker old.safetensors`, then
`dvis train tracker --from start.safetensors`). The result loads strictly into the model its
config describes, so a tracker of another width or class set is refused, not half-loaded.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import torch

from dvis_cli.checkpoint.load import LoadedWeights, load_state_into, read_any
from dvis_cli.config import DVISConfig
from dvis_cli.errors import CheckpointError
from dvis_cli.model.build import build_dvis

STAGE_ORDER = ("segmenter", "tracker", "refiner")


@dataclass
class MergedWeights:
    state_dict: dict[str, torch.Tensor]
    config: DVISConfig
    sources: dict[str, str]  # stage -> file it came from


def _stage_of(key: str) -> str:
    return key.split(".", 1)[0]


def merge_stages(sources: dict[str, str | Path]) -> MergedWeights:
    """`sources`: stage name -> weights file holding that stage (a segmenter is required; a refiner
    needs a tracker). Input and test settings (test size, top-k) come with the segmenter."""
    unknown = [s for s in sources if s not in STAGE_ORDER]
    if unknown:
        raise CheckpointError(f"unknown stage {unknown[0]!r}; stages are {', '.join(STAGE_ORDER)}")
    if "segmenter" not in sources:
        raise CheckpointError("a merge needs --segmenter: every model starts with one")
    if "refiner" in sources and "tracker" not in sources:
        raise CheckpointError("a refiner runs on a tracker's output: pass --tracker too")
    loaded: dict[str, LoadedWeights] = {stage: read_any(path) for stage, path in sources.items()}
    for stage, weights in loaded.items():
        if stage not in weights.config.stages:
            raise CheckpointError(f"--{stage} {sources[stage]}: holds no {stage} (it has {', '.join(weights.config.stages)})")
    base = loaded["segmenter"].config
    for stage, weights in loaded.items():
        if tuple(weights.config.classes.names) != tuple(base.classes.names):
            raise CheckpointError(
                f"--{stage} {sources[stage]}: its {weights.config.num_classes} classes differ from the segmenter's {base.num_classes}"
            )
    arch = "offline" if "refiner" in sources else "online" if "tracker" in sources else "minvis"
    config = replace(
        base,
        name=base.name.replace(base.arch, arch, 1),
        arch=arch,
        tracker=loaded["tracker"].config.tracker if "tracker" in loaded else None,
        refiner=loaded["refiner"].config.refiner if "refiner" in loaded else None,
    )
    widths = {"segmenter": base.decoder.hidden_dim, "tracker": config.tracker and config.tracker.hidden_dim,
              "refiner": config.refiner and config.refiner.hidden_dim}
    odd = [f"{stage} {widths[stage]}" for stage in sources if widths[stage] != base.decoder.hidden_dim]
    if odd:  # each stage reads the queries of the one before
        raise CheckpointError(f"the stages do not fit together: query width segmenter {base.decoder.hidden_dim} vs {', '.join(odd)}")
    state = {k: v for stage, w in loaded.items() for k, v in w.state_dict.items() if _stage_of(k) == stage}
    try:
        load_state_into(build_dvis(config), state)  # every tensor present and of the right shape
    except CheckpointError as exc:
        raise CheckpointError(f"the stages do not fit together: {exc}") from None
    return MergedWeights(state, config, {stage: str(path) for stage, path in sources.items()})
