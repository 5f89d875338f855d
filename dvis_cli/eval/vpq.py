"""Video Panoptic Quality (VPQ) over sliding windows, as VIPSeg's `eval_vpq_vspw.py` computes it.

For every window of n consecutive annotated frames (stride 1) a tube is every pixel of one segment
id in the window. Official rules and quirks kept (eval.md section 4.1), each of which moves numbers:

* GT tube area is the sum of the JSON `area`s, predicted tube area the sum of PNG pixel counts;
  category and crowd flag come from the tube's first frame;
* a (GT, prediction) pair of the same category, GT not crowd, is a TP when
  IoU = |g & p| / (|g| + |p| - |g & p| - |p & VOID|) > 0.5 (strict);
* unmatched non-crowd GT tubes are FN, even GT segments listed in the JSON but absent from the PNG;
  GT ids present in the PNG but not listed are neither VOID nor tubes;
* an unmatched predicted tube is not an FP when more than half of it lies on VOID plus the crowd
  region of its category (only the last crowd tube of each category in first-appearance order);
* IoU sums and TP / FP / FN are pooled per category over all windows of all videos, then
  PQ_c = IoU_c / (TP + FP/2 + FN/2), averaged over categories with TP + FP + FN > 0;
* VIPSeg windows are n = 1, 2, 4, 6, 8 and VPQ is the plain mean of the five values, in percent
  (the official files are named vpq-0/5/15/25/35.txt, a Cityscapes-VPS naming left-over).
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from dvis_cli.eval.vipseg_io import ID_OFFSET, FramePairs, FrameSegments, PanopticCategory

VIPSEG_WINDOWS = (1, 2, 4, 6, 8)
VOID = 0


@dataclass
class PqCounts:
    """Per category index: summed IoU of TPs and TP / FP / FN counts."""

    iou: np.ndarray
    tp: np.ndarray
    fp: np.ndarray
    fn: np.ndarray

    @classmethod
    def zeros(cls, n: int) -> PqCounts:
        return cls(np.zeros(n), np.zeros(n, np.int64), np.zeros(n, np.int64), np.zeros(n, np.int64))

    def __iadd__(self, other: PqCounts) -> PqCounts:
        self.iou += other.iou
        self.tp += other.tp
        self.fp += other.fp
        self.fn += other.fn
        return self


@dataclass(frozen=True)
class _Tubes:
    """The tubes of one window. Per-tube arrays carry one extra sentinel entry at index `n`
    (category -1, not crowd, area 1) that ids without a tube are mapped to."""

    ids: np.ndarray  # (n,) sorted unique segment ids
    cat: np.ndarray  # (n + 1,) category index
    crowd: np.ndarray  # (n + 1,)
    area: np.ndarray  # (n + 1,)
    first: np.ndarray  # (n,) position of first appearance (the official dict insertion order)

    @property
    def n(self) -> int:
        return self.ids.size

    @classmethod
    def of(cls, segs: Sequence[FrameSegments], cat_index: dict[int, int]) -> _Tubes:
        ids = np.concatenate([s.ids for s in segs])
        uniq, first, inv = np.unique(ids, return_index=True, return_inverse=True)
        cats = [cat_index[c] for c in np.concatenate([s.category_ids for s in segs])[first].tolist()]
        crowd = np.concatenate([s.iscrowd for s in segs])[first]
        area = np.bincount(inv, weights=np.concatenate([s.areas for s in segs]), minlength=uniq.size)
        return cls(uniq, np.array(cats + [-1], dtype=np.int64), np.append(crowd, False), np.append(area, 1.0), first)

    def lookup(self, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(tube index, or the sentinel n where there is no tube; found mask) for each id."""
        pos = np.searchsorted(self.ids, ids)
        found = np.zeros(ids.shape, dtype=bool)
        inside = pos < self.n
        found[inside] = self.ids[pos[inside]] == ids[inside]
        return np.where(found, pos, self.n), found


