"""OVIS occlusion levels, as the OVIS evaluator (qjy981010/cocoapi `oviseval.py`) defines them.

A GT track's occlusion score is the mean of the top half of its per-frame label scores; it is
then binned into light / medium / heavy. Only ground truth is binned: detections are never
ignored for occlusion, so an unmatched detection is a false positive in every bin.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

# Per-frame label -> score (`occann2score` in oviseval.py); null labels are skipped.
LABEL_SCORES: dict[str, float] = {"no_occlusion": 0.0, "slight_occlusion": 0.25, "severe_occlusion": 0.75}

# `occRng` of oviseval.py. Official quirk kept: both ends are inclusive, so a track scoring exactly
# 0.25 counts as light AND medium, and one scoring 0.5 as medium AND heavy (common: scores are
# means of {0, .25, .75}).
OCCLUSION_BINS: dict[str, tuple[float, float]] = {
    "light": (0.0, 0.25),
    "medium": (0.25, 0.5),
    "heavy": (0.5, 1.0),
}


def occlusion_score(labels: Sequence[str | None]) -> float:
    """Mean of the top ceil(n/2) scores of the non-null labels (n = 0 raises, as officially)."""
    scores = []
    for label in labels:
        if label is None:
            continue
        if label not in LABEL_SCORES:
            raise ValueError(f"unknown occlusion label {label!r} (expected one of {', '.join(LABEL_SCORES)} or null)")
        scores.append(LABEL_SCORES[label])
    if not scores:
        # oviseval.py divides by zero here.
        raise ValueError("every occlusion label is null, the track has no occlusion score")
    scores.sort()
    top = scores[-math.ceil(len(scores) / 2):]
    return sum(top) / len(top)
