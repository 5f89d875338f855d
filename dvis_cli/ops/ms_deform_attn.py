"""Multi-scale deformable attention: the core sampling op (Deformable DETR, eq. 3).

`ms_deform_attn` is the one entry point the model calls. Its pure-PyTorch implementation,
`ms_deform_attn_pytorch`, is the reference: bilinear sampling with `grid_sample`
(align_corners=False, zero padding), which maps a normalised location x to pixel x*W - 0.5 exactly
as the official CUDA kernel does. Compiled kernels, where available, must give the same numbers.

`ms_deform_attn` checks the inputs, then runs the compiled kernel of `dvis_cli._C` (CPU or CUDA, with
its own backward) when it exists for the inputs' device and dtype, and the reference otherwise; see
`dvis_cli.ops.status` for the rule and `dvis doctor` for what this machine does.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.autograd.function import once_differentiable

from dvis_cli.ops import status
from dvis_cli.ops._ext import load_ext


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


class MSDeformAttnInputError(ValueError):
    """Inputs of `ms_deform_attn` that do not fit together (shapes, dtypes, devices)."""


def _shape(t: torch.Tensor) -> str:
    return "[" + ", ".join(str(s) for s in t.shape) + "]"


def check_inputs(
    value: torch.Tensor,
    spatial_shapes: torch.Tensor,
    level_start_index: torch.Tensor,
    sampling_locations: torch.Tensor,
    attention_weights: torch.Tensor,
) -> None:
    """Raise MSDeformAttnInputError unless the five tensors fit the op's contract (no device sync)."""

    def fail(message: str) -> None:
        raise MSDeformAttnInputError(f"ms_deform_attn: {message}")

    named = {
        "value": value,
        "spatial_shapes": spatial_shapes,
        "level_start_index": level_start_index,
        "sampling_locations": sampling_locations,
        "attention_weights": attention_weights,
    }
    for name, t in named.items():
        if not isinstance(t, torch.Tensor):
            fail(f"{name} must be a tensor, got {type(t).__name__}")
    if value.dim() != 4:
        fail(f"value must be [N, S, M, Dh], got {_shape(value)}")
    if spatial_shapes.dim() != 2 or spatial_shapes.shape[1] != 2:
        fail(f"spatial_shapes must be [L, 2], got {_shape(spatial_shapes)}")
    if sampling_locations.dim() != 6 or sampling_locations.shape[-1] != 2:
        fail(f"sampling_locations must be [N, Lq, M, L, P, 2], got {_shape(sampling_locations)}")
    if attention_weights.dim() != 5:
        fail(f"attention_weights must be [N, Lq, M, L, P], got {_shape(attention_weights)}")
    if not value.is_floating_point():
        fail(f"value must be a floating-point tensor, got {value.dtype}")
    for name in ("sampling_locations", "attention_weights"):
        if named[name].dtype != value.dtype:
            fail(f"{name} has dtype {named[name].dtype} but value has {value.dtype}")
        if named[name].device != value.device:
            fail(f"{name} is on {named[name].device} but value is on {value.device}")
    for name in ("spatial_shapes", "level_start_index"):
        if named[name].is_floating_point() or named[name].is_complex() or named[name].dtype == torch.bool:
            fail(f"{name} must be an integer tensor, got {named[name].dtype}")
    n, _, m, _ = value.shape
    num_levels = spatial_shapes.shape[0]
    if level_start_index.shape != (num_levels,):
        fail(f"level_start_index must be [L] = [{num_levels}], got {_shape(level_start_index)}")
    lq, num_points = sampling_locations.shape[1], sampling_locations.shape[4]
    want = (n, lq, m, num_levels, num_points)
    if tuple(sampling_locations.shape[:5]) != want:
        fail(
            f"sampling_locations is {_shape(sampling_locations)} but value {_shape(value)} and spatial_shapes "
            f"{_shape(spatial_shapes)} need [{n}, Lq, {m}, {num_levels}, P, 2]"
        )
    if tuple(attention_weights.shape) != want:
        fail(f"attention_weights is {_shape(attention_weights)} but sampling_locations needs [{', '.join(map(str, want))}]")


class _MSDeformAttnFunction(torch.autograd.Function):
    """The compiled kernel with its compiled backward (value, sampling locations, attention weights)."""

    @staticmethod
    def forward(ctx, value, spatial_shapes, level_start_index, sampling_locations, attention_weights):
        ext = load_ext().module
        # The kernel reads the level geometry on the value's device, as int64.
        spatial_shapes = spatial_shapes.to(device=value.device, dtype=torch.int64)
        level_start_index = level_start_index.to(device=value.device, dtype=torch.int64)
        value = value.contiguous()
        sampling_locations = sampling_locations.contiguous()
        attention_weights = attention_weights.contiguous()
        output = ext.ms_deform_attn_forward(value, spatial_shapes, level_start_index, sampling_locations, attention_weights)
        ctx.save_for_backward(value, spatial_shapes, level_start_index, sampling_locations, attention_weights)
        return output

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_output):
        value, spatial_shapes, level_start_index, sampling_locations, attention_weights = ctx.saved_tensors
        grad_value, grad_locations, grad_weights = load_ext().module.ms_deform_attn_backward(
            value, spatial_shapes, level_start_index, sampling_locations, attention_weights, grad_output.contiguous()
        )
        return grad_value, None, None, grad_locations, grad_weights


def ms_deform_attn_compiled(
    value: torch.Tensor,
    spatial_shapes: torch.Tensor,
    level_start_index: torch.Tensor,
    sampling_locations: torch.Tensor,
    attention_weights: torch.Tensor,
) -> torch.Tensor:
    """The compiled kernel only (benchmarks, tests); RuntimeError if it cannot run these inputs."""
    check_inputs(value, spatial_shapes, level_start_index, sampling_locations, attention_weights)
    ext = load_ext()
    if not ext.loaded:
        raise RuntimeError(ext.reason)
    return _MSDeformAttnFunction.apply(value, spatial_shapes, level_start_index, sampling_locations, attention_weights)


def ms_deform_attn(
    value: torch.Tensor,
    spatial_shapes: torch.Tensor,
    level_start_index: torch.Tensor,
    sampling_locations: torch.Tensor,
    attention_weights: torch.Tensor,
) -> torch.Tensor:
    """Multi-scale deformable attention; see `ms_deform_attn_pytorch` for shapes.

    Runs the compiled kernel when `dvis_cli.ops.status.choose` allows it for the inputs' device and
    dtype, the pure-PyTorch reference otherwise. Inputs that do not fit together raise
    MSDeformAttnInputError on either path.
    """
    check_inputs(value, spatial_shapes, level_start_index, sampling_locations, attention_weights)
    choice = status.choose(value.device, value.dtype)
    if choice.uses_kernel:
        return _MSDeformAttnFunction.apply(
            value, spatial_shapes, level_start_index, sampling_locations, attention_weights
        )
    status.note_fallback(choice)
    return ms_deform_attn_pytorch(value, spatial_shapes, level_start_index, sampling_locations, attention_weights)
