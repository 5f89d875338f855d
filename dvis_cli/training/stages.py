"""The three DVIS training stages: what each trains, freezes, and how its losses are computed.

  segmenter  per-frame Mask2Former (MinVIS-style), Hungarian matching per frame
  tracker    referring tracker, segmenter frozen; consistent matching (each object at its first
             frame), on the segmenter's predictions in the first half of training (paper eq. 3)
  refiner    temporal refiner, segmenter and tracker frozen; video matching, on the tracker's
             predictions in the first half (paper eq. 6)
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from dvis_cli.model.dvis import DVIS
from dvis_cli.training.criterion import SetCriterion, matching_phase
from dvis_cli.training.matcher import ConsistentMatcher, HungarianMatcher, VideoTargets

STAGE_ARCH = {"segmenter": "minvis", "tracker": "online", "refiner": "offline"}
EVAL_MODE = {"segmenter": "minvis", "tracker": "online", "refiner": "offline"}


def trainable_module(model: DVIS, stage: str) -> nn.Module:
    return {"segmenter": model.segmenter, "tracker": model.tracker, "refiner": model.refiner}[stage]


def freeze_for_stage(model: DVIS, stage: str) -> None:
    """Everything but the stage's module is frozen (no grads, eval mode)."""
    trained = trainable_module(model, stage)
    for module in (model.segmenter, model.tracker, model.refiner):
        if module is None:
            continue
        is_trained = module is trained
        module.requires_grad_(is_trained)
        module.train(is_trained)


def build_criterion(stage: str, num_classes: int, num_points: int) -> SetCriterion:
    if stage == "tracker":
        matcher = ConsistentMatcher(num_points=num_points)
    else:
        # the refiner matches the clip as one (T*H) x W image, as the official code does
        matcher = HungarianMatcher(num_points=num_points, flatten_time=stage == "refiner")
    return SetCriterion(num_classes, matcher, num_points=num_points, per_frame=stage != "refiner")


def _as_outputs(logits: Tensor, masks: Tensor, aux: list[dict] | None = None) -> dict:
    return {"pred_logits": logits, "pred_masks": masks, "aux_outputs": aux or []}


def _per_video(x: Tensor, b: int, t: int) -> Tensor:
    return x.reshape(b, t, *x.shape[1:])


def stage_losses(
    stage: str,
    model: DVIS,
    trained: nn.Module,  # the stage's module, possibly wrapped in DistributedDataParallel
    images: Tensor,  # (B*T, 3, Hp, Wp) normalised, padded
    targets: list[VideoTargets],
    batch: int,
    frames: int,
    criterion: SetCriterion,
    iteration: int,
    max_iter: int,
    generators: list[torch.Generator],
) -> dict[str, Tensor]:
    phase = matching_phase(iteration, max_iter)
    if stage == "segmenter":
        seg = trained(images, aux=True)
        aux = [{"pred_logits": _per_video(a["pred_logits"], batch, frames), "pred_masks": _per_video(a["pred_masks"], batch, frames)} for a in seg.aux_outputs]
        outputs = _as_outputs(_per_video(seg.pred_logits, batch, frames), _per_video(seg.pred_masks, batch, frames), aux)
        return criterion(outputs, targets, generator=generators)

    with torch.no_grad():
        seg = model.segmenter(images)
    embds = _per_video(seg.pred_embds, batch, frames)
    feats = _per_video(seg.mask_features, batch, frames)
    if stage == "tracker":
        out, _ = trained(embds, feats, None, aux=True)
        outputs = _as_outputs(out.pred_logits, out.pred_masks, out.aux_outputs)
        indices = None
        if phase == "predecessor":
            # the segmenter's own predictions, reordered to the tracker's slots (pre-matching)
            idx = out.match_indices  # (B, T, Q)
            seg_logits = torch.gather(_per_video(seg.pred_logits, batch, frames), 2, idx[..., None].expand(-1, -1, -1, seg.pred_logits.shape[-1]))
            seg_masks = _per_video(seg.pred_masks, batch, frames)
            seg_masks = torch.gather(seg_masks, 2, idx[..., None, None].expand(-1, -1, -1, *seg_masks.shape[-2:]))
            indices = criterion.match(_as_outputs(seg_logits, seg_masks), targets, generator=generators)
        return criterion(outputs, targets, indices=indices, generator=generators)

    # refiner
    with torch.no_grad():
        trk, _ = model.tracker(embds, feats if phase == "predecessor" else None, None)
        frame_embeds = model.tracker.frame_forward(embds)
    ref = trained(trk.pred_embds, frame_embeds, feats, aux=True)
    outputs = _as_outputs(ref.pred_logits, ref.pred_masks, ref.aux_outputs)
    indices = None
    if phase == "predecessor":
        trk_logits = trk.pred_logits.mean(1, keepdim=True).expand_as(trk.pred_logits)  # averaged over time
        indices = criterion.match(_as_outputs(trk_logits, trk.pred_masks), targets, generator=generators)
    return criterion(outputs, targets, indices=indices, generator=generators)
