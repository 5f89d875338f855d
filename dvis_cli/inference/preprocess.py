"""Frames -> model input: the official shortest-edge resize (detectron2 ResizeShortestEdge)."""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


def shortest_edge_size(height: int, width: int, short: int, max_size: int) -> tuple[int, int]:
    """detectron2's rule: scale the shorter side to `short`, cap the longer at `max_size`, round half up."""
    scale = short / min(height, width)
    new_h, new_w = height * scale, width * scale
    if max(new_h, new_w) > max_size:
        scale = max_size / max(new_h, new_w)
        new_h, new_w = new_h * scale, new_w * scale
    return int(new_h + 0.5), int(new_w + 0.5)


def resize_frames(frames: np.ndarray | torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """(T, H, W, 3) uint8 RGB -> (T, 3, h, w) float32 in 0..255, antialiased bilinear as PIL does
    (rounded back to uint8 values, as the official PIL path produces uint8 images)."""
    x = torch.as_tensor(frames).permute(0, 3, 1, 2)
    if tuple(x.shape[-2:]) == tuple(size):
        return x.float()
    y = F.interpolate(x.float(), size=size, mode="bilinear", align_corners=False, antialias=True)
    return y.round_().clamp_(0, 255)
