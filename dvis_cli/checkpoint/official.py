"""Official checkpoints: detectron2 `.pth` / `.pkl` files of DVIS, MinVIS and Mask2Former.

Reading never executes code from the file: `.pth` goes through `torch.load(weights_only=True)`,
`.pkl` through an unpickler that only rebuilds numpy arrays and plain containers. The official key
layout is mapped to ours by a rename table; every key is accounted for.
"""
from __future__ import annotations

import pickle
import re
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

from dvis_cli.classes import CLASS_SETS, ClassSet
from dvis_cli.config import PRESETS, BackboneConfig, DecoderConfig, DVISConfig, get_preset, with_arch
from dvis_cli.errors import CheckpointError

# Official prefix -> ours (longest first).
PREFIX_MAP = (
    ("sem_seg_head.pixel_decoder.", "segmenter.pixel_decoder."),
    ("sem_seg_head.predictor.", "segmenter.decoder."),
    ("backbone.", "segmenter.backbone."),
    ("tracker.", "tracker."),
    ("refiner.", "refiner."),
)
IGNORED_PREFIXES = ("criterion.",)
IGNORED_NAMES = ("pixel_mean", "pixel_std")
IGNORED_SUFFIXES = (".attn_mask", "num_batches_tracked")
SWIN_SIZES = {96: "T", 128: "B", 192: "L"}


@dataclass
class ConversionReport:
    consumed: int = 0
    ignored: list[str] = field(default_factory=list)
    renamed: dict[str, str] = field(default_factory=dict)  # legacy name -> official name


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Rebuilds numpy arrays and builtins only; anything else in the pickle is refused."""

    ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("collections", "OrderedDict"),
        ("builtins", "dict"),
        ("builtins", "list"),
        ("builtins", "tuple"),
    }

    def find_class(self, module: str, name: str):
        if (module, name) in self.ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name} (only numpy arrays are allowed)")


def _read_pkl(path: Path) -> dict:
    with open(path, "rb") as f:
        return _NumpyOnlyUnpickler(f, encoding="latin1").load()


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:160] if text else type(exc).__name__


def _why_refused(exc: BaseException) -> str:
    """torch's weights-only refusal is a paragraph; keep the part naming the offending global."""
    text = str(exc)
    found = re.search(r"(?:GLOBAL|refusing to load) ([\w.]+)", text)
    if found:
        return f"it would run code ({found.group(1)}); only plain tensors and arrays are loaded"
    return _first_line(exc)


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Any supported weights file -> a flat {official key: tensor} dict (no code executed)."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"{path}: no such file")
    if path.is_dir():
        raise CheckpointError(f"{path}: is a folder, not a weights file")
    with open(path, "rb") as f:
        head = f.read(4)
    if not head:
        raise CheckpointError(f"{path}: empty file")
    if not (head.startswith(b"PK") or head[:1] == b"\x80"):
        raise CheckpointError(f"{path}: not a checkpoint (neither a PyTorch zip nor a pickle file)")
    try:
        if head[:1] == b"\x80" and path.suffix.lower() == ".pkl":
            obj = _read_pkl(path)
        else:
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise CheckpointError(f"{path}: refused to load: {_why_refused(exc)}") from None
    except Exception as exc:  # noqa: BLE001 - a file torch cannot parse is a bad file, not a bug
        raise CheckpointError(f"{path}: truncated or corrupt checkpoint ({_first_line(exc)})") from None
    return unwrap_state_dict(obj, path)


def unwrap_state_dict(obj, path: Path | str = "checkpoint") -> dict[str, torch.Tensor]:
    if isinstance(obj, dict) and "model" in obj and isinstance(obj["model"], dict):
        obj = obj["model"]
    elif isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict) or not obj:
        raise CheckpointError(f"{path}: holds no state dict")
    out = {}
    for key, value in obj.items():
        if not isinstance(key, str):
            raise CheckpointError(f"{path}: holds no state dict (non-string key {key!r})")
        if isinstance(value, np.ndarray):
            value = torch.from_numpy(np.ascontiguousarray(value))
        if not isinstance(value, torch.Tensor):
            continue  # e.g. "__author__" strings next to the arrays
        out[key[7:] if key.startswith("module.") else key] = value
    if not out:
        raise CheckpointError(f"{path}: holds no tensors")
    return out


