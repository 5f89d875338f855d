"""VIPSeg scoring: VPQ (windows 1, 2, 4, 6, 8) and STQ from one pass over the PNGs."""
from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from dvis_cli.errors import InputError
from dvis_cli.eval.stq import STQuality, StqResult
from dvis_cli.eval.vipseg_io import FramePairs, FrameSegments, VipsegSet, load_vipseg
from dvis_cli.eval.vpq import VIPSEG_WINDOWS, PqCounts, PqSummary, pq_average, vpq_video_counts

# eval_stq_vspw.py: labels are (category_id << 16) + instance, unlabelled pixels 255 / 255.
STQ_IGNORE = 255
STQ_BIT_SHIFT = 16
_GROUPS = (("all", None), ("things", True), ("stuff", False))


@dataclass(frozen=True)
class VipsegResult:
    """VPQ numbers in percent (as vpq-final.txt), STQ / AQ / SQ as fractions (as eval_stq_vspw.py)."""

    vpq: float
    vpq_things: float
    vpq_stuff: float
    per_window: dict[int, dict[str, PqSummary]]  # window -> all / things / stuff (PQ etc. in [0, 1])
    per_class: dict[int, dict[int, dict[str, float]]]  # window -> category id -> pq, sq, rq, iou, tp, fp, fn
    stq: StqResult
    video_ids: tuple[str, ...]


def _instance_numbers(frames: Sequence[FrameSegments]) -> dict[int, int]:
    """Segment id -> index in first-appearance order over the video's `segments_info` (from 0).

    Official quirk kept: index 0 goes to whichever segment comes first; if that is a thing, STQ
    treats it as crowd.
    """
    numbers: dict[int, int] = {}
    for seg in frames:
        for sid in seg.ids.tolist():
            numbers.setdefault(sid, len(numbers))
    if len(numbers) > (1 << STQ_BIT_SHIFT):
        raise InputError(f"more than {1 << STQ_BIT_SHIFT} segments in one video: STQ labels cannot hold them")
    return numbers


def _stq_labels(ids: np.ndarray, seg: FrameSegments, numbers: dict[int, int]) -> np.ndarray:
    """Label of each pixel id: (category << 16) + instance number; unlisted ids (VOID) 255 / 255."""
    labels = np.full(ids.shape, (STQ_IGNORE << STQ_BIT_SHIFT) + STQ_IGNORE, dtype=np.int64)
    if seg.ids.size:
        order = np.argsort(seg.ids)
        pos = np.minimum(np.searchsorted(seg.ids[order], ids), seg.ids.size - 1)
        hit = seg.ids[order][pos] == ids
        listed = order[pos[hit]]
        inst = np.array([numbers[s] for s in seg.ids.tolist()], dtype=np.int64)
        labels[hit] = (seg.category_ids[listed] << STQ_BIT_SHIFT) + inst[listed]
    return labels


def _stq_update(stq: STQuality, frames: Sequence[FramePairs], seq_id: int) -> None:
    gt_numbers = _instance_numbers([f.gt_segments for f in frames])
    pred_numbers = _instance_numbers([f.pred_segments for f in frames])
    for f in frames:
        stq.update_pairs(_stq_labels(f.gt, f.gt_segments, gt_numbers),
                         _stq_labels(f.pred, f.pred_segments, pred_numbers), f.count, seq_id)


def evaluate_vipseg(gt_json: str | os.PathLike | dict, gt_pan_dir: str | os.PathLike,
                    pred_json: str | os.PathLike | dict, pred_pan_dir: str | os.PathLike,
                    windows: Sequence[int] = VIPSEG_WINDOWS,
                    progress: Callable[[int, int, str], None] | None = None) -> VipsegResult:
    """Score a VIPSeg-format submission folder against the GT panoptic PNGs and JSON.

    `progress(done, total, video_id)` is called before each video.
    """
    data: VipsegSet = load_vipseg(gt_json, gt_pan_dir, pred_json, pred_pan_dir)
    cats = data.categories
    if max(cats) >= STQ_IGNORE or min(cats) < 0:
        raise InputError(f"category ids must lie in [0, {STQ_IGNORE}) for STQ labels")
    cat_index = {cid: k for k, cid in enumerate(cats)}
    stq = STQuality(max(cats) + 1, [c.id for c in cats.values() if c.isthing], STQ_IGNORE, STQ_BIT_SHIFT)
    totals = {n: PqCounts.zeros(len(cats)) for n in windows}
    for seq_id, vid in enumerate(data.video_ids):
        if progress is not None:
            progress(seq_id, len(data.video_ids), vid)
        frames = list(data.frames(vid))
        for n in windows:
            try:
                totals[n] += vpq_video_counts(frames, n, cat_index, f"video {vid}")
            except ValueError as exc:
                raise InputError(str(exc)) from None
        _stq_update(stq, frames, seq_id)

    per_window = {n: {name: pq_average(totals[n], cats, isthing) for name, isthing in _GROUPS} for n in windows}
    per_class = {n: _per_class(totals[n], cats) for n in windows}
    values = {name: [100 * per_window[n][name].pq for n in windows] for name, _ in _GROUPS}
    mean = {name: sum(v) / len(v) for name, v in values.items()}  # as vpq-final.txt
    return VipsegResult(vpq=mean["all"], vpq_things=mean["things"], vpq_stuff=mean["stuff"],
                        per_window=per_window, per_class=per_class, stq=stq.result(), video_ids=data.video_ids)


def _per_class(stats: PqCounts, cats) -> dict[int, dict[str, float]]:
    out = {}
    for k, cid in enumerate(cats):
        tp, fp, fn, iou = int(stats.tp[k]), int(stats.fp[k]), int(stats.fn[k]), float(stats.iou[k])
        denom = tp + 0.5 * fp + 0.5 * fn
        out[cid] = {"pq": iou / denom if denom else 0.0, "sq": iou / tp if tp else 0.0,
                    "rq": tp / denom if denom else 0.0, "iou": iou, "tp": tp, "fp": fp, "fn": fn}
    return out
