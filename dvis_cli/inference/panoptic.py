"""Video panoptic segmentation (VPS): the official `inference_video_vps` merge, whole-clip and streamed.

The official merge, per video (dvis-official.md section 5.5):
1. probs = softmax over K+1 classes (offline: the K non-background columns maxed with the tracker's
   probabilities); (score, label) = max over K+1; keep the queries whose label is not the
   background and whose score > `object_mask_threshold`.
2. kept mask logits: bilinear to the padded input, crop to the resized image, sigmoid, bilinear to
   the output size; prob = score x sigmoid.
3. over the whole (T, H, W) volume each pixel goes to the kept query of highest prob (first on a
   tie); for each kept query in order: area = pixels won, original = pixels with sigmoid >= 0.5,
   mask = won & sigmoid >= 0.5; skipped when any of the three is empty or area / original <
   `overlap_threshold`; stuff queries of one class share one segment id (the first one makes it,
   later ones paint into it); every new segment takes the next id 1, 2, ...; 0 = void.

`panoptic_merge_clip` does this literally on a clip held in memory. `PanopticMerger` gives the same
result from one frame at a time (two passes: counts over the volume, then the id maps), which is
how `dvis segment` runs VPS on long videos; `PanopticSpill` is its on-disk frame buffer.
"""
from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass, field
from typing import Iterable, Iterator

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from dvis_cli.inference.results import Track, _write_json_atomic, encode_mask


@dataclass
class PanopticVideo:
    ids: np.ndarray  # (T, H, W) int32 segment id per pixel, 0 = void
    segments_infos: list[dict]  # {"id", "isthing", "category_id" (contiguous class)}, in id order
    query_ids: list[int]  # per segment: the query that made it (the official `pred_ids`)
    scores: list[float] = field(default_factory=list)  # per segment: that query's class probability
    mode: str | None = None


@dataclass(frozen=True)
class KeptQueries:
    query_ids: Tensor  # (n,) long, in query order
    scores: Tensor  # (n,) float32
    labels: Tensor  # (n,) long, contiguous class (never the background)

    def __len__(self) -> int:
        return int(self.query_ids.numel())


def kept_queries(cls_logits: Tensor, aux_cls_logits: Tensor | None = None, object_mask_threshold: float = 0.8) -> KeptQueries:
    """Step 1: cls_logits (Q, K+1) video-level logits (aux: the offline tracker's, averaged)."""
    probs = F.softmax(cls_logits.float(), dim=-1)
    if aux_cls_logits is not None:
        aux = F.softmax(aux_cls_logits.float(), dim=-1)[:, :-1]
        probs[:, :-1] = torch.maximum(probs[:, :-1], aux.to(probs))
    scores, labels = probs.max(-1)
    keep = labels.ne(probs.shape[-1] - 1) & (scores > object_mask_threshold)
    idx = torch.nonzero(keep).flatten()
    return KeptQueries(idx.cpu(), scores[idx].cpu(), labels[idx].cpu())


def mask_probabilities(mask_logits: Tensor, padded_size, image_size, output_size) -> Tensor:
    """Step 2 without the score: (n, T, h, w) logits at 1/4 of the padded input -> (n, T, H, W) sigmoid."""
    x = F.interpolate(mask_logits.float(), size=tuple(padded_size), mode="bilinear", align_corners=False)
    x = x[:, :, : image_size[0], : image_size[1]].sigmoid()
    return F.interpolate(x, size=tuple(output_size), mode="bilinear", align_corners=False)


@dataclass
class _Decision:
    lut: list[int]  # per kept query: the segment id its pixels get (0: not painted)
    infos: list[dict]
    query_ids: list[int]
    scores: list[float]


def _decide(kept: KeptQueries, won, original, final, num_things: int, overlap_threshold: float) -> _Decision:
    """Step 3's loop over the kept queries, from their pixel counts over the volume."""
    out = _Decision([0] * len(kept), [], [], [])
    stuff_ids: dict[int, int] = {}
    current = 0
    for k in range(len(kept)):
        label = int(kept.labels[k])
        isthing = label < num_things
        area, orig, kept_area = int(won[k]), int(original[k]), int(final[k])
        if not (area > 0 and orig > 0 and kept_area > 0):
            continue
        if area / orig < overlap_threshold:
            continue
        if not isthing:
            if label in stuff_ids:
                out.lut[k] = stuff_ids[label]
                continue
            stuff_ids[label] = current + 1
        current += 1
        out.lut[k] = current
        out.infos.append({"id": current, "isthing": bool(isthing), "category_id": label})
        out.query_ids.append(int(kept.query_ids[k]))
        out.scores.append(float(kept.scores[k]))
    return out


