"""Decoding COCO / YouTube-VIS segmentations (compressed RLE, uncompressed RLE, polygons)."""
from __future__ import annotations

from typing import Any

import numpy as np
from pycocotools import mask as mask_util


def valid_polygons(segmentation: list) -> list[list[float]]:
    """The polygons with at least 3 points (even length >= 6), as the official loader keeps them."""
    return [list(map(float, p)) for p in segmentation if isinstance(p, (list, tuple)) and len(p) % 2 == 0 and len(p) >= 6]


def has_segmentation(segmentation: Any) -> bool:
    """Whether a per-frame segmentation entry describes something (not null, not an empty list)."""
    if segmentation is None:
        return False
    if isinstance(segmentation, dict):
        return "counts" in segmentation and "size" in segmentation
    if isinstance(segmentation, (list, tuple)):
        return bool(valid_polygons(segmentation))
    return False


def decode_segmentation(segmentation: Any, height: int, width: int) -> np.ndarray:
    """A segmentation as a (height, width) bool mask; all False for a null or empty entry."""
    if not has_segmentation(segmentation):
        return np.zeros((height, width), dtype=bool)
    if isinstance(segmentation, dict):
        rle = segmentation
        if isinstance(rle["counts"], list):
            h, w = rle["size"]
            rle = mask_util.frPyObjects(rle, int(h), int(w))
        elif isinstance(rle["counts"], str):
            rle = {"size": rle["size"], "counts": rle["counts"].encode("ascii")}
        mask = mask_util.decode(rle)
    else:
        rles = mask_util.frPyObjects(valid_polygons(segmentation), height, width)
        mask = mask_util.decode(mask_util.merge(rles))
    mask = np.asarray(mask, dtype=bool)
    if mask.ndim == 3:
        mask = mask.any(axis=2)
    if mask.shape != (height, width):
        raise ValueError(f"segmentation of size {mask.shape[1]}x{mask.shape[0]} in a {width}x{height} frame")
    return mask