def upgrade_legacy_names(sd: dict[str, torch.Tensor], report: ConversionReport | None = None) -> dict[str, torch.Tensor]:
    """Idempotent renames of names older checkpoints used (see the detectron2 `_version` hooks)."""
    out = {}
    for key, value in sd.items():
        new = key
        if new.startswith("offline_tracker."):
            new = "refiner." + new[len("offline_tracker.") :]
        while new.startswith("sem_seg_head.pixel_decoder.pixel_decoder."):
            new = "sem_seg_head.pixel_decoder." + new[len("sem_seg_head.pixel_decoder.pixel_decoder.") :]
        if new.startswith("sem_seg_head.") and not new.startswith(("sem_seg_head.pixel_decoder.", "sem_seg_head.predictor.")):
            new = "sem_seg_head.pixel_decoder." + new[len("sem_seg_head.") :]
        if new.endswith("static_query.weight"):
            new = new[: -len("static_query.weight")] + "query_feat.weight"
        if new != key and report is not None:
            report.renamed[key] = new
        out[new] = value
    return out


def official_to_ours(sd: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], ConversionReport]:
    """Map official keys to our module names. Unknown keys are an error, not silently dropped."""
    report = ConversionReport()
    sd = upgrade_legacy_names(sd, report)
    ours, unknown = {}, []
    for key, value in sd.items():
        if key.startswith(IGNORED_PREFIXES) or key in IGNORED_NAMES or key.endswith(IGNORED_SUFFIXES):
            report.ignored.append(key)
            continue
        for old, new in PREFIX_MAP:
            if key.startswith(old):
                ours[new + key[len(old) :]] = value
                report.consumed += 1
                break
        else:
            unknown.append(key)
    if unknown:
        raise CheckpointError(
            f"not a DVIS / MinVIS / Mask2Former checkpoint: {len(unknown)} unknown keys, e.g. {', '.join(unknown[:3])}"
        )
    return ours, report


def _class_set_for(num_classes: int) -> ClassSet | None:
    for name in ("ovis", "ytvis19", "vipseg"):  # YTVIS21 has 40 classes too: needs --preset to pick it
        if CLASS_SETS[name].num_classes == num_classes:
            return CLASS_SETS[name]
    return None


def detect_config(ours: dict[str, torch.Tensor], preset: str | None = None) -> DVISConfig:
    """The model a converted state dict describes: from a named preset, or from key names and shapes."""
    cls_key = "segmenter.decoder.class_embed.weight"
    if cls_key not in ours:
        raise CheckpointError("not a DVIS / MinVIS / Mask2Former checkpoint: no segmenter class head (sem_seg_head.predictor.class_embed)")
    num_classes = ours[cls_key].shape[0] - 1
    num_queries = ours["segmenter.decoder.query_feat.weight"].shape[0] if "segmenter.decoder.query_feat.weight" in ours else 100
    arch = "offline" if any(k.startswith("refiner.") for k in ours) else "online" if any(k.startswith("tracker.") for k in ours) else "minvis"
    if "segmenter.backbone.patch_embed.proj.weight" in ours:
        backbone = "swinl"
        embed = ours["segmenter.backbone.patch_embed.proj.weight"].shape[0]
        if embed not in SWIN_SIZES:
            raise CheckpointError(f"unsupported Swin width {embed}")
    elif "segmenter.backbone.stem.conv1.weight" in ours:
        backbone = "r50"
    else:
        raise CheckpointError("not a DVIS / MinVIS / Mask2Former checkpoint: no ResNet stem or Swin patch embedding")

    if preset is not None:
        config = get_preset(preset)
        if config.num_classes != num_classes:
            raise CheckpointError(
                f"class-count mismatch: the checkpoint has {num_classes} classes, preset {config.name} has {config.num_classes}"
            )
        return with_arch(config, arch) if config.arch != arch else config

    classes = _class_set_for(num_classes)
    if classes is None:
        raise CheckpointError(
            f"cannot tell the dataset of a {num_classes}-class checkpoint; pass --preset (e.g. {arch}_{backbone}_ovis) "
            "or convert a checkpoint trained on OVIS, YouTube-VIS or VIPSeg"
        )
    dataset = next(name for name, cs in CLASS_SETS.items() if cs is classes)
    config = PRESETS[f"{arch}_{backbone}_{dataset}"]
    if backbone == "swinl" and ours["segmenter.backbone.patch_embed.proj.weight"].shape[0] != 192:
        raise CheckpointError("Swin-T/S/B checkpoints have no official DVIS preset; pass --preset with a matching config")
    if backbone == "r50":
        res4 = {int(k.split(".")[3]) for k in ours if k.startswith("segmenter.backbone.res4.")}
        if len(res4) == 23:
            config = replace(config, backbone=replace(config.backbone, blocks_per_stage=(3, 4, 23, 3)), name=config.name.replace("r50", "r101"))
    if num_queries != config.decoder.num_queries:
        config = replace(config, decoder=replace(config.decoder, num_queries=num_queries))
    return config
