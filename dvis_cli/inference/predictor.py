"""The streaming video predictor: frames in, a result store out, with bounded memory.

Frames go through the segmenter (and tracker) `batch_frames` at a time; masks become RLE on disk
as soon as they are final. Modes:
  minvis       segmenter + Hungarian association of its queries (MinVIS)
  online       segmenter + referring tracker
  semi-online  + temporal refiner per window of N frames; the tracker runs on across windows,
               so a track keeps its id, and the refiner also sees the last `context` frames of
               the previous window (their outputs are not used again), so a window's first
               frames are refined in the same temporal context as the frames inside it
  offline      + temporal refiner over the whole video; mask features are spilled to disk and
               read back for the refiner's masks (exact; the per-frame queries stay in RAM and
               the refiner attends over all frames, so offline memory still grows with length)
The video-level class of each track (and which tracks are kept: the official top-k) is decided
at the end, from logits accumulated over the video.
VPS models (`config.test.task == "vps"`): each frame's mask logits are spilled to disk instead, and
the official panoptic merge runs over them at the end (dvis_cli/inference/panoptic.py); the store
then holds one track per panoptic segment.
"""
from __future__ import annotations

import itertools
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Iterator

import numpy as np
import torch
import torch.nn.functional as F

from dvis_cli.inference.device import autocast
from dvis_cli.inference.panoptic import PanopticMerger, PanopticSpill, store_panoptic
from dvis_cli.inference.postprocess import vis_topk
from dvis_cli.inference.preprocess import resize_frames, shortest_edge_size
from dvis_cli.inference.results import ResultWriter, Track, encode_mask
from dvis_cli.model.dvis import DVIS
from dvis_cli.model.tracker import TrackerState, match_queries

STREAM_MODES = ("minvis", "online", "semi-online", "offline")


@dataclass
class SegmentOptions:
    mode: str | None = None  # default: the most the weights can do (offline > online > minvis)
    window: int | None = None  # semi-online refiner window, in frames
    size: int | None = None  # shorter side fed to the model (default: the preset's test size)
    conf: float = 0.0  # drop tracks scoring below
    classes: tuple[int, ...] | None = None  # keep only these contiguous classes
    max_instances: int | None = None
    top_k: int | None = None  # (query, class) pairs kept (default: the preset's TEST.MAX_NUM)
    batch_frames: int | None = None  # frames through the segmenter at a time (default 3)
    checkpoint_every: int = 50  # frames between resume checkpoints (online / semi-online)
    context: int | None = None  # semi-online: earlier frames the refiner also sees (default: the window)


@dataclass
class StreamState:
    """What a resumed run needs: everything accumulated so far, all small tensors."""

    frames_done: int = 0
    last_index: int = -1
    logit_sum: torch.Tensor | None = None  # (Q, K+1)
    aux_sum: torch.Tensor | None = None  # (Q, K+1)
    tracker: TrackerState | None = None
    minvis_prev: torch.Tensor | None = None  # (Q, C)
    context_seg_embds: torch.Tensor | None = None  # semi-online: (C, Q, D) of the previous window's last frames
    context_trk_embds: torch.Tensor | None = None  # (C, Q, D)

    _TENSORS = ("logit_sum", "aux_sum", "minvis_prev", "context_seg_embds", "context_trk_embds")

    def to_dict(self) -> dict:
        d = {"frames_done": self.frames_done, "last_index": self.last_index}
        for name in self._TENSORS:
            value = getattr(self, name)
            if value is not None:
                d[name] = value.cpu()
        if self.tracker is not None:
            d["tracker_reference"] = self.tracker.reference.cpu()
            d["tracker_last_frame_embeds"] = self.tracker.last_frame_embeds.cpu()
        return d

    @classmethod
    def from_dict(cls, d: dict, device) -> "StreamState":
        state = cls(d["frames_done"], d["last_index"])
        for name in cls._TENSORS:
            if name in d:
                setattr(state, name, d[name].to(device))
        if "tracker_reference" in d:
            state.tracker = TrackerState(d["tracker_reference"].to(device), d["tracker_last_frame_embeds"].to(device))
        return state


@dataclass
class StreamResult:
    tracks: list[Track]
    frames: int
    warnings: list[str] = field(default_factory=list)


