"""Video IoU between predicted and ground-truth tracks, straight from RLEs (no decoding).

Official definition (`computeIoU` / `iou_seq` of ytvoseval.py): over the frames of the video,
IoU = sum_t |d_t & g_t| / sum_t |d_t | g_t|, where an absent mask contributes its partner's area
to the union only, and IoU = 0 when the union is empty. `iscrowd` plays no part (no IoA as in COCO).

Per frame one `pycocotools.mask.iou` call (C, with a bounding-box prefilter) gives o = I / U for
every pair; with the two areas a and b the integer intersection is I = o (a + b) / (1 + o), exact
after rounding, so the video sums are exact integers and the final division matches the official
float64 I / U bit for bit. Mask sizes must already be checked (`mask.iou` answers -1 for a size
mismatch only when the boxes overlap).
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from pycocotools import mask as mask_api


def video_iou(
    dt_rles: Sequence[Sequence[dict | None]],
    dt_areas: Sequence[np.ndarray],
    gt_rles: Sequence[Sequence[dict | None]],
    gt_areas: Sequence[np.ndarray],
) -> np.ndarray:
    """(D, G) float64 video IoU. `*_rles[i][t]`: RLE or None; `*_areas[i]`: (T,) pixel counts."""
    n_dt, n_gt = len(dt_rles), len(gt_rles)
    if n_dt == 0 or n_gt == 0:
        return np.zeros((n_dt, n_gt))
    dt_areas = np.asarray(dt_areas, dtype=np.int64)
    gt_areas = np.asarray(gt_areas, dtype=np.int64)
    inter = np.zeros((n_dt, n_gt), dtype=np.int64)
    for t in range(dt_areas.shape[1]):
        di = np.flatnonzero(dt_areas[:, t])  # empty masks cannot intersect: skip them
        gi = np.flatnonzero(gt_areas[:, t])
        if di.size == 0 or gi.size == 0:
            continue
        o = np.asarray(mask_api.iou([dt_rles[i][t] for i in di], [gt_rles[j][t] for j in gi], [0] * gi.size))
        o = o.reshape(di.size, gi.size)
        if (o < 0).any():
            raise ValueError(f"mask size mismatch in frame {t}")
        a_sum = dt_areas[di, t][:, None] + gt_areas[gi, t][None, :]
        inter[np.ix_(di, gi)] += np.rint(o * a_sum / (1.0 + o)).astype(np.int64)
    union = dt_areas.sum(1)[:, None] + gt_areas.sum(1)[None, :] - inter
    out = np.zeros((n_dt, n_gt))
    np.divide(inter, union, out=out, where=union > 0)
    return out
