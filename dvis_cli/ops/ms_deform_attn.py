"""Multi-scale deformable attention: the core sampling op (Deformable DETR, eq. 3).

`ms_deform_attn` is the one entry point the model calls. Its pure-PyTorch implementation,
`ms_deform_attn_pytorch`, is the reference: bilinear sampling with `grid_sample`
(align_corners=False, zero padding), which maps a normalised location x to pixel x*W - 0.5 exactly
as the official CUDA kernel does. Compiled kernels, where available, must give the same numbers.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def ms_deform_attn_pytorch(
    value: torch.Tensor,  # (N, S, M, Dh), S = sum of H_l * W_l
    spatial_shapes: torch.Tensor,  # (L, 2) int64, (H, W) per level
    level_start_index: torch.Tensor,  # (L,) int64
    sampling_locations: torch.Tensor,  # (N, Lq, M, L, P, 2), (x, y) in [0, 1]
    attention_weights: torch.Tensor,  # (N, Lq, M, L, P), softmaxed over L*P
) -> torch.Tensor:  # (N, Lq, M*Dh)
    n, _, m, dh = value.shape
    _, lq, _, num_levels, num_points, _ = sampling_locations.shape
    shapes = [(int(h), int(w)) for h, w in spatial_shapes.tolist()]
    values = value.split([h * w for h, w in shapes], dim=1)
    grids = 2.0 * sampling_locations - 1.0
    sampled = []
    for level, (h, w) in enumerate(shapes):
        # (N, H*W, M, Dh) -> (N*M, Dh, H, W)
        v = values[level].flatten(2).transpose(1, 2).reshape(n * m, dh, h, w)
        # (N, Lq, M, P, 2) -> (N*M, Lq, P, 2)
        g = grids[:, :, :, level].transpose(1, 2).flatten(0, 1)
        # (N*M, Dh, Lq, P)
        sampled.append(F.grid_sample(v, g, mode="bilinear", padding_mode="zeros", align_corners=False))
    # (N, Lq, M, L, P) -> (N*M, 1, Lq, L*P)
    weights = attention_weights.transpose(1, 2).reshape(n * m, 1, lq, num_levels * num_points)
    out = (torch.stack(sampled, dim=-2).flatten(-2) * weights).sum(-1)  # (N*M, Dh, Lq)
    return out.view(n, m * dh, lq).transpose(1, 2).contiguous()


def ms_deform_attn(
    value: torch.Tensor,
    spatial_shapes: torch.Tensor,
    level_start_index: torch.Tensor,
    sampling_locations: torch.Tensor,
    attention_weights: torch.Tensor,
) -> torch.Tensor:
    """Multi-scale deformable attention; see `ms_deform_attn_pytorch` for shapes."""
    return ms_deform_attn_pytorch(value, spatial_shapes, level_start_index, sampling_locations, attention_weights)
