"""Post-processing exactly as the official DVIS code does it.

VIS: softmax over K+1 classes, drop no-object, (offline) element-wise max with the tracker's
probabilities, top-k over all (query, class) pairs; score = class probability only; masks are
upsampled to the padded input, cropped, upsampled to the output size and thresholded at logit > 0.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor


@dataclass
class TopK:
    scores: Tensor  # (k,) float
    labels: Tensor  # (k,) long, contiguous class 0..K-1
    query_ids: Tensor  # (k,) long, track slot / query index


def vis_topk(cls_logits: Tensor, k: int, aux_cls_logits: Tensor | None = None) -> TopK:
    """cls_logits: (Q, K+1) video-level logits. Sorted by score (the official order is unsorted)."""
    scores = F.softmax(cls_logits.float(), dim=-1)[:, :-1]
    if aux_cls_logits is not None:
        scores = torch.maximum(scores, F.softmax(aux_cls_logits.float(), dim=-1)[:, :-1])
    num_classes = scores.shape[1]
    k = min(k, scores.numel())
    top_scores, flat = scores.flatten().topk(k, sorted=True)
    return TopK(top_scores, flat % num_classes, torch.div(flat, num_classes, rounding_mode="floor"))


def masks_to_output(
    mask_logits: Tensor,  # (n, T, h, w) at 1/4 of the padded input
    padded_size: tuple[int, int],
    image_size: tuple[int, int],  # resized, unpadded
    output_size: tuple[int, int],  # the source's (height, width)
) -> Tensor:  # (n, T, H, W) bool
    """The official resize chain: bilinear to the padded size, crop, bilinear to the output, > 0."""
    if mask_logits.shape[0] == 0:
        return torch.zeros((0, mask_logits.shape[1], *output_size), dtype=torch.bool)
    x = F.interpolate(mask_logits.float(), size=padded_size, mode="bilinear", align_corners=False)
    x = x[:, :, : image_size[0], : image_size[1]]
    if tuple(x.shape[-2:]) != tuple(output_size):  # same size: bilinear is the identity
        x = F.interpolate(x, size=output_size, mode="bilinear", align_corners=False)
    return x > 0
