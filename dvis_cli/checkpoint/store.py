"""dvis's own weights format: safetensors with the model's config in the metadata.

A `.safetensors` file written here holds our parameter names (`segmenter.*`, `tracker.*`,
`refiner.*`) and, in its metadata, the preset name, the full config as JSON, class names and the
dvis version, so it loads without any other file.
"""
from __future__ import annotations

import dataclasses
import json
import os
import tempfile
from pathlib import Path

import torch

from dvis_cli import __version__
from dvis_cli.classes import ClassSet
from dvis_cli.config import (
    BackboneConfig,
    DecoderConfig,
    DVISConfig,
    InputConfig,
    PixelDecoderConfig,
    RefinerConfig,
    TestConfig,
    TrackerConfig,
)
from dvis_cli.errors import CheckpointError

FORMAT = "dvis-cli"
FORMAT_VERSION = "1"
_SECTIONS = {
    "backbone": BackboneConfig,
    "pixel_decoder": PixelDecoderConfig,
    "decoder": DecoderConfig,
    "tracker": TrackerConfig,
    "refiner": RefinerConfig,
    "input": InputConfig,
    "test": TestConfig,
    "classes": ClassSet,
}


def config_to_dict(config: DVISConfig) -> dict:
    return dataclasses.asdict(config)


def config_from_dict(data: dict) -> DVISConfig:
    kwargs = {}
    for f in dataclasses.fields(DVISConfig):
        value = data.get(f.name)
        section = _SECTIONS.get(f.name)
        if section is not None and isinstance(value, dict):
            names = {sf.name for sf in dataclasses.fields(section)}
            value = section(**{k: tuple(v) if isinstance(v, list) else v for k, v in value.items() if k in names})
        if value is not None or f.name in ("tracker", "refiner"):
            kwargs[f.name] = value
    return DVISConfig(**kwargs)


def atomic_path(dst: Path):
    """A temporary path next to `dst` (same filesystem, so os.replace is atomic)."""
    fd, tmp = tempfile.mkstemp(prefix=f".{dst.name}.", suffix=".part", dir=dst.parent)
    os.close(fd)
    return Path(tmp)


def save_weights(path: str | Path, state_dict: dict[str, torch.Tensor], config: DVISConfig, extra: dict | None = None) -> Path:
    """Write atomically: a temp file in the same folder, then rename."""
    from safetensors.torch import save_file

    path = Path(path)
    if not path.parent.exists():
        raise CheckpointError(f"{path.parent}: no such folder")
    meta = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "dvis_version": __version__,
        "preset": config.name,
        "config": json.dumps(config_to_dict(config)),
        "classes": json.dumps(list(config.classes.names)),
        "stages": ",".join(config.stages),
    }
    meta.update({k: str(v) for k, v in (extra or {}).items()})
    tensors = {k: v.detach().contiguous().cpu() for k, v in state_dict.items()}
    tmp = atomic_path(path)
    try:
        save_file(tensors, str(tmp), metadata=meta)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; a weights file is an ordinary file
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def read_weights(path: str | Path) -> tuple[dict[str, torch.Tensor], DVISConfig, dict[str, str]]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file, safe_open

    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"{path}: no such file")
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
        tensors = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"{path}: not a readable safetensors file: {str(exc).splitlines()[0]}") from None
    if meta.get("format") != FORMAT or "config" not in meta:
        raise CheckpointError(f"{path}: a safetensors file without dvis metadata (convert official weights with `dvis weights convert`)")
    try:
        config = config_from_dict(json.loads(meta["config"]))
    except (TypeError, ValueError, KeyError) as exc:
        raise CheckpointError(f"{path}: corrupt dvis metadata: {exc}") from None
    return tensors, config, meta
