"""Run a whole clip through DVIS and return the official final predictions (the model-core API).

For long videos, `dvis segment` streams through the same model stages window by window.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from dvis_cli.inference.panoptic import PanopticVideo, panoptic_merge_clip
from dvis_cli.inference.postprocess import masks_to_output, vis_topk
from dvis_cli.inference.preprocess import resize_frames, shortest_edge_size
from dvis_cli.model.dvis import DVIS, ClipOutputs


@dataclass
class VideoPrediction:
    scores: np.ndarray  # (n,) float32, sorted descending
    labels: np.ndarray  # (n,) int64 contiguous class index
    query_ids: np.ndarray  # (n,) int64 track slot
    masks: np.ndarray  # (n, T, H, W) bool at the input size
    class_names: tuple[str, ...]
    mode: str

    def __len__(self) -> int:
        return len(self.scores)


def prepare_clip(model: DVIS, frames: np.ndarray, size: int | None = None) -> tuple[torch.Tensor, tuple[int, int]]:
    """(T, H, W, 3) uint8 RGB -> normalised padded tensor and the resized (unpadded) image size."""
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"expected frames of shape (T, H, W, 3), got {frames.shape}")
    h, w = frames.shape[1:3]
    inp = model.config.input
    image_size = shortest_edge_size(h, w, size or inp.min_size_test, inp.max_size_test)
    images = resize_frames(frames, image_size)
    return model.normalize(images), image_size


def predict_clip(
    model: DVIS,
    frames: np.ndarray,
    mode: str | None = None,
    size: int | None = None,
    window_size: int | None = None,
    resize: bool = True,
    top_k: int | None = None,
) -> VideoPrediction:
    """Segment, track and refine a clip; `resize=False` feeds the frames at their own size."""
    out, padded_size, image_size = _forward(model, frames, mode, size, window_size, resize)
    return finalize(model, out, padded_size, image_size, tuple(frames.shape[1:3]), top_k)


def _forward(model: DVIS, frames: np.ndarray, mode, size, window_size, resize: bool) -> tuple[ClipOutputs, tuple, tuple]:
    if resize:
        images, image_size = prepare_clip(model, frames, size)
    else:
        images = model.normalize(torch.as_tensor(frames).permute(0, 3, 1, 2).float())
        image_size = tuple(frames.shape[1:3])
    out = model.forward_clip(images.to(model.device), mode, window_size)
    return out, tuple(images.shape[-2:]), tuple(image_size)


def predict_clip_panoptic(
    model: DVIS,
    frames: np.ndarray,
    mode: str | None = None,
    size: int | None = None,
    window_size: int | None = None,
    resize: bool = True,
) -> PanopticVideo:
    """Video panoptic segmentation of a clip (VPS models): the official panoptic merge over the
    whole clip; `ids` is (T, H, W) int32 at the input size, 0 = void."""
    out, padded_size, image_size = _forward(model, frames, mode, size, window_size, resize)
    return finalize_panoptic(model, out, padded_size, image_size, tuple(frames.shape[1:3]))


def finalize_panoptic(model: DVIS, out: ClipOutputs, padded_size, image_size, output_size) -> PanopticVideo:
    test = model.config.test
    result = panoptic_merge_clip(
        out.final_logits, out.final_masks, tuple(padded_size), tuple(image_size), tuple(output_size),
        model.config.classes.num_things, out.aux_logits, test.object_mask_threshold, test.overlap_threshold,
    )
    result.mode = out.mode
    return result


def finalize(model: DVIS, out: ClipOutputs, padded_size, image_size, output_size, top_k: int | None = None) -> VideoPrediction:
    k = top_k or (10 if out.mode == "minvis" else model.config.test.max_num)
    top = vis_topk(out.final_logits, k, out.aux_logits)
    masks = masks_to_output(out.final_masks[top.query_ids], tuple(padded_size), tuple(image_size), tuple(output_size))
    return VideoPrediction(
        top.scores.numpy(), top.labels.numpy(), top.query_ids.numpy(), masks.numpy(), model.config.classes.names, out.mode
    )
