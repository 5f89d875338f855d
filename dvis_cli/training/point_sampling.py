"""Point sampling for the matching costs and mask losses (Mask2Former / PointRend style).

Losses never resize masks: predictions (1/4 resolution) and targets (input resolution) are both
read at the same points given in normalised [0, 1] coordinates, (x, y) order.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "per_video_generators",
    "point_sample",
    "sample_masks",
    "seeded_generators",
    "uncertain_point_coords",
    "uniform_points",
]

_CHUNK_ELEMENTS = 1 << 26  # float32 values converted at once by sample_masks (256 MiB)



def point_sample(input: Tensor, coords: Tensor) -> Tensor:
    """Bilinear read of `input` (N, C, H, W) at `coords` (N, P, 2) in [0, 1], (x, y) -> (N, C, P).

    `grid_sample` of 2·coords - 1 with zero padding and align_corners=False, so coordinate 0 is the
    outer edge of the first pixel and points within half a pixel of the border blend with zeros.
    """
    grid = (2.0 * coords - 1.0).unsqueeze(2)  # (N, P, 1, 2)
    out = F.grid_sample(input, grid.to(input.dtype), mode="bilinear", padding_mode="zeros", align_corners=False)
    return out.squeeze(3)  # (N, C, P)


def sample_masks(masks: Tensor, coords: Tensor) -> Tensor:
    """point_sample of bool or float masks (N, C, H, W) -> (N, C, P) float32.

    coords (N, P, 2): each mask at its own points, or (1, P, 2): the same points for all. Target
    masks are at input resolution (a 21-frame 720p clip is ~20 M values per object), so they are
    converted to float a few at a time.
    """
    n = masks.shape[0]
    if n == 0:
        return torch.zeros((0, masks.shape[1], coords.shape[1]), dtype=torch.float32, device=masks.device)
    per_mask = max(1, masks[0].numel())
    chunk = max(1, _CHUNK_ELEMENTS // per_mask)
    coords = coords.float()
    out = []
    for start in range(0, n, chunk):
        part = masks[start : start + chunk].float()
        c = coords.expand(part.shape[0], -1, -1) if coords.shape[0] == 1 else coords[start : start + chunk]
        out.append(point_sample(part, c))
    return torch.cat(out, dim=0)


def uniform_points(
    shape: tuple[int, ...], device: torch.device | str, generator: torch.Generator | None = None
) -> Tensor:
    """Uniform float32 numbers in [0, 1) of `shape` on `device`.

    A generator is used on its own device and the result moved, so a CPU generator (cheap to seed
    per video) also drives CUDA tensors.
    """
    if generator is None:
        return torch.rand(shape, device=device)
    return torch.rand(shape, generator=generator, device=generator.device).to(device)


@torch.no_grad()
def uncertain_point_coords(
    logits: Tensor,
    num_points: int,
    oversample_ratio: float = 3.0,
    importance_ratio: float = 0.75,
    generator: torch.Generator | None = None,
) -> Tensor:
    """PointRend importance sampling on class-agnostic mask logits (N, 1, H, W) -> (N, num_points, 2).

    Draw int(num_points·oversample_ratio) uniform candidates per mask, keep the
    int(importance_ratio·num_points) most uncertain ones (uncertainty = -|logit|), and append
    num_points minus that many fresh uniform points.
    """
    if oversample_ratio < 1.0 or not 0.0 <= importance_ratio <= 1.0:
        raise ValueError("need oversample_ratio >= 1 and 0 <= importance_ratio <= 1")
    n = logits.shape[0]
    device = logits.device
    num_sampled = int(num_points * oversample_ratio)
    num_uncertain = int(importance_ratio * num_points)
    num_random = num_points - num_uncertain
    parts = []
    if num_uncertain > 0:
        candidates = uniform_points((n, num_sampled, 2), device, generator)
        uncertainty = -point_sample(logits.float(), candidates)[:, 0].abs()  # (N, S)
        top = torch.topk(uncertainty, k=num_uncertain, dim=1).indices  # (N, U)
        parts.append(torch.gather(candidates, 1, top.unsqueeze(-1).expand(-1, -1, 2)))
    if num_random > 0:
        parts.append(uniform_points((n, num_random, 2), device, generator))
    return torch.cat(parts, dim=1)


def seeded_generators(seeds: Sequence[int], device: torch.device | str = "cpu") -> list[torch.Generator]:
    """One generator per video, seeded from `seeds`: the random points a video gets then depend
    only on its own seed, not on the other videos of the batch (batch of 2 == two batches of 1)."""
    gens = []
    for seed in seeds:
        g = torch.Generator(device=device)
        g.manual_seed(int(seed))
        gens.append(g)
    return gens


def per_video_generators(
    generator: torch.Generator | Sequence[torch.Generator | None] | None, batch_size: int
) -> list[torch.Generator | None]:
    """Normalise a `generator` argument to one entry per video.

    None -> the global RNG for every video; one Generator -> shared by every video, drawn in batch
    order (deterministic, but a video's points then depend on its position in the batch); a
    sequence -> one generator per video (batch independent).
    """
    if generator is None or isinstance(generator, torch.Generator):
        return [generator] * batch_size
    gens = list(generator)
    if len(gens) != batch_size:
        raise ValueError(f"got {len(gens)} generators for a batch of {batch_size} videos")
    return gens
