"""Bipartite matching of predicted queries to ground-truth objects (mask2former.md §2.1,
dvis-official.md §6.3, DVIS paper eq. 3 and 6).

Two matchers, both solving with SciPy's `linear_sum_assignment` on a cost computed in fp32 with
autocast off and no gradient:

- `HungarianMatcher`: one assignment per video over all its frames (the segmenter on 1-frame
  clips, the refiner on whole clips). Costs: -softmax class probability, point-sampled sigmoid BCE
  and dice over the same random points in every frame (T·P values per mask). With
  `flatten_time=True` the official refiner variant is used instead: the T frames stacked into one
  (T·H)×W image per query and per object, read at P·T uniform points.
- `ConsistentMatcher`: the tracker's. Each object is matched once, on the frame where it first
  appears in the clip, using only that frame's prediction; queries already taken by an earlier
  frame are excluded. The (query, object) list then holds for every frame.

Every video of a batch is matched on its own (the official tracker code matched only element 0).
"""
from __future__ import annotations

from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from scipy.optimize import linear_sum_assignment
from torch import Tensor

from dvis_cli.training.point_sampling import per_video_generators, point_sample, sample_masks, uniform_points

__all__ = [
    "ConsistentMatcher",
    "HungarianMatcher",
    "VideoTargets",
    "pairwise_bce_cost",
    "pairwise_dice_cost",
]

Indices = tuple[Tensor, Tensor]  # (query_idx, target_idx), int64, same length


@dataclass
class VideoTargets:
    """Ground truth of one clip, after padding to the batch's padded input size."""

    labels: Tensor  # (N,) long, contiguous class 0..K-1
    masks: Tensor  # (N, T, H, W) float or bool at (padded) input resolution, empty where absent
    present: Tensor  # (N, T) bool

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    @property
    def num_frames(self) -> int:
        return int(self.present.shape[1])

    def to(self, device: torch.device | str) -> VideoTargets:
        return VideoTargets(self.labels.to(device), self.masks.to(device), self.present.to(device))

    def first_frames(self) -> Tensor:
        """(N,) long: the first frame where each object is present, -1 if it never is."""
        present = self.present.bool()
        first = present.to(torch.uint8).argmax(dim=1)
        return torch.where(present.any(dim=1), first, torch.full_like(first, -1))


def _no_autocast(device: torch.device):
    try:
        return torch.autocast(device_type=device.type, enabled=False)
    except RuntimeError:  # a device type without autocast support
        return nullcontext()


def pairwise_bce_cost(pred: Tensor, tgt: Tensor) -> Tensor:
    """Mean sigmoid BCE of every prediction (Q, P) logits against every target (N, P) -> (Q, N)."""
    pos = F.binary_cross_entropy_with_logits(pred, torch.ones_like(pred), reduction="none")
    neg = F.binary_cross_entropy_with_logits(pred, torch.zeros_like(pred), reduction="none")
    return (pos @ tgt.T + neg @ (1.0 - tgt).T) / pred.shape[1]


def pairwise_dice_cost(pred: Tensor, tgt: Tensor) -> Tensor:
    """1 - (2·Σσ(x)t + 1) / (Σσ(x) + Σt + 1) for every pair (Q, P) x (N, P) -> (Q, N)."""
    prob = pred.sigmoid()
    numerator = 2.0 * (prob @ tgt.T)
    denominator = prob.sum(-1)[:, None] + tgt.sum(-1)[None, :]
    return 1.0 - (numerator + 1.0) / (denominator + 1.0)


def _solve(cost: Tensor) -> tuple[np.ndarray, np.ndarray]:
    cost = cost.detach().cpu().numpy()
    return linear_sum_assignment(cost)


def _empty_indices(device: torch.device | str = "cpu") -> Indices:
    empty = torch.zeros(0, dtype=torch.int64, device=device)
    return empty, empty.clone()


