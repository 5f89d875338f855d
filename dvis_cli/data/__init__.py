"""Data sets: synthetic YouTube-VIS / OVIS style videos (`synth`) and the training data pipeline
(`ytvis`, `coco_pseudo`, `vipseg` loaders; `sampling`, `transforms`; `dataset` clips and batches).

The training names are exported lazily, so importing `dvis_cli.data.synth` does not import torch.
"""
from __future__ import annotations

import importlib

_EXPORTS = {
    "load_ytvis": "ytvis",
    "check_classes": "ytvis",
    "VideoDataset": "ytvis",
    "VideoRecord": "ytvis",
    "InstanceRecord": "ytvis",
    "load_coco_pseudo": "coco_pseudo",
    "CocoPseudoVideos": "coco_pseudo",
    "COCO_CATEGORY_MAPS": "coco_pseudo",
    "load_vipseg": "vipseg",
    "PanopticVideoDataset": "vipseg",
    "sample_frame_indices": "sampling",
    "AugmentConfig": "transforms",
    "VideoSample": "dataset",
    "ClipDataset": "dataset",
    "TrainingStream": "dataset",
    "parse_data_spec": "dataset",
    "load_training_source": "source",
    "detect_format": "source",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)
