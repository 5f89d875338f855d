"""Training clip frame selection follows the official DVIS rules."""
from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from dvis_cli.data.sampling import sample_frame_indices


def _draws(n, *args, **kw):
    rng = np.random.default_rng(0)
    return [sample_frame_indices(*args, rng=rng, **kw) for _ in range(n)]


def test_contiguous_clip_never_uses_last_start():
    clips = _draws(2000, 10, 5, 2)
    starts = Counter(c[0] for c in clips)
    for c in clips:
        assert c == list(range(c[0], c[0] + 5))
    # starts are drawn from [0, length - num_frames): 0..4, never 5 (the last possible start)
    assert set(starts) == {0, 1, 2, 3, 4}
    assert min(starts.values()) > 300


def test_video_as_long_as_clip_starts_at_zero():
    assert all(c == [0, 1, 2, 3, 4] for c in _draws(50, 5, 5, 2))


def test_short_video_padded_with_unsorted_repeats():
    clips = _draws(300, 3, 5, 2)
    for c in clips:
        assert c[:3] == [0, 1, 2] and len(c) == 5 and all(0 <= i < 3 for i in c[3:])
    assert any(c[3] > c[4] for c in clips)  # repeats are appended as drawn, not sorted


def test_reversal():
    clips = _draws(1000, 30, 5, 2, reverse_prob=0.5)
    backwards = [c for c in clips if c[0] > c[-1]]
    assert 400 < len(backwards) < 600
    for c in backwards:
        assert c == list(range(c[0], c[0] - 5, -1))
    assert all(c[0] < c[-1] for c in _draws(200, 30, 5, 2))  # reverse_prob 0: never


def test_single_frame():
    clips = _draws(2000, 7, 1, 0) + _draws(2000, 7, 1, 20)
    assert all(len(c) == 1 for c in clips)
    assert set(c[0] for c in clips) == set(range(7))


def test_general_case_reference_and_neighbours():
    clips = _draws(500, 40, 3, 5)
    for c in clips:
        assert c == sorted(c) and len(c) == 3
        assert c[-1] - c[0] <= 10
    # a one-frame video repeats its frame instead of failing
    assert _draws(3, 1, 3, 5) == [[0, 0, 0]] * 3


def test_deterministic_from_generator():
    a = sample_frame_indices(50, 21, 10, np.random.default_rng(7), reverse_prob=0.5)
    b = sample_frame_indices(50, 21, 10, np.random.default_rng(7), reverse_prob=0.5)
    assert a == b


def test_bad_arguments():
    with pytest.raises(ValueError):
        sample_frame_indices(0, 5, 2, np.random.default_rng(0))
    with pytest.raises(ValueError):
        sample_frame_indices(5, 0, 2, np.random.default_rng(0))
