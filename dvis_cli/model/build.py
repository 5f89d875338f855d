"""Factories: a model from a config (SAM-style: explicit arguments, no registry)."""
from __future__ import annotations

from torch import nn

from dvis_cli.config import BackboneConfig, DVISConfig
from dvis_cli.model.backbone.resnet import ResNet
from dvis_cli.model.dvis import DVIS
from dvis_cli.model.mask_decoder import MaskedTransformerDecoder
from dvis_cli.model.pixel_decoder import MSDeformAttnPixelDecoder
from dvis_cli.model.refiner import TemporalRefiner
from dvis_cli.model.segmenter import Mask2Former
from dvis_cli.model.tracker import ReferringTracker


def build_backbone(cfg: BackboneConfig) -> nn.Module:
    if cfg.kind == "resnet":
        return ResNet(cfg.blocks_per_stage, cfg.stem_channels, cfg.bottleneck_channels, cfg.res2_channels, cfg.norm, cfg.norm_groups)
    if cfg.kind == "swin":
        from dvis_cli.model.backbone.swin import SwinTransformer

        return SwinTransformer(
            embed_dim=cfg.embed_dim, depths=tuple(cfg.depths), num_heads=tuple(cfg.num_heads), window_size=cfg.window_size
        )
    raise ValueError(f"unknown backbone kind {cfg.kind!r}")


def build_segmenter(config: DVISConfig) -> Mask2Former:
    backbone = build_backbone(config.backbone)
    pd = config.pixel_decoder
    pixel_decoder = MSDeformAttnPixelDecoder(
        in_channels=config.backbone.out_channels,
        in_strides={f"res{i + 2}": 4 * 2**i for i in range(4)},
        conv_dim=pd.conv_dim,
        mask_dim=pd.mask_dim,
        num_groups=pd.num_groups,
        encoder_layers=pd.encoder_layers,
        encoder_ffn_dim=pd.encoder_ffn_dim,
        encoder_heads=pd.encoder_heads,
        encoder_points=pd.encoder_points,
    )
    dec = config.decoder
    decoder = MaskedTransformerDecoder(
        num_classes=config.num_classes,
        num_queries=dec.num_queries,
        hidden_dim=dec.hidden_dim,
        nheads=dec.nheads,
        dim_feedforward=dec.dim_feedforward,
        num_layers=dec.num_layers,
        mask_dim=pd.mask_dim,
    )
    return Mask2Former(backbone, pixel_decoder, decoder)


def build_dvis(config: DVISConfig) -> DVIS:
    tracker = refiner = None
    if config.tracker is not None:
        t = config.tracker
        tracker = ReferringTracker(
            config.num_classes, t.hidden_dim, t.nheads, t.dim_feedforward, t.num_layers, config.mask_dim, t.official_matching
        )
    if config.refiner is not None:
        r = config.refiner
        refiner = TemporalRefiner(
            config.num_classes, r.hidden_dim, r.nheads, r.dim_feedforward, r.num_layers, config.mask_dim, r.conv_kernel_sizes
        )
    return DVIS(config, build_segmenter(config), tracker, refiner)