def _batches(frames: Iterable, n: int) -> Iterator[list]:
    """Consecutive lists of n items (the last may be shorter); lazy, so memory stays bounded."""
    batch = []
    for frame in frames:
        batch.append(frame)
        if len(batch) == n:
            yield batch
            batch = []
    if batch:
        yield batch


def _windows(frames: Iterable, n: int) -> Iterator[Iterator]:
    """Consecutive lazy runs of n items; each must be consumed before the next is taken."""
    it = iter(frames)
    for first in it:
        yield itertools.chain([first], itertools.islice(it, n - 1))


@dataclass(frozen=True)
class _Stamp:
    """What a frame leaves behind once the model has seen it: no pixels."""

    index: int
    time: float


class VideoPredictor:
    """Owns a model and runs videos through it (`run`), one result store per video."""

    def __init__(self, model: DVIS, device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32) -> None:
        self.model = model.eval().to(device)
        self.device = torch.device(device)
        self.dtype = dtype
        self._spill: PanopticSpill | None = None  # VPS runs: the frames' mask logits on disk

    def check_mode(self, mode: str | None) -> str:
        from dvis_cli.errors import InputError

        mode = mode or self.model.best_mode
        if mode not in STREAM_MODES:
            raise InputError(f"unknown mode {mode!r}; choose one of {', '.join(STREAM_MODES)}")
        if mode == "semi-online" and self.model.refiner is None:
            raise InputError("mode 'semi-online' needs a refiner, which these weights do not hold")
        self.model.check_mode("offline" if mode == "semi-online" else mode)
        return mode

    def check_options(self, options: SegmentOptions) -> str:
        """The mode these options run in; a user error when they cannot run on this model."""
        from dvis_cli.errors import InputError

        mode = self.check_mode(options.mode)
        if mode == "semi-online" and not options.window:
            raise InputError("--mode semi-online needs --window N (frames per refiner window)")
        return mode

    # ----------------------------------------------------------------------------------------
    def run(
        self,
        frames: Iterable,  # dvis_cli.io.Frame items (index, time, image RGB uint8)
        frame_size: tuple[int, int],  # (height, width) of the source
        writer: ResultWriter,
        options: SegmentOptions,
        state: StreamState | None = None,
        progress: Callable[[int, int], None] | None = None,  # (frames done, live tracks)
        checkpoint: Callable[[StreamState], None] | None = None,
    ) -> StreamResult:
        mode = self.check_mode(options.mode)
        height, width = frame_size
        inp = self.model.config.input
        self.image_size = shortest_edge_size(height, width, options.size or inp.min_size_test, inp.max_size_test)
        self.output_size = (height, width)
        self.writer = writer
        self.progress = progress
        state = state or StreamState()
        self._last_checkpoint = state.frames_done
        batch = options.batch_frames or self.model.config.test.window_size
        vps = self.model.config.test.task == "vps"
        self._spill = PanopticSpill(writer.folder) if vps else None
        if vps:
            checkpoint = None  # the panoptic merge needs the whole video: nothing to resume from
        try:
            with torch.inference_mode():
                if mode in ("minvis", "online"):
                    self._run_online(frames, batch, mode, state, options, checkpoint)
                else:
                    window = options.window if mode == "semi-online" else None
                    context = (options.context if options.context is not None else window) if window else 0
                    self._run_refined(frames, batch, window, context, state, options, checkpoint)
                if vps:
                    tracks = self._panoptic_tracks(state)
        finally:
            if self._spill is not None:
                self._spill.close()
        if not vps:
            tracks = self._select_tracks(state, mode, options)
        writer.finish(tracks)
        return StreamResult(tracks, state.frames_done)

    # ----------------------------------------------------------------------------------------
    def _images(self, batch: list) -> torch.Tensor:
        images = resize_frames(np.stack([f.image for f in batch]), self.image_size)
        return self.model.normalize(images.to(self.device))

    def _segment(self, batch: list):
        with autocast(self.device, self.dtype):
            return self.model.segmenter(self._images(batch))

    def _track(self, seg, state: StreamState, with_masks: bool):
        with autocast(self.device, self.dtype):
            out, state.tracker = self.model.tracker(
                seg.pred_embds[None], seg.mask_features[None] if with_masks else None, state.tracker
            )
        return out

    def _accumulate(self, state: StreamState, logits: torch.Tensor, aux: torch.Tensor | None = None) -> None:
        """logits, aux: (T, Q, K+1) per-frame logits of this batch."""
        s = logits.float().sum(0)
        state.logit_sum = s if state.logit_sum is None else state.logit_sum + s
        if aux is not None:
            a = aux.float().sum(0)
            state.aux_sum = a if state.aux_sum is None else state.aux_sum + a

    def _write_frames(self, batch: list, mask_logits: torch.Tensor, state: StreamState) -> None:
        """mask_logits: (T, Q, h, w) at 1/4 of the padded input -> RLE per non-empty slot."""
        if self._spill is not None:
            return self._spill_frames(batch, mask_logits, state)
        padded = (mask_logits.shape[-2] * 4, mask_logits.shape[-1] * 4)
        live = 0
        for frame, logits in zip(batch, mask_logits.float()):
            slots = torch.nonzero(logits.flatten(1).amax(1) > 0).flatten()  # bilinear never exceeds the max
            masks = {}
            if len(slots):
                up = F.interpolate(logits[slots][:, None], size=padded, mode="bilinear", align_corners=False)
                up = up[:, :, : self.image_size[0], : self.image_size[1]]
                if tuple(up.shape[-2:]) != tuple(self.output_size):  # same size: bilinear is the identity
                    up = F.interpolate(up, size=self.output_size, mode="bilinear", align_corners=False)
                up = up[:, 0] > 0
                up = up.cpu().numpy()
                for slot, mask in zip(slots.tolist(), up):
                    if mask.any():
                        masks[slot] = encode_mask(mask)
            self.writer.append(frame.index, frame.time, masks)
            state.frames_done += 1
            state.last_index = frame.index
            live = len(masks)
        if self.progress:
            self.progress(state.frames_done, live)

    def _spill_frames(self, batch: list, mask_logits: torch.Tensor, state: StreamState) -> None:
        """VPS: keep each frame's (Q, h, w) mask logits on disk until the video-level merge."""
        for frame, logits in zip(batch, mask_logits):
            self._spill.add(_Stamp(frame.index, frame.time), logits)
            state.frames_done += 1
            state.last_index = frame.index
        if self.progress:
            self.progress(state.frames_done, 0)

    def _maybe_checkpoint(self, state: StreamState, options: SegmentOptions, checkpoint) -> None:
        """At a point where the state is complete (no frames buffered), every `checkpoint_every` frames."""
        if checkpoint is None or state.frames_done - self._last_checkpoint < options.checkpoint_every:
            return
        self._last_checkpoint = state.frames_done
        self.writer.flush()
        checkpoint(state)

    # ----------------------------------------------------------------------------------------
    def _run_online(self, frames, batch_size, mode, state, options, checkpoint) -> None:
        for batch in _batches(frames, batch_size):
            seg = self._segment(batch)
            if mode == "minvis":
                logits, masks = self._associate(seg, state)
            else:
                out = self._track(seg, state, with_masks=True)
                logits, masks = out.pred_logits[0], out.pred_masks[0]
            self._accumulate(state, logits)
            self._write_frames(batch, masks, state)
            self._maybe_checkpoint(state, options, checkpoint)

    def _associate(self, seg, state: StreamState):
        """MinVIS: reorder each frame's queries to follow the previous frame's (correct orientation)."""
        logits, masks = [], []
        for t in range(seg.pred_embds.shape[0]):
            embds = seg.pred_embds[t]
            if state.minvis_prev is None:
                idx = torch.arange(embds.shape[0], device=embds.device)
            else:
                idx = torch.from_numpy(match_queries(state.minvis_prev, embds, official_orientation=False)).to(embds.device)
            state.minvis_prev = embds[idx]
            logits.append(seg.pred_logits[t][idx])
            masks.append(seg.pred_masks[t][idx])
        return torch.stack(logits), torch.stack(masks)

    def _run_refined(self, frames, batch_size, window, context, state, options, checkpoint) -> None:
        """Offline (window None: the whole video) or semi-online (refine every `window` frames,
        each with the `context` frames before it)."""
        spill = tempfile.mkdtemp(prefix=".features.", dir=self.writer.folder)
        try:
            # windows of `window` frames (all frames for offline), each through the segmenter and
            # tracker `batch_size` frames at a time, then refined as a whole
            for window_frames in _windows(frames, window) if window else [frames]:
                pending: list = []  # (frames, segmenter embds, tracker embds, tracker logits, feature file)
                for batch in _batches(window_frames, batch_size):
                    seg = self._segment(batch)
                    out = self._track(seg, state, with_masks=False)
                    path = os.path.join(spill, f"{len(pending):06d}.npy")
                    np.save(path, seg.mask_features.float().cpu().numpy())
                    pending.append(([_Stamp(f.index, f.time) for f in batch], seg.pred_embds, out.pred_embds[0], out.pred_logits[0], path))
                if pending:
                    self._refine(pending, state, context)
                for name in os.listdir(spill):
                    os.unlink(os.path.join(spill, name))
                self._maybe_checkpoint(state, options, checkpoint)
        finally:
            shutil.rmtree(spill, ignore_errors=True)

    def _refine(self, pending: list, state: StreamState, context: int = 0) -> None:
        """Refine one window's frames, after the `context` frames kept from the windows before."""
        seg_embds = torch.cat([p[1] for p in pending])  # (T, Q, C)
        trk_embds = torch.cat([p[2] for p in pending])
        trk_logits = torch.cat([p[3] for p in pending])
        skip = 0
        if context and state.context_seg_embds is not None:
            skip = state.context_seg_embds.shape[0]
            seg_embds = torch.cat([state.context_seg_embds.to(seg_embds), seg_embds])  # (C + T, Q, C)
            trk_embds = torch.cat([state.context_trk_embds.to(trk_embds), trk_embds])
        if context:
            state.context_seg_embds, state.context_trk_embds = seg_embds[-context:].clone(), trk_embds[-context:].clone()
        with autocast(self.device, self.dtype):
            frame_embeds = self.model.tracker.frame_forward(seg_embds[None])
            ref = self.model.refiner(trk_embds[None], frame_embeds, None)
        self._accumulate(state, ref.pred_logits[0, skip:], trk_logits)
        start = skip
        for batch, _, _, _, path in pending:
            feats = torch.from_numpy(np.load(path)).to(self.device)
            with autocast(self.device, self.dtype):
                masks = self.model.refiner.predict_masks(ref.pred_embds[:, start : start + len(batch)], feats[None])[0]
            self._write_frames(batch, masks, state)
            start += len(batch)

    # ----------------------------------------------------------------------------------------
    def _panoptic_tracks(self, state: StreamState) -> list[Track]:
        """VPS: the official panoptic merge in two passes over the spilled frames; the store gets
        each frame's segments (keyed by segment id) and one track per segment."""
        config = self.model.config
        if state.frames_done == 0 or state.logit_sum is None:
            return store_panoptic(self.writer, self._spill, None, config.classes)
        final = state.logit_sum / state.frames_done
        aux = state.aux_sum / state.frames_done if state.aux_sum is not None else None
        h, w = self._spill.mask_shape
        merger = PanopticMerger(
            final, (h * 4, w * 4), self.image_size, self.output_size, config.classes.num_things, aux,
            config.test.object_mask_threshold, config.test.overlap_threshold, self.device,
        )
        return store_panoptic(self.writer, self._spill, merger, config.classes)

    def _select_tracks(self, state: StreamState, mode: str, options: SegmentOptions) -> list[Track]:
        if state.frames_done == 0 or state.logit_sum is None:
            return []
        final = state.logit_sum / state.frames_done
        aux = state.aux_sum / state.frames_done if state.aux_sum is not None else None
        k = options.top_k or (10 if mode == "minvis" else self.model.config.test.max_num)
        top = vis_topk(final.cpu(), k, aux.cpu() if aux is not None else None)
        classes = self.model.config.classes
        tracks = []
        for score, label, slot in zip(top.scores.tolist(), top.labels.tolist(), top.query_ids.tolist()):
            if score < options.conf or (options.classes is not None and label not in options.classes):
                continue
            tracks.append(Track(len(tracks) + 1, slot, label, classes.dataset_ids[label], classes.names[label], float(score)))
            if options.max_instances is not None and len(tracks) >= options.max_instances:
                break
        return tracks
