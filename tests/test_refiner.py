"""Temporal refiner: temporal weighting (paper eq. 5) and the short-term convolution."""
from __future__ import annotations

import torch

from dvis_cli.model.refiner import ShortTermConv, TemporalRefiner


def _tiny_refiner() -> TemporalRefiner:
    torch.manual_seed(0)
    return TemporalRefiner(num_classes=4, hidden_dim=16, nheads=2, dim_feedforward=32, num_layers=2, mask_dim=8).eval()


def test_video_class_is_softmax_over_time_weighted_mean():
    refiner = _tiny_refiner()
    normed = torch.randn(1, 5, 3, 16)
    logits, activation = refiner.classify(normed)
    for q in range(3):
        a = torch.softmax(torch.stack([refiner.activation_proj(normed[0, t, q]) for t in range(5)]).squeeze(-1), 0)
        pooled = sum(a[t] * normed[0, t, q] for t in range(5))
        expected = refiner.class_embed(pooled)
        for t in range(5):
            torch.testing.assert_close(logits[0, t, q], expected)
    assert activation.shape == (1, 5, 3)


def test_short_term_conv_keeps_length_with_replicate_padding():
    conv = ShortTermConv(4)
    x = torch.randn(2, 4, 7)
    assert conv(x).shape == (2, 4, 7)
    # replicate padding: a constant sequence stays constant
    const = torch.ones(1, 4, 7)
    out = conv(const)
    torch.testing.assert_close(out, out[..., :1].expand_as(out))


def test_refiner_shapes_and_batch_independence():
    refiner = _tiny_refiner()
    inst, frame = torch.randn(2, 6, 3, 16), torch.randn(2, 6, 3, 16)
    feats = torch.randn(2, 6, 8, 5, 5)
    with torch.no_grad():
        out = refiner(inst, frame, feats, aux=True)
        one = refiner(inst[1:], frame[1:], feats[1:])
    assert out.pred_logits.shape == (2, 6, 3, 5) and out.pred_masks.shape == (2, 6, 3, 5, 5)
    assert len(out.aux_outputs) == 1
    torch.testing.assert_close(out.pred_logits[1:], one.pred_logits)
