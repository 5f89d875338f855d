"""DVIS: segmenter, referring tracker and temporal refiner composed, run over a clip in windows.

Modes: "minvis" (segmenter + Hungarian association of its queries), "online" (+ referring
tracker), "offline" (+ temporal refiner over the whole clip). A checkpoint can run any mode up to
the stages it holds.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from dvis_cli.config import DVISConfig
from dvis_cli.model.refiner import TemporalRefiner
from dvis_cli.model.segmenter import Mask2Former
from dvis_cli.model.tracker import ReferringTracker, TrackerState, match_queries

MODES = ("minvis", "online", "offline")


@dataclass
class ClipOutputs:
    """Everything the three stages produced for one clip (T frames, Q queries, K classes)."""

    mode: str
    final_logits: Tensor  # (Q, K+1) video-level class logits used for the top-k
    aux_logits: Tensor | None  # (Q, K+1) offline: the tracker's logits averaged over time
    final_masks: Tensor  # (Q, T, h, w) mask logits at 1/4 of the padded input, float32 on CPU
    seg_logits: Tensor  # (T, Q, K+1) per-frame segmenter logits (MinVIS: reordered by association)
    seg_embds: Tensor  # (T, Q, C)
    match_indices: Tensor | None  # (T, Q) segmenter query aligned to each slot, per frame
    trk_logits: Tensor | None = None  # (T, Q, K+1)
    trk_embds: Tensor | None = None  # (T, Q, C)
    frame_forward: Tensor | None = None  # (T, Q, C)
    ref_logits: Tensor | None = None  # (T, Q, K+1)
    ref_embds: Tensor | None = None  # (T, Q, C)
    ref_activation: Tensor | None = None  # (T, Q)
    seg_masks: Tensor | None = None  # (T, Q, h, w) when keep_intermediate
    trk_masks: Tensor | None = None  # (T, Q, h, w) when keep_intermediate or online
    mask_features0: Tensor | None = None  # (mask_dim, h, w) of frame 0 when keep_intermediate


class DVIS(nn.Module):
    def __init__(
        self,
        config: DVISConfig,
        segmenter: Mask2Former,
        tracker: ReferringTracker | None = None,
        refiner: TemporalRefiner | None = None,
    ) -> None:
        super().__init__()
        self.config = config
        self.segmenter = segmenter
        self.tracker = tracker
        self.refiner = refiner
        self.register_buffer("pixel_mean", torch.tensor(config.input.pixel_mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("pixel_std", torch.tensor(config.input.pixel_std).view(1, 3, 1, 1), persistent=False)

    @property
    def device(self) -> torch.device:
        return self.pixel_mean.device

    @property
    def best_mode(self) -> str:
        return "offline" if self.refiner is not None else "online" if self.tracker is not None else "minvis"

    def check_mode(self, mode: str | None) -> str:
        from dvis_cli.errors import DvisError

        mode = mode or self.best_mode
        if mode not in MODES:
            raise DvisError(f"unknown mode {mode!r}; choose one of {', '.join(MODES)}")
        if MODES.index(mode) > MODES.index(self.best_mode):
            raise DvisError(f"mode {mode!r} needs a {'refiner' if mode == 'offline' else 'tracker'}, which these weights do not hold")
        return mode

    def normalize(self, frames: Tensor) -> Tensor:
        """(T, 3, H, W) RGB 0..255 -> normalised, zero-padded bottom/right to the size divisibility."""
        x = (frames.to(self.pixel_mean.device, torch.float32) - self.pixel_mean) / self.pixel_std
        div = self.config.input.size_divisibility
        h, w = x.shape[-2:]
        ph, pw = (div - h % div) % div, (div - w % div) % div
        if ph or pw:
            x = torch.nn.functional.pad(x, (0, pw, 0, ph))
        return x

    @torch.inference_mode()
    def forward_clip(
        self, images: Tensor, mode: str | None = None, window_size: int | None = None, keep_intermediate: bool = False
    ) -> ClipOutputs:
        """images: (T, 3, H, W) normalised and padded (see `normalize`)."""
        mode = self.check_mode(mode)
        window = window_size or self.config.test.window_size
        seg_logits, seg_embds, seg_masks, mask_feats = [], [], [], []
        trk_logits, trk_embds, trk_masks, indices = [], [], [], []
        state: TrackerState | None = None
        for start in range(0, images.shape[0], window):
            seg = self.segmenter(images[start : start + window])
            seg_logits.append(seg.pred_logits)
            seg_embds.append(seg.pred_embds)
            if mode == "minvis" or keep_intermediate:
                seg_masks.append(seg.pred_masks.float().cpu())
            if mode == "offline" or keep_intermediate:
                mask_feats.append(seg.mask_features.float().cpu())
            if mode != "minvis":
                need_masks = mode == "online" or keep_intermediate
                out, state = self.tracker(seg.pred_embds[None], seg.mask_features[None] if need_masks else None, state)
                trk_logits.append(out.pred_logits[0])
                trk_embds.append(out.pred_embds[0])
                indices.append(out.match_indices[0])
                if need_masks:
                    trk_masks.append(out.pred_masks[0].float().cpu())
        seg_logits_t, seg_embds_t = torch.cat(seg_logits), torch.cat(seg_embds)
        result = ClipOutputs(mode, None, None, None, seg_logits_t, seg_embds_t, None)  # type: ignore[arg-type]
        if keep_intermediate:
            result.seg_masks = torch.cat(seg_masks)
            result.mask_features0 = mask_feats[0][0]
        if mode == "minvis":
            return self._minvis(result, torch.cat(seg_masks))
        result.match_indices = torch.cat(indices)
        result.trk_logits, result.trk_embds = torch.cat(trk_logits), torch.cat(trk_embds)
        if trk_masks:
            result.trk_masks = torch.cat(trk_masks)
        if mode == "online":
            result.final_logits = result.trk_logits.float().mean(0).cpu()
            result.final_masks = result.trk_masks.transpose(0, 1)
            return result
        # offline: refiner over the whole clip, masks window by window
        result.frame_forward = self.tracker.frame_forward(seg_embds_t[None])[0]
        ref = self.refiner(result.trk_embds[None], result.frame_forward[None], None)
        result.ref_logits, result.ref_embds, result.ref_activation = ref.pred_logits[0], ref.pred_embds[0], ref.activation_logits[0]
        masks = []
        for i, start in enumerate(range(0, images.shape[0], window)):
            feats = mask_feats[i].to(ref.pred_embds.device, ref.pred_embds.dtype)
            masks.append(self.refiner.predict_masks(ref.pred_embds[:, start : start + window], feats[None])[0].float().cpu())
        result.final_masks = torch.cat(masks).transpose(0, 1)
        result.final_logits = result.ref_logits.float().mean(0).cpu()
        result.aux_logits = result.trk_logits.float().mean(0).cpu()
        return result

    @staticmethod
    def _minvis(result: ClipOutputs, masks: Tensor) -> ClipOutputs:
        """MinVIS: associate each frame's queries to the previous (matched) frame's, correct orientation."""
        logits, embds = [result.seg_logits[0]], [result.seg_embds[0]]
        out_masks, indices = [masks[0]], [torch.arange(masks.shape[1])]
        for t in range(1, len(masks)):
            idx = torch.from_numpy(match_queries(embds[-1], result.seg_embds[t], official_orientation=False))
            indices.append(idx)
            logits.append(result.seg_logits[t][idx.to(result.seg_logits.device)])
            embds.append(result.seg_embds[t][idx.to(result.seg_embds.device)])
            out_masks.append(masks[t][idx])
        result.match_indices = torch.stack(indices)
        result.seg_logits, result.seg_embds = torch.stack(logits), torch.stack(embds)
        result.final_logits = result.seg_logits.float().mean(0).cpu()
        result.final_masks = torch.stack(out_masks).transpose(0, 1)
        return result
