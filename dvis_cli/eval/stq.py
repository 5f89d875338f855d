"""Segmentation and Tracking Quality (STQ, Weber et al. 2021), as deeplab2's numpy `STQuality`
and its VIPSeg / DVIS copy compute it.

Labels are ``(semantic << bit_shift) + instance``. STQ = sqrt(AQ * SQ):

* AQ (things only): per sequence, for every GT track g,
  (1/|g|) * sum_p TPA(p,g) * TPA / (TPA + FPA + FNA); summed over all sequences and divided by the
  total number of GT tracks. Instance 0 of a thing class is *crowd*: dropped from GT and from the
  predictions at those pixels.
* SQ: mIoU of the semantic confusion matrix summed over sequences; classes with empty union skipped.

Official quirk kept (it changes numbers): the ignore label is mapped to an extra index and only the
GT-ignore *row* is zeroed, so predicting the ignore label on labelled GT pixels creates an extra
class with IoU 0 that enters the mean (GT [a, a, b, b] vs prediction [a, VOID, b, b] gives SQ
(0.5 + 1 + 0) / 3, not 0.75).

Every statistic is a function of the joint histogram of (GT label, predicted label) per frame, so
`update_pairs` takes that histogram; `update` builds it from label maps.
"""
from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field

import numpy as np

_EPSILON = 1e-15


@dataclass(frozen=True)
class StqResult:
    stq: float
    aq: float
    sq: float  # "IoU" in deeplab2's output
    stq_per_seq: tuple[float, ...]
    aq_per_seq: tuple[float, ...]
    sq_per_seq: tuple[float, ...]
    seq_ids: tuple[Hashable, ...]
    length_per_seq: tuple[int, ...]


@dataclass
class _Sequence:
    confusion: np.ndarray
    gt_sizes: dict[int, int] = field(default_factory=dict)
    pred_sizes: dict[int, int] = field(default_factory=dict)
    intersections: dict[tuple[int, int], int] = field(default_factory=dict)
    length: int = 0


def _add_counts(target: dict, keys, counts) -> None:
    for key, count in zip(keys, counts):
        target[key] = target.get(key, 0) + count


class STQuality:
    """Accumulates frames (per sequence id) and computes STQ, AQ and SQ."""

    def __init__(self, num_classes: int, thing_ids: Sequence[int], ignore_label: int = 255,
                 bit_shift: int = 16) -> None:
        self.num_classes = num_classes
        self.ignore_label = ignore_label
        self.bit_shift = bit_shift
        self._bit_mask = (1 << bit_shift) - 1
        self._things = np.array(sorted(thing_ids), dtype=np.int64)
        if ignore_label >= num_classes:
            self._size = num_classes + 1
            self._kept_rows = np.arange(num_classes)
        else:
            self._size = num_classes
            self._kept_rows = np.array([c for c in range(num_classes) if c != ignore_label])
        self._seqs: OrderedDict[Hashable, _Sequence] = OrderedDict()

    def update(self, y_true: np.ndarray, y_pred: np.ndarray, sequence_id: Hashable = 0) -> None:
        """One frame of label maps (any equal shapes)."""
        t = np.asarray(y_true, dtype=np.int64).ravel()
        p = np.asarray(y_pred, dtype=np.int64).ravel()
        pairs, counts = np.unique(np.stack([t, p]), axis=1, return_counts=True)
        self.update_pairs(pairs[0], pairs[1], counts, sequence_id)

    def update_pairs(self, gt_labels: np.ndarray, pred_labels: np.ndarray, counts: np.ndarray,
                     sequence_id: Hashable = 0) -> None:
        """One frame given as its histogram: `counts[i]` pixels are (gt_labels[i], pred_labels[i])."""
        gt = np.asarray(gt_labels, dtype=np.int64)
        pred = np.asarray(pred_labels, dtype=np.int64)
        counts = np.asarray(counts, dtype=np.int64)
        seq = self._seqs.get(sequence_id)
        if seq is None:
            seq = self._seqs[sequence_id] = _Sequence(confusion=np.zeros((self._size, self._size), dtype=np.int64))
        seq.length += 1
        gt_sem, pred_sem = gt >> self.bit_shift, pred >> self.bit_shift
        if self.ignore_label > self.num_classes:
            gt_sem = np.where(gt_sem == self.ignore_label, self.num_classes, gt_sem)
            pred_sem = np.where(pred_sem == self.ignore_label, self.num_classes, pred_sem)
        if max(gt_sem.max(initial=0), pred_sem.max(initial=0)) >= self._size or min(
                gt_sem.min(initial=0), pred_sem.min(initial=0)) < 0:
            raise ValueError("semantic label outside [0, num_classes) and not the ignore label")
        np.add.at(seq.confusion, (gt_sem, pred_sem), counts)

        gt_thing = np.isin(gt_sem, self._things)
        crowd = gt_thing & ((gt & self._bit_mask) == 0)  # instance 0 of a thing class
        gt_track = gt_thing & ~crowd
        pred_track = np.isin(pred_sem, self._things) & ~crowd
        _add_counts(seq.gt_sizes, gt[gt_track].tolist(), counts[gt_track].tolist())
        _add_counts(seq.pred_sizes, pred[pred_track].tolist(), counts[pred_track].tolist())
        both = gt_track & pred_track
        _add_counts(seq.intersections, zip(gt[both].tolist(), pred[both].tolist()), counts[both].tolist())

    def _aq_sum(self, seq: _Sequence) -> float:
        total = 0.0
        inner: dict[int, float] = {}
        for (g, p), tpa in seq.intersections.items():
            union = seq.pred_sizes[p] + seq.gt_sizes[g] - tpa  # TPA + FPA + FNA
            inner[g] = inner.get(g, 0.0) + tpa * (tpa / union)
        for g, size in seq.gt_sizes.items():
            total += 1.0 / size * inner.get(g, 0.0)
        return total

    def _mean_iou(self, confusion: np.ndarray) -> float:
        kept = np.zeros_like(confusion)
        kept[self._kept_rows] = confusion[self._kept_rows]  # only the GT-ignore row is removed
        inter = kept.diagonal()
        unions = kept.sum(0) + kept.sum(1) - inter
        n = np.count_nonzero(unions)
        if n == 0:
            return float("nan")
        return float(np.sum(inter.astype(np.float64) / np.maximum(unions, _EPSILON)) / n)

    def result(self) -> StqResult:
        aq_sums = [self._aq_sum(s) for s in self._seqs.values()]
        tubes = [len(s.gt_sizes) for s in self._seqs.values()]
        aq = float(np.sum(aq_sums) / max(float(np.sum(tubes)), _EPSILON))
        aq_seq = [a / max(n, _EPSILON) for a, n in zip(aq_sums, tubes)]
        sq_seq = [self._mean_iou(s.confusion) for s in self._seqs.values()]
        total = sum((s.confusion for s in self._seqs.values()), np.zeros((self._size, self._size), np.int64))
        sq = self._mean_iou(total)
        return StqResult(
            stq=float(np.sqrt(aq * sq)), aq=aq, sq=sq,
            stq_per_seq=tuple(float(np.sqrt(a * s)) for a, s in zip(aq_seq, sq_seq)),
            aq_per_seq=tuple(aq_seq), sq_per_seq=tuple(sq_seq),
            seq_ids=tuple(self._seqs), length_per_seq=tuple(s.length for s in self._seqs.values()),
        )