def panoptic_merge_clip(
    cls_logits: Tensor,  # (Q, K+1) video-level class logits
    mask_logits: Tensor,  # (Q, T, h, w) mask logits at 1/4 of the padded input
    padded_size: tuple[int, int],
    image_size: tuple[int, int],  # resized, unpadded
    output_size: tuple[int, int],  # the source's (height, width)
    num_things: int,
    aux_cls_logits: Tensor | None = None,
    object_mask_threshold: float = 0.8,
    overlap_threshold: float = 0.8,
) -> PanopticVideo:
    """The official VPS merge on a whole clip at once (memory: kept queries x T x H x W floats)."""
    kept = kept_queries(cls_logits, aux_cls_logits, object_mask_threshold)
    T = mask_logits.shape[1]
    panoptic = torch.zeros((T, *output_size), dtype=torch.int32)
    if len(kept) == 0:
        return PanopticVideo(panoptic.numpy(), [], [], [])
    masks = mask_probabilities(mask_logits[kept.query_ids], padded_size, image_size, output_size)
    prob_masks = kept.scores.view(-1, 1, 1, 1).to(masks) * masks
    winner = prob_masks.argmax(0)  # (T, H, W)
    high = masks >= 0.5
    won = [(winner == k).sum().item() for k in range(len(kept))]
    original = [high[k].sum().item() for k in range(len(kept))]
    final = [((winner == k) & high[k]).sum().item() for k in range(len(kept))]
    decision = _decide(kept, won, original, final, num_things, overlap_threshold)
    for k, segment_id in enumerate(decision.lut):
        if segment_id:
            panoptic[(winner == k) & high[k]] = segment_id
    return PanopticVideo(panoptic.numpy(), decision.infos, decision.query_ids, decision.scores)


class PanopticMerger:
    """The same merge one frame at a time: `count` every frame (pass 1), then `decide`, then turn
    each frame's owner map into its id map with `id_map` (pass 2). Exactly `panoptic_merge_clip`."""

    def __init__(
        self,
        cls_logits: Tensor,
        padded_size: tuple[int, int],
        image_size: tuple[int, int],
        output_size: tuple[int, int],
        num_things: int,
        aux_cls_logits: Tensor | None = None,
        object_mask_threshold: float = 0.8,
        overlap_threshold: float = 0.8,
        device: torch.device | str = "cpu",
    ) -> None:
        self.kept = kept_queries(cls_logits, aux_cls_logits, object_mask_threshold)
        self.sizes = (tuple(padded_size), tuple(image_size), tuple(output_size))
        self.num_things = num_things
        self.overlap_threshold = overlap_threshold
        self.device = torch.device(device)
        n = len(self.kept)
        self.won = torch.zeros(n, dtype=torch.int64)
        self.original = torch.zeros(n, dtype=torch.int64)
        self.final = torch.zeros(n, dtype=torch.int64)
        self.decision: _Decision | None = None
        self._lut: np.ndarray | None = None

    @property
    def owner_dtype(self):
        return np.int16 if len(self.kept) < np.iinfo(np.int16).max else np.int32

    def count(self, mask_logits: Tensor) -> np.ndarray:
        """Pass 1 for one frame: mask_logits (Q, h, w) of every query. Returns the frame's owner
        map (H, W): the kept query whose final mask holds the pixel, -1 where none does."""
        n = len(self.kept)
        if n == 0:
            return np.full(self.sizes[2], -1, dtype=self.owner_dtype)
        logits = mask_logits[self.kept.query_ids.to(mask_logits.device)].to(self.device)
        masks = mask_probabilities(logits[:, None], *self.sizes)[:, 0]  # (n, H, W)
        prob_masks = self.kept.scores.view(-1, 1, 1).to(masks) * masks
        winner = prob_masks.argmax(0)
        high = masks >= 0.5
        owned = high.gather(0, winner[None])[0]
        self.won += torch.bincount(winner.flatten(), minlength=n).cpu()
        self.original += high.flatten(1).sum(1).cpu()
        self.final += torch.bincount(winner[owned], minlength=n).cpu()
        return torch.where(owned, winner, -1).cpu().numpy().astype(self.owner_dtype)

    def decide(self) -> _Decision:
        """After every frame was counted: which kept query paints which segment id."""
        self.decision = _decide(self.kept, self.won.tolist(), self.original.tolist(), self.final.tolist(), self.num_things, self.overlap_threshold)
        self._lut = np.array([0] + self.decision.lut, dtype=np.int32)  # index owner + 1
        return self.decision

    def id_map(self, owner: np.ndarray) -> np.ndarray:
        """Pass 2 for one frame: owner map -> (H, W) int32 segment ids."""
        if self._lut is None:
            self.decide()
        return self._lut[owner.astype(np.int64) + 1]

    def result(self, ids: np.ndarray) -> PanopticVideo:
        d = self.decision or self.decide()
        return PanopticVideo(ids, d.infos, d.query_ids, d.scores)

    def merge(self, frames: Iterable[Tensor]) -> PanopticVideo:
        """Both passes over (Q, h, w) mask logits per frame, owner maps kept in memory (small clips;
        `PanopticSpill.merge` keeps them on disk)."""
        owners = [self.count(f) for f in frames]
        self.decide()
        ids = np.stack([self.id_map(o) for o in owners]) if owners else np.zeros((0, *self.sizes[2]), np.int32)
        return self.result(ids)