def _window_counts(frames: Sequence[FramePairs], cat_index: dict[int, int], stats: PqCounts, where: str) -> None:
    gt_t = _Tubes.of([f.gt_segments for f in frames], cat_index)
    pr_t = _Tubes.of([f.pred_segments for f in frames], cat_index)
    keys = np.concatenate([f.gt * ID_OFFSET + f.pred for f in frames])
    keys, inv = np.unique(keys, return_inverse=True)  # sorted by (gt id, pred id), as the official dict
    inter = np.bincount(inv, weights=np.concatenate([f.count for f in frames])).astype(np.int64)
    g_id, p_id = keys // ID_OFFSET, keys % ID_OFFSET
    gi, g_ok = gt_t.lookup(g_id)
    pi, p_ok = pr_t.lookup(p_id)
    void = np.zeros(pr_t.n + 1, dtype=np.int64)
    on_void = (g_id == VOID) & p_ok
    void[pi[on_void]] = inter[on_void]

    cand = g_ok & p_ok & ~gt_t.crowd[gi] & (gt_t.cat[gi] == pr_t.cat[pi])
    union = pr_t.area[pi] + gt_t.area[gi] - inter - void[pi]
    with np.errstate(divide="ignore", invalid="ignore"):
        iou = np.divide(inter, union, out=np.zeros(inter.shape), where=cand)
    if (iou > 1.0).any():  # the official script asserts here
        bad = g_id[np.argmax(iou)]
        raise ValueError(f"{where}: GT segment {bad} has a JSON 'area' smaller than its pixels (IoU > 1)")
    tp = cand & (iou > 0.5)
    np.add.at(stats.iou, gt_t.cat[gi[tp]], iou[tp])  # sequential: same summation order as the official
    np.add.at(stats.tp, gt_t.cat[gi[tp]], 1)

    gt_matched = np.zeros(gt_t.n + 1, dtype=bool)
    gt_matched[gi[tp]] = True
    pr_matched = np.zeros(pr_t.n + 1, dtype=bool)
    pr_matched[pi[tp]] = True
    fn = (~gt_matched & ~gt_t.crowd)[: gt_t.n]
    np.add.at(stats.fn, gt_t.cat[: gt_t.n][fn], 1)

    crowd_of_cat: dict[int, int] = {}  # category -> last crowd GT id in first-appearance order
    crowd_tubes = np.flatnonzero(gt_t.crowd[: gt_t.n])
    for j in crowd_tubes[np.argsort(gt_t.first[crowd_tubes], kind="stable")]:
        crowd_of_cat[int(gt_t.cat[j])] = int(gt_t.ids[j])
    ignored = void.astype(np.float64)
    for k in np.flatnonzero(g_ok & p_ok & gt_t.crowd[gi]) if crowd_of_cat else ():
        if crowd_of_cat.get(int(pr_t.cat[pi[k]])) == int(g_id[k]):
            ignored[pi[k]] += inter[k]
    fp = (~pr_matched & ~(ignored / pr_t.area > 0.5))[: pr_t.n]
    np.add.at(stats.fp, pr_t.cat[: pr_t.n][fp], 1)


def vpq_video_counts(frames: Sequence[FramePairs], window: int, cat_index: dict[int, int],
                     where: str = "") -> PqCounts:
    """Counts of one video for one window length (windows of `window` consecutive frames)."""
    stats = PqCounts.zeros(len(cat_index))
    for start in range(len(frames) - window + 1):
        _window_counts(frames[start:start + window], cat_index, stats, f"{where}, window {start}+{window}")
    return stats


@dataclass(frozen=True)
class PqSummary:
    pq: float
    sq: float
    rq: float
    n: int


def pq_average(stats: PqCounts, categories: dict[int, PanopticCategory], isthing: bool | None) -> PqSummary:
    """Mean PQ / SQ / RQ over categories (GT JSON order) that have TP + FP + FN > 0; NaN if none."""
    pq = sq = rq = 0.0
    n = 0
    for k, cat in enumerate(categories.values()):
        if isthing is not None and cat.isthing != isthing:
            continue
        tp, fp, fn = int(stats.tp[k]), int(stats.fp[k]), int(stats.fn[k])
        if tp + fp + fn == 0:
            continue
        n += 1
        denom = tp + 0.5 * fp + 0.5 * fn
        pq += stats.iou[k] / denom
        sq += stats.iou[k] / tp if tp else 0.0
        rq += tp / denom
    if n == 0:  # the official script divides by zero here
        return PqSummary(float("nan"), float("nan"), float("nan"), 0)
    return PqSummary(float(pq / n), float(sq / n), float(rq / n), n)
