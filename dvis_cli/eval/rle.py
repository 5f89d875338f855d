"""Masks in the forms YouTube-VIS / OVIS JSON allows, turned into compressed RLE at the video size.

Accepted per-frame forms (as in `annToRLE` of the official API): a polygon list, an uncompressed
RLE ``{"counts": [ints], "size": [h, w]}`` or a compressed RLE ``{"counts": str, "size": [h, w]}``.
A falsy entry (``None``, ``[]``, ``{}``) means "absent in this frame", exactly as the official
evaluator reads it. Problems are reported as ``ValueError`` with a short reason; the loader adds
which file, video and frame it was.
"""
from __future__ import annotations

from typing import Any

from pycocotools import mask as mask_api


def _check_size(segm: dict, height: int, width: int) -> None:
    size = segm.get("size")
    if not isinstance(size, (list, tuple)) or len(size) != 2 or not all(isinstance(v, int) for v in size):
        raise ValueError(f"RLE 'size' must be [height, width], got {size!r}")
    if (size[0], size[1]) != (height, width):
        # The official evaluator would only print "Mask sizes ... may not match!" and score 0.
        raise ValueError(f"mask size {size[0]}x{size[1]} does not match the video size {height}x{width}")


def to_compressed_rle(segm: Any, height: int, width: int, *, allow_polygon: bool) -> dict | None:
    """One frame's mask as a compressed RLE dict (counts str or bytes), or None when absent."""
    if not segm:
        return None
    if isinstance(segm, list):
        if not allow_polygon:
            raise ValueError("results must hold RLE masks, not polygons")
        if not all(isinstance(p, list) and len(p) >= 6 and len(p) % 2 == 0 for p in segm):
            raise ValueError("a polygon must be a list of lists of x, y numbers (at least 3 points)")
        try:
            return mask_api.merge(mask_api.frPyObjects(segm, height, width))
        except Exception as exc:  # pycocotools raises plain Exceptions on malformed input
            raise ValueError(f"unreadable polygon ({exc})") from None
    if not isinstance(segm, dict) or "counts" not in segm:
        raise ValueError(f"a mask must be an RLE dict with 'counts' and 'size', got {type(segm).__name__}")
    _check_size(segm, height, width)
    counts = segm["counts"]
    if isinstance(counts, list):
        if not all(isinstance(c, int) and c >= 0 for c in counts) or sum(counts) != height * width:
            raise ValueError(f"uncompressed RLE counts must be non-negative ints summing to {height * width}")
        return mask_api.frPyObjects(segm, height, width)
    if isinstance(counts, (str, bytes)):
        return segm
    raise ValueError(f"RLE 'counts' must be a string or a list of ints, got {type(counts).__name__}")