class PanopticSpill:
    """Per-frame (Q, h, w) float32 mask logits on disk during a streamed VPS run (RAM stays flat);
    `merge` runs the two passes over them; pass 1 replaces each logits file by its owner map."""

    def __init__(self, folder: str | os.PathLike) -> None:
        self.folder = tempfile.mkdtemp(prefix=".panoptic.", dir=folder)
        self.stamps: list = []  # what each frame leaves behind (index, time): no pixels
        self.mask_shape: tuple[int, int] | None = None

    def _path(self, n: int, kind: str) -> str:
        return os.path.join(self.folder, f"{n:08d}.{kind}.npy")

    def add(self, stamp, mask_logits: Tensor) -> None:
        self.mask_shape = tuple(mask_logits.shape[-2:])
        np.save(self._path(len(self.stamps), "logits"), mask_logits.float().cpu().numpy())
        self.stamps.append(stamp)

    def merge(self, merger: PanopticMerger) -> Iterator[tuple[object, np.ndarray]]:
        """Pass 1 over every frame, then yield (stamp, id map) frame by frame (pass 2)."""
        for n in range(len(self.stamps)):
            logits = torch.from_numpy(np.load(self._path(n, "logits")))
            np.save(self._path(n, "owner"), merger.count(logits))
            os.unlink(self._path(n, "logits"))
        merger.decide()
        for n, stamp in enumerate(self.stamps):
            owner = np.load(self._path(n, "owner"))
            os.unlink(self._path(n, "owner"))
            yield stamp, merger.id_map(owner)

    def close(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)


SEGMENTS_FILE = "segments.json"  # in a VPS result store, beside tracks.json


def store_panoptic(writer, spill: PanopticSpill, merger: PanopticMerger | None, classes) -> list[Track]:
    """Write a streamed VPS run into a result store; returns its tracks (one per segment).

    frames.jsonl gets each frame's segments as RLE keyed by segment id (every frame a line, void
    frames too), and each Track's `slot` is its segment id, so the store reads like a VIS store
    (exports, renders). `segments.json` keeps the panoptic facts: id, isthing, contiguous and
    dataset category, class name, the query that made the segment and its class probability.
    """
    # no merger: no frame was segmented, every frame is void
    frames = spill.merge(merger) if merger is not None else ((stamp, None) for stamp in spill.stamps)
    for stamp, ids in frames:
        masks = {}
        if ids is not None:
            for segment_id in np.unique(ids).tolist():
                if segment_id:
                    masks[segment_id] = encode_mask(ids == segment_id)
        writer.append(stamp.index, stamp.time, masks)
    decision = merger.decision if merger is not None else _Decision([], [], [], [])
    tracks, segments = [], []
    for info, query, score in zip(decision.infos, decision.query_ids, decision.scores):
        label = info["category_id"]
        tracks.append(Track(info["id"], info["id"], label, classes.dataset_ids[label], classes.names[label], score))
        segments.append(info | {"dataset_category_id": classes.dataset_ids[label], "class_name": classes.names[label],
                                "query_id": query, "score": score})
    _write_json_atomic(writer.folder / SEGMENTS_FILE, segments)
    return tracks
