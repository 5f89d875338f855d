"""ResNet as detectron2 builds it for Mask2Former: basic stem, bottlenecks with the stride in the
3x3 conv, FrozenBatchNorm everywhere (the official, ImageNet-pretrained backbones). Key names
follow detectron2 (`stem.conv1.norm.*`, `res2.0.shortcut.*`, `res3.1.conv2.*`, ...).

A backbone trained from scratch cannot use frozen statistics (they would be the identity: no
normalisation at all), so `norm="GN"` puts GroupNorm in the same places, as detectron2's
`RESNETS.NORM: "GN"` does, with detectron2's MSRA (He) initialisation of the convolutions.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dvis_cli.model.layers import Conv2d

RESNET_BLOCKS = {50: (3, 4, 6, 3), 101: (3, 4, 23, 3)}
NORMS = ("FrozenBN", "GN")


class FrozenBatchNorm2d(nn.Module):
    """BatchNorm with fixed statistics and affine terms, all held as buffers (not parameters)."""

    def __init__(self, num_features: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.eps = eps
        self.register_buffer("weight", torch.ones(num_features))
        self.register_buffer("bias", torch.zeros(num_features))
        self.register_buffer("running_mean", torch.zeros(num_features))
        self.register_buffer("running_var", torch.ones(num_features) - eps)

    def forward(self, x: Tensor) -> Tensor:
        if x.requires_grad:
            scale = self.weight * (self.running_var + self.eps).rsqrt()
            shift = self.bias - self.running_mean * scale
            return x * scale.view(1, -1, 1, 1).to(x.dtype) + shift.view(1, -1, 1, 1).to(x.dtype)
        return F.batch_norm(
            x, self.running_mean, self.running_var, self.weight, self.bias, training=False, eps=self.eps
        )


def make_norm(kind: str, channels: int, groups: int = 32) -> nn.Module:
    """FrozenBatchNorm2d ("FrozenBN") or GroupNorm ("GN", at most `groups` groups)."""
    if kind == "FrozenBN":
        return FrozenBatchNorm2d(channels)
    if kind == "GN":
        return nn.GroupNorm(math.gcd(groups, channels), channels)
    raise ValueError(f"unknown backbone norm {kind!r}; choose one of {', '.join(NORMS)}")


def _msra_init(conv: nn.Conv2d) -> None:
    """detectron2's c2_msra_fill: He-normal weights (fan out), zero bias."""
    nn.init.kaiming_normal_(conv.weight, mode="fan_out", nonlinearity="relu")
    if conv.bias is not None:
        nn.init.zeros_(conv.bias)


class BasicStem(nn.Module):
    """7x7 stride-2 conv + norm + ReLU, then 3x3 stride-2 max-pool: stride 4."""

    def __init__(self, in_channels: int = 3, out_channels: int = 64, norm: str = "FrozenBN", norm_groups: int = 32) -> None:
        super().__init__()
        self.conv1 = Conv2d(
            in_channels, out_channels, 7, stride=2, padding=3, bias=False,
            norm=make_norm(norm, out_channels, norm_groups), activation=True,
        )
        _msra_init(self.conv1)

    def forward(self, x: Tensor) -> Tensor:
        return F.max_pool2d(self.conv1(x), kernel_size=3, stride=2, padding=1)


class BottleneckBlock(nn.Module):
    """1x1 -> 3x3 (carries the stride) -> 1x1, with a projection shortcut when channels change."""

    def __init__(
        self, in_channels: int, bottleneck_channels: int, out_channels: int, stride: int,
        norm: str = "FrozenBN", norm_groups: int = 32,
    ) -> None:
        super().__init__()

        def nrm(channels: int) -> nn.Module:
            return make_norm(norm, channels, norm_groups)

        self.shortcut = (
            Conv2d(in_channels, out_channels, 1, stride=stride, bias=False, norm=nrm(out_channels))
            if in_channels != out_channels
            else None
        )
        self.conv1 = Conv2d(in_channels, bottleneck_channels, 1, bias=False, norm=nrm(bottleneck_channels), activation=True)
        self.conv2 = Conv2d(
            bottleneck_channels, bottleneck_channels, 3, stride=stride, padding=1, bias=False,
            norm=nrm(bottleneck_channels), activation=True,
        )
        self.conv3 = Conv2d(bottleneck_channels, out_channels, 1, bias=False, norm=nrm(out_channels))
        for conv in (self.shortcut, self.conv1, self.conv2, self.conv3):
            if conv is not None:
                _msra_init(conv)

    def forward(self, x: Tensor) -> Tensor:
        out = self.conv3(self.conv2(self.conv1(x)))
        identity = x if self.shortcut is None else self.shortcut(x)
        return F.relu_(out + identity)


class ResNet(nn.Module):
    """Outputs {"res2": stride 4, "res3": 8, "res4": 16, "res5": 32}."""

    def __init__(
        self,
        blocks_per_stage: tuple[int, int, int, int] = RESNET_BLOCKS[50],
        stem_channels: int = 64,
        bottleneck_channels: int = 64,
        out_channels: int = 256,
        norm: str = "FrozenBN",  # "GN" for a backbone trained from scratch
        norm_groups: int = 32,
    ) -> None:
        super().__init__()
        self.stem = BasicStem(3, stem_channels, norm, norm_groups)
        in_ch, mid, out = stem_channels, bottleneck_channels, out_channels
        self.out_channels: dict[str, int] = {}
        self.out_strides: dict[str, int] = {}
        self.stage_names = []
        for i, n_blocks in enumerate(blocks_per_stage):
            name = f"res{i + 2}"
            first_stride = 1 if i == 0 else 2
            blocks = []
            for b in range(n_blocks):
                blocks.append(BottleneckBlock(in_ch, mid, out, first_stride if b == 0 else 1, norm, norm_groups))
                in_ch = out
            self.add_module(name, nn.Sequential(*blocks))
            self.stage_names.append(name)
            self.out_channels[name] = out
            self.out_strides[name] = 4 * 2**i
            mid, out = mid * 2, out * 2

    def forward(self, x: Tensor) -> dict[str, Tensor]:  # x: (N, 3, H, W)
        x = self.stem(x)
        outputs = {}
        for name in self.stage_names:
            x = getattr(self, name)(x)
            outputs[name] = x
        return outputs