class HungarianMatcher:
    """Mask2Former's memory-efficient matcher, video variant (one assignment per clip)."""

    def __init__(
        self,
        cost_class: float = 2.0,
        cost_mask: float = 5.0,
        cost_dice: float = 5.0,
        num_points: int = 12544,
        flatten_time: bool = False,
    ) -> None:
        if cost_class == 0 and cost_mask == 0 and cost_dice == 0:
            raise ValueError("all matching costs are 0")
        self.cost_class = cost_class
        self.cost_mask = cost_mask
        self.cost_dice = cost_dice
        self.num_points = num_points
        self.flatten_time = flatten_time

    def __repr__(self) -> str:
        return (
            f"HungarianMatcher(cost_class={self.cost_class}, cost_mask={self.cost_mask}, "
            f"cost_dice={self.cost_dice}, num_points={self.num_points}, flatten_time={self.flatten_time})"
        )

    def sample_points(
        self, num_frames: int, device: torch.device | str, generator: torch.Generator | None = None
    ) -> Tensor:
        """The shared uniform points of one clip: (1, P, 2), or (1, P·T, 2) over the stacked
        (T·H)×W image when `flatten_time`."""
        n = self.num_points * num_frames if self.flatten_time else self.num_points
        return uniform_points((1, n, 2), device, generator)

    def cost_matrix(
        self,
        pred_logits: Tensor,
        pred_masks: Tensor,
        labels: Tensor,
        tgt_masks: Tensor,
        point_coords: Tensor,
    ) -> Tensor:
        """The (Q, N) fp32 matching cost of one clip at the given points.

        pred_logits (Q, K+1), or (Q, T, K+1) averaged over T; pred_masks (Q, T, h, w) logits;
        labels (N,); tgt_masks (N, T, H, W); point_coords (1, P, 2), or (1, P·T, 2) with
        `flatten_time`, in which case the masks are read as one (T·h)×w / (T·H)×W image each.
        """
        with torch.no_grad(), _no_autocast(pred_masks.device):
            logits = pred_logits.float()
            if logits.dim() == 3:
                logits = logits.mean(dim=1)
            cost_class = -logits.softmax(-1)[:, labels]  # (Q, N)

            q, t, h, w = pred_masks.shape
            n = tgt_masks.shape[0]
            if self.flatten_time:
                pred = pred_masks.reshape(q, 1, t * h, w)  # frames stacked top to bottom
                tgt = tgt_masks.reshape(n, 1, t * tgt_masks.shape[-2], tgt_masks.shape[-1])
            else:
                pred, tgt = pred_masks, tgt_masks  # T as channels: the same points in every frame
            coords = point_coords.float()
            pred_points = point_sample(pred.float(), coords.expand(q, -1, -1)).flatten(1)  # (Q, T·P)
            tgt_points = sample_masks(tgt, coords).flatten(1)  # (N, T·P)

            cost_mask = pairwise_bce_cost(pred_points, tgt_points)
            cost_dice = pairwise_dice_cost(pred_points, tgt_points)
            return self.cost_mask * cost_mask + self.cost_class * cost_class + self.cost_dice * cost_dice

    @torch.no_grad()
    def match(
        self,
        pred_logits: Tensor,
        pred_masks: Tensor,
        targets: VideoTargets,
        generator: torch.Generator | None = None,
    ) -> Indices:
        """Match one clip: pred_logits (Q, K+1) (or (Q, T, K+1), averaged over T), pred_masks
        (Q, T, h, w) -> (query_idx, target_idx) int64 on pred_masks' device, sorted by query."""
        device = pred_masks.device
        if len(targets) == 0:
            return _empty_indices(device)
        coords = self.sample_points(pred_masks.shape[1], device, generator)
        labels = targets.labels.to(device)
        cost = self.cost_matrix(pred_logits, pred_masks, labels, targets.masks.to(device), coords)
        rows, cols = _solve(cost)
        return (
            torch.as_tensor(rows, dtype=torch.int64, device=device),
            torch.as_tensor(cols, dtype=torch.int64, device=device),
        )

    def __call__(
        self,
        outputs: dict[str, Tensor],
        targets: Sequence[VideoTargets],
        generator: torch.Generator | Sequence[torch.Generator | None] | None = None,
    ) -> list[Indices]:
        """Match every video of a batch on its own with `match`. outputs: pred_logits
        (B, T, Q, K+1), pred_masks (B, T, Q, h, w). (`HungarianMatcher` averages the logits over
        T, as the official refiner matching does with the tracker's logits.)"""
        logits, masks = outputs["pred_logits"], outputs["pred_masks"]
        gens = per_video_generators(generator, len(targets))
        return [
            self.match(logits[b].transpose(0, 1), masks[b].transpose(0, 1), targets[b], gens[b])
            for b in range(len(targets))
        ]


class ConsistentMatcher(HungarianMatcher):
    """The tracker's matcher (DVIS eq. 3): each object matched once, on its first present frame,
    with the per-frame (T = 1) Hungarian costs of the parent class."""

    def __init__(
        self,
        cost_class: float = 2.0,
        cost_mask: float = 5.0,
        cost_dice: float = 5.0,
        num_points: int = 12544,
    ) -> None:
        super().__init__(cost_class, cost_mask, cost_dice, num_points, flatten_time=False)

    def __repr__(self) -> str:
        return (
            f"ConsistentMatcher(cost_class={self.cost_class}, cost_mask={self.cost_mask}, "
            f"cost_dice={self.cost_dice}, num_points={self.num_points})"
        )

    @torch.no_grad()
    def match(
        self,
        pred_logits: Tensor,
        pred_masks: Tensor,
        targets: VideoTargets,
        generator: torch.Generator | None = None,
    ) -> Indices:
        """Match one clip: pred_logits (Q, T, K+1) per-frame logits (or (Q, K+1), the same for every
        frame), pred_masks (Q, T, h, w) -> (query_idx, target_idx) int64, sorted by query.

        Frames are visited in order; at frame f the objects first present at f are matched to the
        queries not taken yet, with the class and mask costs of frame f alone (fresh random points
        per visited frame). Objects never present, or left over when the queries run out, stay
        unmatched.
        """
        device = pred_masks.device
        num_queries = pred_masks.shape[0]
        first = targets.first_frames().to(device)
        labels = targets.labels.to(device)
        used = torch.zeros(num_queries, dtype=torch.bool, device=device)
        query_idx: list[Tensor] = []
        target_idx: list[Tensor] = []
        for f in torch.unique(first[first >= 0]).tolist():  # sorted
            objects = torch.nonzero(first == f).flatten()
            free = torch.nonzero(~used).flatten()
            if free.numel() == 0:
                break
            frame_logits = pred_logits[:, f] if pred_logits.dim() == 3 else pred_logits
            coords = self.sample_points(1, device, generator)
            cost = self.cost_matrix(
                frame_logits[free],
                pred_masks[free, f : f + 1],
                labels[objects],
                targets.masks[objects.to(targets.masks.device), f : f + 1].to(device),
                coords,
            )
            rows, cols = _solve(cost)
            q = free[torch.as_tensor(rows, dtype=torch.int64, device=device)]
            used[q] = True
            query_idx.append(q)
            target_idx.append(objects[torch.as_tensor(cols, dtype=torch.int64, device=device)])
        if not query_idx:
            return _empty_indices(device)
        q_all, t_all = torch.cat(query_idx), torch.cat(target_idx)
        order = torch.argsort(q_all)
        return q_all[order], t_all[order]
