"""Training settings: a typed dataclass, loadable from TOML, with `--set key=value` overrides."""
from __future__ import annotations

import dataclasses
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from dvis_cli.errors import InputError

STAGES = ("segmenter", "tracker", "refiner")
# Official clip lengths and frame ranges per stage (dvis-official.md §6.2).
STAGE_DEFAULTS = {
    "segmenter": {"num_frames": 1, "frame_range": 0, "reverse_prob": 0.0},
    "tracker": {"num_frames": 5, "frame_range": 2, "reverse_prob": 0.0},
    "refiner": {"num_frames": 21, "frame_range": 10, "reverse_prob": 0.5},
}


@dataclass
class TrainConfig:
    stage: str = "segmenter"
    data: list[str] = field(default_factory=list)  # dataset folders / jsons, each optionally ":ratio"
    val: str | None = None  # a YTVIS-format dataset with ground truth for periodic validation AP
    preset: str | None = None  # model for a segmenter trained from scratch (default: tiny)
    from_weights: str | None = None  # weights to start from (the previous stage's output)
    iters: int = 20000
    batch: int = 8  # videos per iteration, over all processes
    lr: float = 1e-4
    # Backbone LR = lr x this. Default: 0.1 for a pretrained backbone (the official recipe), 1.0 for
    # a segmenter trained from scratch (a backbone learning at a tenth of the rate barely moves).
    backbone_lr_multiplier: float | None = None
    weight_decay: float = 0.05
    clip_grad: float = 0.01  # full-model gradient L2 norm (official CLIP_VALUE)
    warmup_iters: int = 10
    warmup_factor: float = 1.0
    steps: list[float] = field(default_factory=lambda: [0.7])  # LR x gamma at these fractions of iters
    gamma: float = 0.1
    amp: str = "none"  # none | fp16 | bf16
    seed: int = 42
    workers: int = 0
    num_frames: int | None = None
    frame_range: int | None = None
    reverse_prob: float | None = None
    min_sizes: list[int] = field(default_factory=lambda: [240, 360, 480])
    max_size: int = 1333
    # Shorter side the exported weights record as their test size (0: keep the model's); a model
    # trained at larger sizes than its preset's test size should be run at a matching one.
    test_size: int = 0
    crop: bool = False
    flip: bool = True
    num_points: int = 12544
    # Start the new stage's heads (decoder_norm, class_embed, mask_embed) from the previous stage's
    # trained ones instead of random (not in the official recipe; helps short CPU trainings).
    init_heads: bool = False
    eval_every: int = 0  # iterations between validations (0: only at the end)
    eval_videos: int = 0  # validate on at most this many videos (0: all)
    checkpoint_every: int = 500
    log_every: int = 10
    device: str = "auto"
    out: str = "runs/train"
    name: str = "exp"

    @property
    def from_scratch(self) -> bool:
        """A segmenter with no starting weights: every stage after it starts from the previous one."""
        return self.stage == "segmenter" and self.from_weights is None

    def backbone_lr(self) -> float:
        """The backbone LR multiplier in effect (see `backbone_lr_multiplier`)."""
        if self.backbone_lr_multiplier is not None:
            return self.backbone_lr_multiplier
        return 1.0 if self.from_scratch else 0.1

    def stage_value(self, key: str):
        value = getattr(self, key)
        return STAGE_DEFAULTS[self.stage][key] if value is None else value

    def validate(self) -> None:
        if self.stage not in STAGES:
            raise InputError(f"unknown stage {self.stage!r}; choose {', '.join(STAGES)}")
        if not self.data:
            raise InputError("no training data: pass --data DATASET (a folder with annotations.json, or a YTVIS json)")
        if self.iters < 1 or self.batch < 1:
            raise InputError("--iters and --batch must be at least 1")
        if self.amp not in ("none", "fp16", "bf16"):
            raise InputError(f"--amp {self.amp!r}: use none, fp16 or bf16")
        if self.test_size < 0:
            raise InputError(f"test_size must be 0 (keep the model's) or a shorter side in pixels, got {self.test_size}")


def _coerce(name: str, value, target):
    kind = type(target)
    try:
        if isinstance(target, bool) or field_type(name) == "bool":
            if isinstance(value, str):
                if value.lower() in ("1", "true", "yes", "on"):
                    return True
                if value.lower() in ("0", "false", "no", "off"):
                    return False
                raise ValueError(value)
            return bool(value)
        if isinstance(target, list):
            items = value if isinstance(value, list) else [v for v in str(value).split(",") if v]
            inner = type(target[0]) if target else str
            return [inner(v) for v in items]
        if target is None:
            ftype = field_type(name)
            if "int" in ftype and not isinstance(value, int):
                return int(value)
            if "float" in ftype and not isinstance(value, float):
                return float(value)
            return value
        return kind(value)
    except (TypeError, ValueError):
        raise InputError(f"setting {name}: cannot use {value!r} (expected {field_type(name)})") from None


def field_type(name: str) -> str:
    return str({f.name: f.type for f in dataclasses.fields(TrainConfig)}[name])


def apply_overrides(config: TrainConfig, values: dict) -> TrainConfig:
    names = {f.name for f in dataclasses.fields(TrainConfig)}
    for key, value in values.items():
        key = key.replace("-", "_")
        if key == "from":
            key = "from_weights"
        if key not in names:
            raise InputError(f"unknown setting {key!r}; known: {', '.join(sorted(names))}")
        setattr(config, key, _coerce(key, value, getattr(config, key)))
    return config


def load_toml(path: str | Path) -> dict:
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: no such config file")
    try:
        data = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"{path}: not valid TOML ({exc})") from None
    return data.get("train", data)


def parse_sets(items: list[str]) -> dict:
    out = {}
    for item in items:
        if "=" not in item:
            raise InputError(f"--set {item!r}: expected key=value")
        key, value = item.split("=", 1)
        out[key.strip()] = value.strip()
    return out


def to_toml(config: TrainConfig) -> str:
    lines = ["[train]"]
    for f in dataclasses.fields(TrainConfig):
        value = getattr(config, f.name)
        if value is None:
            continue
        if isinstance(value, bool):
            text = "true" if value else "false"
        elif isinstance(value, (int, float)):
            text = repr(value)
        elif isinstance(value, list):
            text = "[" + ", ".join(repr(v) if not isinstance(v, str) else f'"{v}"' for v in value) + "]"
        else:
            text = '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'
        lines.append(f"{f.name} = {text}")
    return "\n".join(lines) + "\n"
