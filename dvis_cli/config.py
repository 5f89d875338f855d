"""Typed, frozen configuration of every model dvis builds, and the named presets.

A preset name reads `<arch>_<backbone>_<dataset>`: arch in {minvis, online, offline} (MinVIS
segmenter with Hungarian association; DVIS with the referring tracker; DVIS with tracker and
temporal refiner), backbone in {r50, swinl}, dataset in {ovis, ytvis19, ytvis21, vipseg}.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace

from dvis_cli.classes import CLASS_SETS, ClassSet

ARCHS = ("minvis", "online", "offline")
BACKBONES = ("r50", "swinl")
DATASETS = ("ovis", "ytvis19", "ytvis21", "vipseg")


@dataclass(frozen=True)
class BackboneConfig:
    kind: str = "resnet"  # "resnet" | "swin"
    # ResNet (detectron2 layout)
    blocks_per_stage: tuple[int, ...] = (3, 4, 6, 3)
    stem_channels: int = 64
    bottleneck_channels: int = 64
    res2_channels: int = 256
    norm: str = "FrozenBN"  # "FrozenBN" (pretrained, official) | "GN" (trained from scratch)
    norm_groups: int = 32  # GroupNorm groups (at most; fewer where the channels do not divide)
    # Swin (Mask2Former's D2SwinTransformer layout)
    embed_dim: int = 192
    depths: tuple[int, ...] = (2, 2, 18, 2)
    num_heads: tuple[int, ...] = (6, 12, 24, 48)
    window_size: int = 12

    @property
    def out_channels(self) -> dict[str, int]:
        base = self.res2_channels if self.kind == "resnet" else self.embed_dim
        return {f"res{i + 2}": base * 2**i for i in range(4)}


@dataclass(frozen=True)
class PixelDecoderConfig:
    conv_dim: int = 256
    mask_dim: int = 256
    num_groups: int = 32
    encoder_layers: int = 6
    encoder_ffn_dim: int = 1024
    encoder_heads: int = 8
    encoder_points: int = 4


@dataclass(frozen=True)
class DecoderConfig:
    num_queries: int = 100
    hidden_dim: int = 256
    nheads: int = 8
    dim_feedforward: int = 2048
    num_layers: int = 9  # DEC_LAYERS 10 = 1 prediction from the learnable queries + 9 layers


@dataclass(frozen=True)
class TrackerConfig:
    hidden_dim: int = 256
    nheads: int = 8
    dim_feedforward: int = 2048
    num_layers: int = 6
    official_matching: bool = True  # the official DVIS permutation orientation (see tracker.py)


@dataclass(frozen=True)
class RefinerConfig:
    hidden_dim: int = 256
    nheads: int = 8
    dim_feedforward: int = 2048
    num_layers: int = 6
    conv_kernel_sizes: tuple[int, int] = (5, 3)


@dataclass(frozen=True)
class InputConfig:
    min_size_test: int = 360  # shorter side at test time
    max_size_test: int = 1333
    size_divisibility: int = 32
    pixel_mean: tuple[float, float, float] = (123.675, 116.280, 103.530)  # RGB, 0..255
    pixel_std: tuple[float, float, float] = (58.395, 57.120, 57.375)


@dataclass(frozen=True)
class TestConfig:
    task: str = "vis"  # "vis" | "vps"
    max_num: int = 20  # top-k (query, class) pairs kept per video (VIS)
    window_size: int = 3  # frames through segmenter + tracker at a time
    object_mask_threshold: float = 0.8  # VPS
    overlap_threshold: float = 0.8  # VPS


@dataclass(frozen=True)
class DVISConfig:
    name: str
    arch: str  # "minvis" | "online" | "offline"
    dataset: str
    classes: ClassSet
    backbone: BackboneConfig = field(default_factory=BackboneConfig)
    pixel_decoder: PixelDecoderConfig = field(default_factory=PixelDecoderConfig)
    decoder: DecoderConfig = field(default_factory=DecoderConfig)
    tracker: TrackerConfig | None = None
    refiner: RefinerConfig | None = None
    input: InputConfig = field(default_factory=InputConfig)
    test: TestConfig = field(default_factory=TestConfig)

    @property
    def num_classes(self) -> int:
        return self.classes.num_classes

    @property
    def mask_dim(self) -> int:
        return self.pixel_decoder.mask_dim

    @property
    def stages(self) -> tuple[str, ...]:
        return ("segmenter",) + (("tracker",) if self.tracker else ()) + (("refiner",) if self.refiner else ())


R50 = BackboneConfig(kind="resnet", blocks_per_stage=(3, 4, 6, 3))
R101 = BackboneConfig(kind="resnet", blocks_per_stage=(3, 4, 23, 3))
SWIN_L = BackboneConfig(kind="swin", embed_dim=192, depths=(2, 2, 18, 2), num_heads=(6, 12, 24, 48), window_size=12)


def _official(arch: str, backbone: str, dataset: str) -> DVISConfig:
    swin = backbone == "swinl"
    vps = dataset == "vipseg"
    if vps:
        test_size = 720  # the VIPSeg configs are all 720p
    else:
        test_size = 480 if swin else 360
    if arch == "minvis":
        max_num = 10
    else:
        max_num = 20 if dataset == "ovis" else 10
    return DVISConfig(
        name=f"{arch}_{backbone}_{dataset}",
        arch=arch,
        dataset=dataset,
        classes=CLASS_SETS[dataset],
        backbone=SWIN_L if swin else R50,
        decoder=DecoderConfig(num_queries=200 if swin else 100),
        tracker=TrackerConfig() if arch in ("online", "offline") else None,
        refiner=RefinerConfig() if arch == "offline" else None,
        input=InputConfig(min_size_test=test_size),
        test=TestConfig(task="vps" if vps else "vis", max_num=max_num),
    )


def tiny_config(arch: str = "offline", classes: ClassSet | None = None, dataset: str = "synth") -> DVISConfig:
    """A small DVIS for CPU training and the embedded default model: the same architecture,
    narrow (64-wide transformers; a ResNet of 32/128 channels at stride 4 with GroupNorm, as it is
    trained from scratch), shallow (1 block per ResNet stage, 2 encoder / 3 decoder / 3 tracker and
    refiner layers) and with 20 queries."""
    hidden = 64
    return DVISConfig(
        name=f"{arch}_tiny_{dataset}",
        arch=arch,
        dataset=dataset,
        classes=classes or CLASS_SETS["synth"],
        backbone=BackboneConfig(
            kind="resnet", blocks_per_stage=(1, 1, 1, 1), stem_channels=32, bottleneck_channels=32, res2_channels=128,
            norm="GN", norm_groups=8,
        ),
        pixel_decoder=PixelDecoderConfig(conv_dim=hidden, mask_dim=hidden, num_groups=8, encoder_layers=2, encoder_ffn_dim=256, encoder_heads=4, encoder_points=4),
        decoder=DecoderConfig(num_queries=20, hidden_dim=hidden, nheads=4, dim_feedforward=256, num_layers=3),
        tracker=TrackerConfig(hidden_dim=hidden, nheads=4, dim_feedforward=256, num_layers=3) if arch != "minvis" else None,
        refiner=RefinerConfig(hidden_dim=hidden, nheads=4, dim_feedforward=256, num_layers=3) if arch == "offline" else None,
        input=InputConfig(min_size_test=128),  # a model trained at other sizes records its own (test_size)
        test=TestConfig(max_num=10),
    )


PRESETS: dict[str, DVISConfig] = {
    f"{a}_{b}_{d}": _official(a, b, d) for a in ARCHS for b in BACKBONES for d in DATASETS
}
PRESETS.update({f"{a}_tiny_synth": tiny_config(a) for a in ARCHS})


def get_preset(name: str) -> DVISConfig:
    from dvis_cli.errors import DvisError

    key = name.lower().replace("-", "_")
    if key.startswith("dvis_"):
        key = key[5:]
    if key not in PRESETS:
        raise DvisError(f"unknown preset {name!r}; known presets: {', '.join(sorted(PRESETS))}")
    return PRESETS[key]


def with_arch(config: DVISConfig, arch: str) -> DVISConfig:
    """The same model with fewer (or more) stages, e.g. an offline checkpoint run online."""
    return replace(
        config,
        name=config.name.replace(config.arch, arch, 1),
        arch=arch,
        tracker=(config.tracker or _stage_like(TrackerConfig, config)) if arch != "minvis" else None,
        refiner=(config.refiner or _stage_like(RefinerConfig, config)) if arch == "offline" else None,
    )


def _stage_like(cls, config: DVISConfig):
    """A tracker / refiner sized like the segmenter's decoder (as the official configs do)."""
    d = config.decoder
    if config.tracker is not None and cls is RefinerConfig:
        t = config.tracker
        return RefinerConfig(hidden_dim=t.hidden_dim, nheads=t.nheads, dim_feedforward=t.dim_feedforward, num_layers=t.num_layers)
    tiny = d.hidden_dim != 256
    return cls(hidden_dim=d.hidden_dim, nheads=d.nheads, dim_feedforward=d.dim_feedforward, num_layers=3 if tiny else 6)
