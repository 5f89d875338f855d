"""COCO-style greedy matching of one video x category, all IoU thresholds at once.

Rule of `evaluateVid` (ytvoseval.py / oviseval.py): detections in score order; GTs ordered
non-ignored first. For each threshold, a detection takes, among GTs still free (a crowd GT is never
used up) with IoU >= threshold, the non-ignored one with the highest IoU if any, else the best
ignored one. Ties go to the *later* GT (the official loop accepts `>=` the best so far). A detection
matched to an ignored GT is itself ignored.
"""
from __future__ import annotations

import numpy as np


def greedy_match(
    ious: np.ndarray, gt_ignore: np.ndarray, gt_crowd: np.ndarray, thresholds: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Match D score-sorted detections to G GTs (already sorted non-ignored first).

    ious: (D, G); gt_ignore, gt_crowd: (G,) bool; thresholds: (T,).
    Returns (matched, matched_to_ignored), both (T, D) bool.
    """
    n_thr = thresholds.shape[0]
    n_dt, n_gt = ious.shape
    matched = np.zeros((n_thr, n_dt), dtype=bool)
    to_ignored = np.zeros((n_thr, n_dt), dtype=bool)
    if n_dt == 0 or n_gt == 0:
        return matched, to_ignored
    used = np.zeros((n_thr, n_gt), dtype=bool)
    rows = np.arange(n_thr)
    last = n_gt - 1
    for d in range(n_dt):
        row = ious[d][None, :]
        ok = (~used | gt_crowd[None, :]) & (row >= thresholds[:, None])
        regular = ok & ~gt_ignore[None, :]
        cand = np.where(regular.any(1, keepdims=True), regular, ok)
        vals = np.where(cand, row, -np.inf)
        best = cand & (vals == vals.max(1, keepdims=True))
        g = last - np.argmax(best[:, ::-1], axis=1)  # the last GT reaching the maximum
        hit = cand.any(1)
        matched[:, d] = hit
        to_ignored[:, d] = hit & gt_ignore[g]
        used[rows[hit], g[hit]] = True
    return matched, to_ignored
