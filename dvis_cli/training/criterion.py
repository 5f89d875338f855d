"""Set-prediction losses of the three DVIS stages (mask2former.md §2.2, dvis-official.md §6.3,
DVIS paper eq. 4 and 7).

`SetCriterion` takes predictions in the shared layout — pred_logits (B, T, Q, K+1), pred_masks
(B, T, Q, h, w) mask logits at 1/4 resolution, plus `aux_outputs` for the earlier decoder layers —
and one `VideoTargets` per video at input resolution. Nothing is resized: mask losses read
predictions and targets at the same normalised points.

Per-frame supervision (`per_frame=True`: segmenter, tracker). Every (video, frame) is one item, as
the official code flattens outputs and targets to B·T frames: the class target of a matched query
in frame t is its object's class where the object is present and K (no-object) where it is absent;
its mask target in frame t is the object's mask there (empty where absent). Normalisation follows
the official flattening (`frame_reduction="mean"`): cross-entropy is the weighted mean over all
B·T·Q (frame, query) pairs and num_masks counts every object once per frame, so the mask losses are
eq. 4 divided by T. `frame_reduction="sum"` gives eq. 4 literally: per-frame cross-entropies
summed over frames, num_masks = objects.

Video supervision (`per_frame=False`: refiner). One class per query for the clip (the time-mean of
pred_logits, which for the refiner are the same in every frame), target = the object's class. The
official data mapper takes the clip's class from the LAST sampled frame, so an object absent there
gets K for the whole clip; `last_frame_label_quirk=True` reproduces that (matching included), the
default is the object's class. Mask losses run per (object, frame) item and are divided by the
number of objects, as the official VideoSetCriterion does.

Random points come from `generator`: None (global RNG), one torch.Generator, or one per video
(`seeded_generators(seeds)`); with one per video every video draws its own points, in the same
order whatever else is in the batch, so a batch of 2 equals the combination of two batches of 1.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor, nn

from dvis_cli.training.matcher import ConsistentMatcher, HungarianMatcher, Indices, VideoTargets
from dvis_cli.training.point_sampling import (
    per_video_generators,
    point_sample,
    sample_masks,
    uncertain_point_coords,
)

__all__ = [
    "DEFAULT_WEIGHTS",
    "SetCriterion",
    "frames_as_images",
    "matching_phase",
    "point_bce_loss",
    "point_dice_loss",
]

DEFAULT_WEIGHTS = {"loss_ce": 2.0, "loss_mask": 5.0, "loss_dice": 5.0}
GeneratorArg = torch.Generator | Sequence[torch.Generator | None] | None


def matching_phase(iteration: int, max_iter: int) -> str:
    """"predecessor" (match on the frozen segmenter's / tracker's predictions) during the first
    half of training, "own" afterwards (DVIS eq. 3 and 6: Iter < Max_Iter // 2)."""
    return "predecessor" if iteration < max_iter // 2 else "own"


def point_bce_loss(logits: Tensor, labels: Tensor) -> Tensor:
    """Sigmoid BCE per mask, mean over its points: (n, P), (n, P) -> (n,)."""
    return F.binary_cross_entropy_with_logits(logits, labels, reduction="none").mean(1)


def point_dice_loss(logits: Tensor, labels: Tensor) -> Tensor:
    """1 - (2Σpt + 1) / (Σp + Σt + 1) per mask, p = sigmoid: (n, P), (n, P) -> (n,)."""
    prob = logits.sigmoid()
    numerator = 2.0 * (prob * labels).sum(-1)
    denominator = prob.sum(-1) + labels.sum(-1)
    return 1.0 - (numerator + 1.0) / (denominator + 1.0)


def frames_as_images(
    outputs: Mapping[str, object], targets: Sequence[VideoTargets]
) -> tuple[dict[str, object], list[VideoTargets]]:
    """MinVIS-style segmenter training: every frame of every clip becomes a 1-frame clip whose
    targets are only the objects present in it. (B, T, Q, ...) -> (B·T, 1, Q, ...), aux too.
    Use with `HungarianMatcher` and `SetCriterion(per_frame=True)`."""

    def reshape(out: Mapping[str, object]) -> dict[str, object]:
        new: dict[str, object] = {}
        for key, value in out.items():
            if key == "aux_outputs":
                new[key] = [reshape(a) for a in value]  # type: ignore[union-attr]
            elif key in ("pred_logits", "pred_masks"):
                v = value  # type: ignore[assignment]
                new[key] = v.flatten(0, 1).unsqueeze(1)  # type: ignore[union-attr]
            else:
                new[key] = value
        return new

    frames: list[VideoTargets] = []
    for tgt in targets:
        for t in range(tgt.num_frames):
            keep = tgt.present[:, t].bool()
            frames.append(
                VideoTargets(
                    tgt.labels[keep],
                    tgt.masks[keep.to(tgt.masks.device), t : t + 1],
                    tgt.present[keep, t : t + 1],
                )
            )
    return reshape(outputs), frames


class SetCriterion(nn.Module):
    """Hungarian-matched CE + point-sampled mask BCE + dice, with deep supervision."""

    def __init__(
        self,
        num_classes: int,
        matcher: HungarianMatcher | ConsistentMatcher,
        weight_dict: Mapping[str, float] | None = None,
        eos_coef: float = 0.1,
        num_points: int = 12544,
        oversample_ratio: float = 3.0,
        importance_ratio: float = 0.75,
        per_frame: bool = True,
        *,
        last_frame_label_quirk: bool = False,
        frame_reduction: str = "mean",
    ) -> None:
        super().__init__()
        if frame_reduction not in ("mean", "sum"):
            raise ValueError(f"frame_reduction must be 'mean' or 'sum', not {frame_reduction!r}")
        self.num_classes = num_classes
        self.matcher = matcher
        self.weight_dict = dict(DEFAULT_WEIGHTS if weight_dict is None else weight_dict)
        self.eos_coef = eos_coef
        self.num_points = num_points
        self.oversample_ratio = oversample_ratio
        self.importance_ratio = importance_ratio
        self.per_frame = per_frame
        self.last_frame_label_quirk = last_frame_label_quirk
        self.frame_reduction = frame_reduction
        empty_weight = torch.ones(num_classes + 1)
        empty_weight[-1] = eos_coef
        self.register_buffer("empty_weight", empty_weight)  # persistent: criterion.empty_weight (K+1)

    def extra_repr(self) -> str:
        return (
            f"num_classes={self.num_classes}, eos_coef={self.eos_coef}, num_points={self.num_points}, "
            f"per_frame={self.per_frame}, frame_reduction={self.frame_reduction!r}, "
            f"last_frame_label_quirk={self.last_frame_label_quirk}"
        )

    # ---------------------------------------------------------------- targets and matching

    def prepare_targets(self, targets: Sequence[VideoTargets]) -> list[VideoTargets]:
        """The targets the losses and matching see: with `last_frame_label_quirk` (video
        supervision only) objects absent in the last frame get label K."""
        if self.per_frame or not self.last_frame_label_quirk:
            return list(targets)
        out = []
        for tgt in targets:
            last = tgt.present[:, -1].bool().to(tgt.labels.device)
            labels = torch.where(last, tgt.labels, torch.full_like(tgt.labels, self.num_classes))
            out.append(VideoTargets(labels, tgt.masks, tgt.present))
        return out

    def match(
        self, outputs: Mapping[str, Tensor], targets: Sequence[VideoTargets], generator: GeneratorArg = None
    ) -> list[Indices]:
        """Per-video (query_idx, target_idx) for `outputs` (e.g. the frozen predecessor's
        predictions, to pass as `indices` during the "predecessor" phase)."""
        gens = per_video_generators(generator, len(targets))
        return self.matcher(outputs, self.prepare_targets(targets), gens)

    def num_masks(self, targets: Sequence[VideoTargets], device: torch.device | str = "cpu") -> float:
        """Objects in the batch (× frames for per-frame supervision with frame_reduction "mean"),
        averaged over ranks, at least 1."""
        frames = self.per_frame and self.frame_reduction == "mean"
        n = sum(len(t) * (t.num_frames if frames else 1) for t in targets)
        total = torch.as_tensor([float(n)], dtype=torch.float32, device=device)
        if dist.is_available() and dist.is_initialized():
            dist.all_reduce(total)
            total = total / dist.get_world_size()
        return float(total.clamp(min=1.0).item())

    def class_targets(
        self, outputs: Mapping[str, Tensor], targets: Sequence[VideoTargets], indices: Sequence[Indices]
    ) -> Tensor:
        """(B, T, Q) per-frame or (B, Q) video class targets; unmatched queries get K. `targets`
        as returned by `prepare_targets`."""
        logits = outputs["pred_logits"]
        b_size, t_size, q_size = logits.shape[:3]
        device = logits.device
        k = self.num_classes
        if self.per_frame:
            classes = torch.full((b_size, t_size, q_size), k, dtype=torch.int64, device=device)
        else:
            classes = torch.full((b_size, q_size), k, dtype=torch.int64, device=device)
        for b, (q, i) in enumerate(indices):
            if q.numel() == 0:
                continue
            q, i = q.to(device), i.to(device)
            labels = targets[b].labels.to(device)[i]  # (M,)
            if self.per_frame:
                present = targets[b].present.to(device)[i].bool().T  # (T, M)
                absent = torch.full_like(present, k, dtype=torch.int64)
                classes[b][:, q] = torch.where(present, labels.expand_as(present), absent)
            else:
                classes[b, q] = labels
        return classes

    # ---------------------------------------------------------------- losses

    def loss_labels(
        self, outputs: Mapping[str, Tensor], targets: Sequence[VideoTargets], indices: Sequence[Indices]
    ) -> Tensor:
        logits = outputs["pred_logits"].float()  # (B, T, Q, K+1)
        classes = self.class_targets(outputs, targets, indices)
        weight = self.empty_weight.to(logits.device)
        # Each video's weighted mean, then the mean over videos: what the official recipe (one video
        # per GPU, gradients averaged over GPUs) computes, so B videos in one process give the same
        # loss as B processes of one video each.
        per_video = []
        for b in range(logits.shape[0]):
            if not self.per_frame:
                per_video.append(F.cross_entropy(logits[b].mean(0), classes[b], weight=weight))
            elif self.frame_reduction == "mean":
                per_video.append(F.cross_entropy(logits[b].flatten(0, 1), classes[b].flatten(), weight=weight))
            else:
                per_video.append(sum(F.cross_entropy(logits[b, t], classes[b, t], weight=weight) for t in range(logits.shape[1])))
        return torch.stack(per_video).mean()

    def loss_masks(
        self,
        outputs: Mapping[str, Tensor],
        targets: Sequence[VideoTargets],
        indices: Sequence[Indices],
        num_masks: float,
        generators: Sequence[torch.Generator | None],
    ) -> tuple[Tensor, Tensor]:
        """Point-sampled BCE and dice, summed over the matched (object, frame) items / num_masks.
        Points per item by importance sampling on the prediction, drawn with the video's own
        generator."""
        pred_masks = outputs["pred_masks"]  # (B, T, Q, h, w)
        device = pred_masks.device
        logits_all, labels_all = [], []
        for b, (q, i) in enumerate(indices):
            if q.numel() == 0:
                continue
            src = pred_masks[b][:, q.to(device)].transpose(0, 1).flatten(0, 1).unsqueeze(1)  # (M·T, 1, h, w)
            tgt = targets[b]
            i_m = i.to(tgt.masks.device)
            with torch.no_grad():
                coords = uncertain_point_coords(
                    src.detach(), self.num_points, self.oversample_ratio, self.importance_ratio, generators[b]
                )  # (M·T, P, 2)
                tgt_masks = tgt.masks[i_m].flatten(0, 1).unsqueeze(1).to(device)  # (M·T, 1, H, W)
                labels = sample_masks(tgt_masks, coords)[:, 0]  # (M·T, P)
                present = tgt.present[i.to(tgt.present.device)].flatten().to(device)
                labels = labels * present.bool().unsqueeze(1)  # empty where absent, whatever the masks say
            logits_all.append(point_sample(src.float(), coords)[:, 0])
            labels_all.append(labels)
        if not logits_all:
            zero = pred_masks.sum() * 0.0
            return zero, zero.clone()
        logits = torch.cat(logits_all)
        labels = torch.cat(labels_all)
        loss_mask = point_bce_loss(logits, labels).sum() / num_masks
        loss_dice = point_dice_loss(logits, labels).sum() / num_masks
        return loss_mask, loss_dice

    def layer_losses(
        self,
        outputs: Mapping[str, Tensor],
        targets: Sequence[VideoTargets],
        indices: Sequence[Indices],
        num_masks: float,
        generators: Sequence[torch.Generator | None],
    ) -> dict[str, Tensor]:
        loss_mask, loss_dice = self.loss_masks(outputs, targets, indices, num_masks, generators)
        return {"loss_ce": self.loss_labels(outputs, targets, indices), "loss_mask": loss_mask, "loss_dice": loss_dice}

    def unweighted_losses(
        self,
        outputs: Mapping[str, object],
        targets: Sequence[VideoTargets],
        indices: Sequence[Indices] | None = None,
        generator: GeneratorArg = None,
    ) -> dict[str, Tensor]:
        """loss_ce / loss_mask / loss_dice for the final layer and `_0`.. for `aux_outputs`.

        With `indices` (per video, for the prepared targets) every layer reuses them; otherwise
        each layer is matched on its own output. Per video, random draws happen in the order
        match(final), loss(final), match(aux 0), loss(aux 0), ...
        """
        pred_logits: Tensor = outputs["pred_logits"]  # type: ignore[assignment]
        if len(targets) != pred_logits.shape[0]:
            raise ValueError(f"{len(targets)} targets for a batch of {pred_logits.shape[0]} videos")
        gens = per_video_generators(generator, len(targets))
        prepared = self.prepare_targets(targets)
        num_masks = self.num_masks(prepared, pred_logits.device)
        aux: list[Mapping[str, Tensor]] = list(outputs.get("aux_outputs") or [])  # type: ignore[call-overload]
        layers = [("", outputs)] + [(f"_{n}", layer) for n, layer in enumerate(aux)]
        losses: dict[str, Tensor] = {}
        for suffix, out in layers:
            layer_indices = indices if indices is not None else self.matcher(out, prepared, gens)  # type: ignore[arg-type]
            layer_losses = self.layer_losses(out, prepared, layer_indices, num_masks, gens)  # type: ignore[arg-type]
            for name, value in layer_losses.items():
                losses[name + suffix] = value
        return losses

    def loss_weight(self, name: str) -> float | None:
        """The weight of a (possibly suffixed) loss: an exact entry of weight_dict, else the
        entry of its base name, else None (the loss is dropped)."""
        if name in self.weight_dict:
            return self.weight_dict[name]
        base, _, suffix = name.rpartition("_")
        if suffix.isdigit() and base in self.weight_dict:
            return self.weight_dict[base]
        return None

    def forward(
        self,
        outputs: Mapping[str, object],
        targets: Sequence[VideoTargets],
        indices: Sequence[Indices] | None = None,
        generator: GeneratorArg = None,
    ) -> dict[str, Tensor]:
        """Weighted losses (each multiplied by its weight_dict entry; unweighted names dropped).
        Their sum is the training loss."""
        losses = {}
        for name, value in self.unweighted_losses(outputs, targets, indices, generator).items():
            weight = self.loss_weight(name)
            if weight is not None:
                losses[name] = value * weight
        return losses
