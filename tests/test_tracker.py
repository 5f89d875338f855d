"""Referring tracker: pre-matching orientation, state carried across windows, frame_forward."""
from __future__ import annotations

import numpy as np
import torch

from dvis_cli.model.tracker import ReferringTracker, match_queries


def _cycle_queries():
    torch.manual_seed(0)
    a, b, c = torch.randn(3, 16)
    reference = torch.stack([a, b, c])  # track slots 0, 1, 2 = objects A, B, C
    current = torch.stack([b, c, a]) + 0.01 * torch.randn(3, 16)  # the same objects in another order
    return reference, current


def test_corrected_orientation_follows_each_object():
    reference, current = _cycle_queries()
    idx = match_queries(reference, current, official_orientation=False)
    assert idx.tolist() == [2, 0, 1]  # slot 0 (A) continues with current[2] (A'), ...


def test_official_orientation_reproduces_the_dvis_quirk():
    """DVIS solves the transposed problem and takes column indices: the inverse permutation.
    ref = [A, B, C], cur = [B', C', A'] -> DVIS reorders cur to [C', A', B'] (dvis-official.md §3.3)."""
    reference, current = _cycle_queries()
    idx = match_queries(reference, current, official_orientation=True)
    assert idx.tolist() == [1, 2, 0]
    # a swap (2-cycle) comes out right in both orientations
    swap = torch.stack([reference[1], reference[0], reference[2]])
    assert match_queries(reference, swap, True).tolist() == match_queries(reference, swap, False).tolist() == [1, 0, 2]


def test_nan_costs_are_zeroed():
    ref = torch.zeros(3, 4)
    ref[0] = float("nan")
    idx = match_queries(ref, torch.randn(3, 4), official_orientation=False)
    assert sorted(idx.tolist()) == [0, 1, 2]


def _tiny_tracker(official: bool = True) -> ReferringTracker:
    torch.manual_seed(1)
    return ReferringTracker(num_classes=3, hidden_dim=32, nheads=4, dim_feedforward=64, num_layers=3, mask_dim=8, official_matching=official).eval()


def test_state_carries_across_windows():
    tracker = _tiny_tracker()
    embeds = torch.randn(1, 7, 5, 32)
    feats = torch.randn(1, 7, 8, 6, 6)
    with torch.no_grad():
        whole, _ = tracker(embeds, feats)
        parts, state = [], None
        for start in range(0, 7, 3):
            out, state = tracker(embeds[:, start : start + 3], feats[:, start : start + 3], state)
            parts.append(out)
    torch.testing.assert_close(torch.cat([p.pred_logits for p in parts], 1), whole.pred_logits)
    torch.testing.assert_close(torch.cat([p.pred_masks for p in parts], 1), whole.pred_masks)
    assert torch.equal(torch.cat([p.match_indices for p in parts], 1), whole.match_indices)


def test_tracker_follows_permuted_queries():
    """If frame t+1's queries are a permutation of frame t's, each slot keeps its object."""
    tracker = _tiny_tracker(official=False)
    first = torch.randn(1, 1, 5, 32)
    perm = torch.tensor([3, 0, 4, 1, 2])
    second = first[:, :, perm]
    with torch.no_grad():
        out, _ = tracker(torch.cat([first, second], 1), None)
    assert out.match_indices[0, 1].tolist() == torch.argsort(perm).tolist()


def test_frame_forward_is_each_frame_as_a_first_frame():
    tracker = _tiny_tracker()
    embeds = torch.randn(1, 4, 5, 32)
    with torch.no_grad():
        ff = tracker.frame_forward(embeds)
        for t in range(4):
            first, _ = tracker(embeds[:, t : t + 1], None)
            torch.testing.assert_close(ff[:, t], first.pred_embds[:, 0])


def test_batch_elements_are_matched_independently():
    """Several videos in a batch give the same result as one at a time (unlike the official code)."""
    tracker = _tiny_tracker()
    embeds = torch.randn(2, 4, 5, 32)
    with torch.no_grad():
        both, _ = tracker(embeds, None)
        for b in range(2):
            single, _ = tracker(embeds[b : b + 1], None)
            torch.testing.assert_close(both.pred_logits[b : b + 1], single.pred_logits)
            assert np.array_equal(both.match_indices[b].numpy(), single.match_indices[0].numpy())
