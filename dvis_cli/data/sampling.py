"""Which frames of a video make a training clip (the official DVIS frame selection rules).

The official mapper draws with Python's `random` / `np.random`; here every draw comes from the
`numpy.random.Generator` the caller passes, so a clip is a pure function of the generator state.
The selection rules themselves are the official ones, quirks included:

* ``2 * frame_range + 1 == num_frames`` (every DVIS tracker / refiner config): a CONTIGUOUS clip
  whose start is drawn from ``[0, length - num_frames)``, so the last possible start is never used
  unless ``length == num_frames``.  A video shorter than the clip gives all its frames followed by
  random repeats (the official code's sort of that list is a no-op, so the repeats stay unsorted).
  With probability ``reverse_prob`` the clip is played backwards (``REVERSE_AGU``); the official
  code reverses only in this branch, and so does this function.
* ``num_frames == 1`` (the segmenter stage): one frame drawn uniformly.
* any other setting: a reference frame drawn uniformly, plus ``num_frames - 1`` frames drawn with
  replacement from its neighbours within ``frame_range`` (the reference itself excluded), sorted.
"""
from __future__ import annotations

import numpy as np


def sample_frame_indices(
    length: int,
    num_frames: int,
    frame_range: int,
    rng: np.random.Generator,
    reverse_prob: float = 0.0,
) -> list[int]:
    """Frame indices (into a video of `length` frames) of one training clip of `num_frames`."""
    if length < 1:
        raise ValueError(f"a video needs at least one frame, got length {length}")
    if num_frames < 1:
        raise ValueError(f"num_frames must be at least 1, got {num_frames}")
    if frame_range < 0:
        raise ValueError(f"frame_range must be non-negative, got {frame_range}")

    if 2 * frame_range + 1 == num_frames:
        if num_frames > length:
            extra = rng.choice(length, size=num_frames - length, replace=True)
            chosen = list(range(length)) + [int(i) for i in extra]
        else:
            start = 0 if length == num_frames else int(rng.integers(0, length - num_frames))
            chosen = list(range(start, start + num_frames))
        if reverse_prob > 0.0 and rng.random() < reverse_prob:
            chosen.reverse()
        return chosen

    reference = int(rng.integers(0, length))
    if num_frames == 1:
        return [reference]
    low = max(0, reference - frame_range)
    high = min(length, reference + frame_range + 1)
    neighbours = [i for i in range(low, high) if i != reference]
    if not neighbours:
        # a one-frame video (the official code fails here): the clip repeats that frame
        neighbours = [reference]
    picked = rng.choice(np.asarray(neighbours), size=num_frames - 1, replace=True)
    return sorted([int(i) for i in picked] + [reference])
