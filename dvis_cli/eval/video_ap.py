"""Video AP / AR of YouTube-VIS (YTVOSeval) and OVIS (OVISeval), number for number.

COCO's detection AP with "image" replaced by "video" (see eval.md section 2):
per (video, category) detections are score-sorted (stable) and cut to 100, matched greedily at ten
IoU thresholds, then pooled per category over videos and turned into a 101-point interpolated
precision. Official constants and quirks kept (each changes numbers):

* IoU thresholds are `np.linspace(.5, .95, 10)` (so "0.9" is 0.8999999999999999), match is IoU >= thr;
* area bins 128^2 / 256^2 (not COCO's 32^2 / 96^2) on the track's mean *present-frame* area, GT from
  the JSON `areas`, both bin ends inclusive (a track on an edge is in two bins);
* maxDets 1 / 10 / 100 apply per (video, category), like COCO per (image, category);
* categories with detections but no GT are -1 and left out of the means (their FPs cost nothing);
* OVIS: a GT is also ignored outside the occlusion bin; detections never are (see occlusion.py).
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

import numpy as np

from dvis_cli.errors import InputError
from dvis_cli.eval.io import Track, VisGroundTruth
from dvis_cli.eval.matching import greedy_match
from dvis_cli.eval.occlusion import OCCLUSION_BINS
from dvis_cli.eval.video_iou import video_iou

IOU_THRESHOLDS = np.linspace(0.5, 0.95, 10)
RECALL_THRESHOLDS = np.linspace(0.0, 1.0, 101)
MAX_DETS = (1, 10, 100)
AREA_RANGES: dict[str, tuple[float, float]] = {
    "all": (0.0, 1e5**2),
    "small": (0.0, 128.0**2),
    "medium": (128.0**2, 256.0**2),
    "large": (256.0**2, 1e5**2),
}
ALL_OCCLUSION = (0.0, 1.0)

# (key, "ap"|"ar", area label, occlusion label, IoU threshold or None, maxDets), in the order of the
# official `stats` array (12 entries for YTVOSeval; OVISeval inserts the occlusion rows -> 18).
_VIS_STATS = (
    ("AP", "ap", "all", "all", None, 100),
    ("AP50", "ap", "all", "all", 0.5, 100),
    ("AP75", "ap", "all", "all", 0.75, 100),
    ("APs", "ap", "small", "all", None, 100),
    ("APm", "ap", "medium", "all", None, 100),
    ("APl", "ap", "large", "all", None, 100),
    ("AR1", "ar", "all", "all", None, 1),
    ("AR10", "ar", "all", "all", None, 10),
    ("AR100", "ar", "all", "all", None, 100),
    ("ARs", "ar", "small", "all", None, 100),
    ("ARm", "ar", "medium", "all", None, 100),
    ("ARl", "ar", "large", "all", None, 100),
)
_OCC_AP = tuple((f"AP_{o}", "ap", "all", o, None, 100) for o in OCCLUSION_BINS)
_OCC_AR = tuple((f"AR_{o}", "ar", "all", o, None, 100) for o in OCCLUSION_BINS)
OVIS_STATS = _VIS_STATS[:6] + _OCC_AP + _VIS_STATS[6:] + _OCC_AR


@dataclass(frozen=True)
class VideoApResult:
    """`stats`: official values in [0, 1], -1 where the official tool gives -1 (no GT in the bin).

    `precision`: (T, R, K, S, M) and `recall`: (T, K, S, M) as `E.eval` of the official code, with
    S indexing `settings` = (area label, occlusion label) pairs instead of the area axis.
    """

    stats: dict[str, float]
    per_category_ap: dict[int, float]
    precision: np.ndarray
    recall: np.ndarray
    category_ids: tuple[int, ...]
    settings: tuple[tuple[str, str], ...]
    occlusion: bool

    def official_stats(self) -> np.ndarray:
        """The official `E.stats` array (12 entries, or 18 for OVIS)."""
        return np.array(list(self.stats.values()))


@dataclass(frozen=True)
class _PairEval:
    """One (video, category, setting): detections in score order."""

    scores: np.ndarray  # (D,)
    tp: np.ndarray  # (T, D) bool
    fp: np.ndarray  # (T, D) bool
    n_gt: int  # non-ignored GTs


def _settings(occlusion: bool) -> tuple[tuple[str, str], ...]:
    rows = OVIS_STATS if occlusion else _VIS_STATS
    return tuple(dict.fromkeys((area, occ) for _, _, area, occ, _, _ in rows))


def _in_range(values: np.ndarray, rng: tuple[float, float]) -> np.ndarray:
    return (values >= rng[0]) & (values <= rng[1])


def _evaluate_pair(ious: np.ndarray, gts: list[Track], dts: list[Track], setting: tuple[str, str]) -> _PairEval:
    area_rng = AREA_RANGES[setting[0]]
    crowd = np.array([g.iscrowd for g in gts], dtype=bool)
    ignore = crowd | ~_in_range(np.array([g.avg_area for g in gts]), area_rng)
    if setting[1] != "all":
        occ = np.array([g.occlusion_score for g in gts], dtype=float)
        ignore |= ~_in_range(occ, OCCLUSION_BINS[setting[1]])
    order = np.argsort(ignore, kind="stable")
    matched, to_ignored = greedy_match(ious[:, order], ignore[order], crowd[order], IOU_THRESHOLDS)
    dt_outside = ~_in_range(np.array([d.avg_area for d in dts]), area_rng)
    dt_ignore = to_ignored | (~matched & dt_outside[None, :])
    return _PairEval(
        scores=np.array([d.score for d in dts], dtype=float),
        tp=matched & ~dt_ignore,
        fp=~matched & ~dt_ignore,
        n_gt=int(np.count_nonzero(~ignore)),
    )


def _pr_curve(records: list[_PairEval], max_det: int) -> tuple[np.ndarray, np.ndarray] | None:
    """(precision (T, R), recall (T,)) of one category / setting / maxDets, or None without GT."""
    n_gt = sum(r.n_gt for r in records)
    if n_gt == 0:
        return None
    # Each video's first max_det detections, pooled over videos (in video-id order) and re-sorted
    # by score with a stable sort, so that ties keep that order.
    scores = np.concatenate([r.scores[:max_det] for r in records])
    order = np.argsort(-scores, kind="mergesort")
    tp = np.concatenate([r.tp[:, :max_det] for r in records], axis=1)[:, order]
    fp = np.concatenate([r.fp[:, :max_det] for r in records], axis=1)[:, order]
    tp_sum = np.cumsum(tp, axis=1).astype(np.float64)
    fp_sum = np.cumsum(fp, axis=1).astype(np.float64)
    n_dt = tp.shape[1]
    rc = tp_sum / n_gt
    pr = tp_sum / (fp_sum + tp_sum + np.spacing(1))
    recall = rc[:, -1] if n_dt else np.zeros(len(IOU_THRESHOLDS))
    pr = np.maximum.accumulate(pr[:, ::-1], axis=1)[:, ::-1]  # precision made non-increasing
    precision = np.zeros((len(IOU_THRESHOLDS), len(RECALL_THRESHOLDS)))
    for t in range(len(IOU_THRESHOLDS)):
        idx = np.searchsorted(rc[t], RECALL_THRESHOLDS, side="left")
        ok = idx < n_dt  # recall levels never reached keep precision 0
        precision[t, ok] = pr[t, idx[ok]]
    return precision, recall


def _mean_defined(values: np.ndarray) -> float:
    kept = values[values > -1]
    return float(np.mean(kept)) if kept.size else -1.0


def _summarize(precision: np.ndarray, recall: np.ndarray, settings, rows) -> dict[str, float]:
    stats = {}
    for key, kind, area, occ, iou_thr, max_det in rows:
        s, m = settings.index((area, occ)), MAX_DETS.index(max_det)
        values = precision[:, :, :, s, m] if kind == "ap" else recall[:, :, s, m]
        if iou_thr is not None:
            values = values[np.flatnonzero(IOU_THRESHOLDS == iou_thr)]
        stats[key] = _mean_defined(values)
    return stats


def evaluate_video_ap(gt: VisGroundTruth, predictions: tuple[Track, ...] | list[Track],
                      *, occlusion: bool | None = None) -> VideoApResult:
    """Score `predictions` (from `load_vis_results`) against `gt`; `occlusion` None = when GT has labels."""
    use_occ = gt.has_occlusion if occlusion is None else occlusion
    if use_occ and not gt.has_occlusion:
        raise InputError(f"{gt.source}: occlusion AP needs OVIS 'occlusion' labels on every annotation")
    settings = _settings(use_occ)
    category_ids = tuple(sorted(gt.categories))
    gts_by: dict[tuple[int, int], list[Track]] = defaultdict(list)
    dts_by: dict[tuple[int, int], list[Track]] = defaultdict(list)
    for g in gt.tracks:
        gts_by[g.video_id, g.category_id].append(g)
    for d in predictions:
        dts_by[d.video_id, d.category_id].append(d)
    records: dict[int, list[list[_PairEval]]] = {c: [[] for _ in settings] for c in category_ids}
    for key in sorted(set(gts_by) | set(dts_by)):
        gts = gts_by.get(key, [])
        dts = dts_by.get(key, [])
        order = np.argsort([-d.score for d in dts], kind="mergesort")[: MAX_DETS[-1]]
        dts = [dts[i] for i in order]
        ious = video_iou([d.rles for d in dts], [d.mask_areas for d in dts],
                         [g.rles for g in gts], [g.mask_areas for g in gts])
        for s, setting in enumerate(settings):
            records[key[1]][s].append(_evaluate_pair(ious, gts, dts, setting))

    shape_k = (len(IOU_THRESHOLDS), len(category_ids), len(settings), len(MAX_DETS))
    precision = -np.ones(shape_k[:1] + (len(RECALL_THRESHOLDS),) + shape_k[1:])
    recall = -np.ones(shape_k)
    for k, cat in enumerate(category_ids):
        for s in range(len(settings)):
            for m, max_det in enumerate(MAX_DETS):
                curve = _pr_curve(records[cat][s], max_det)
                if curve is not None:
                    precision[:, :, k, s, m], recall[:, k, s, m] = curve
    stats = _summarize(precision, recall, settings, OVIS_STATS if use_occ else _VIS_STATS)
    per_cat = {cat: _mean_defined(precision[:, :, k, 0, -1]) for k, cat in enumerate(category_ids)}
    return VideoApResult(stats=stats, per_category_ap=per_cat, precision=precision, recall=recall,
                         category_ids=category_ids, settings=settings, occlusion=use_occ)
