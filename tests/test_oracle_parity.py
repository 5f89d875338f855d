"""The model core against the official DVIS implementation's outputs on the oracle clip
(../shared/spec/oracle: same deterministic weights, float32, CPU)."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from dvis_cli.inference.clip import predict_clip
from dvis_cli.inference.postprocess import vis_topk

LOGIT_TOL = 1e-3  # the bar; we measure ~1e-5
# Pixels whose upsampled mask logit is this close to 0 may flip with float rounding order.
THRESHOLD_BAND = 1e-4


def _np(x: torch.Tensor) -> np.ndarray:
    return x.detach().float().cpu().numpy()


@pytest.fixture(scope="module")
def clip_outputs(offline_model, oracle_clip):
    frames = torch.from_numpy(oracle_clip).permute(0, 3, 1, 2)
    return offline_model.forward_clip(offline_model.normalize(frames), "offline", keep_intermediate=True)


def test_segmenter_matches_official(clip_outputs, oracle_outputs):
    o = oracle_outputs
    np.testing.assert_allclose(_np(clip_outputs.seg_logits), o["offline_seg_pred_logits"], atol=LOGIT_TOL, rtol=0)
    np.testing.assert_allclose(_np(clip_outputs.seg_embds), o["offline_seg_pred_embds"], atol=LOGIT_TOL, rtol=0)
    np.testing.assert_allclose(_np(clip_outputs.mask_features0), o["offline_seg_mask_features_frame0"], atol=LOGIT_TOL, rtol=0)
    np.testing.assert_allclose(_np(clip_outputs.seg_masks[:, :8]), o["offline_seg_pred_masks_q0to7"], atol=1e-3, rtol=1e-4)


def test_tracker_matches_official(clip_outputs, oracle_outputs):
    o = oracle_outputs
    np.testing.assert_array_equal(clip_outputs.match_indices.numpy(), o["offline_trk_match_indices"])
    np.testing.assert_allclose(_np(clip_outputs.trk_logits), o["offline_trk_pred_logits"], atol=LOGIT_TOL, rtol=0)
    np.testing.assert_allclose(_np(clip_outputs.trk_embds), o["offline_trk_pred_embds"], atol=LOGIT_TOL, rtol=0)
    np.testing.assert_allclose(_np(clip_outputs.trk_masks[:, :8]), o["offline_trk_pred_masks_q0to7"], atol=1e-3, rtol=1e-4)
    np.testing.assert_allclose(_np(clip_outputs.frame_forward), o["offline_trk_frame_forward"], atol=LOGIT_TOL, rtol=0)


def test_refiner_matches_official(clip_outputs, oracle_outputs):
    o = oracle_outputs
    np.testing.assert_allclose(_np(clip_outputs.ref_activation), o["offline_ref_activation_logits"], atol=LOGIT_TOL, rtol=0)
    np.testing.assert_allclose(_np(clip_outputs.ref_logits), o["offline_ref_pred_logits"], atol=LOGIT_TOL, rtol=0)
    np.testing.assert_allclose(_np(clip_outputs.ref_embds), o["offline_ref_pred_embds"], atol=LOGIT_TOL, rtol=0)
    ref_masks = clip_outputs.final_masks[:8].transpose(0, 1)
    np.testing.assert_allclose(_np(ref_masks), o["offline_ref_pred_masks_q0to7"], atol=1e-3, rtol=1e-4)
    np.testing.assert_allclose(_np(clip_outputs.final_logits), o["offline_final_cls_logits"], atol=LOGIT_TOL, rtol=0)
    np.testing.assert_allclose(_np(clip_outputs.aux_logits), o["offline_final_aux_cls_logits"], atol=LOGIT_TOL, rtol=0)


def _unpack(o, key, shape):
    return np.unpackbits(o[key])[: int(np.prod(shape))].reshape(shape).astype(bool)


def _check_final(model, clip, o, mode, prefix, k):
    """Same (query, label) set, scores to 1e-6, masks equal except pixels on the threshold."""
    pred = predict_clip(model, clip, mode=mode, resize=False)
    ref_masks = _unpack(o, f"{prefix}pred_masks_packed", (k, *clip.shape[:3]))
    if mode == "minvis":  # the oracle stores no query ids for MinVIS: pair by (label, score)
        ref_keys = [(int(l), round(float(s), 5)) for l, s in zip(o[f"{prefix}pred_labels"], o[f"{prefix}pred_scores"])]
        our_keys = [(int(l), round(float(s), 5)) for l, s in zip(pred.labels, pred.scores)]
    else:
        ref_keys = [(int(q), int(l)) for q, l in zip(o[f"{prefix}pred_ids"], o[f"{prefix}pred_labels"])]
        our_keys = [(int(q), int(l)) for q, l in zip(pred.query_ids, pred.labels)]
    assert sorted(our_keys) == sorted(ref_keys)
    order = [our_keys.index(key) for key in ref_keys]
    np.testing.assert_allclose(pred.scores[order], o[f"{prefix}pred_scores"], atol=1e-6)

    # Recompute the upsampled logits to see how close every differing pixel is to the threshold.
    out = model.forward_clip(model.normalize(torch.from_numpy(clip).permute(0, 3, 1, 2)), mode)
    top = vis_topk(out.final_logits, k, out.aux_logits)
    logits = F.interpolate(out.final_masks[top.query_ids], size=clip.shape[1:3], mode="bilinear", align_corners=False)
    differing = 0
    for ours_i, ref_i in zip(order, range(k)):
        diff = pred.masks[ours_i] != ref_masks[ref_i]
        differing += int(diff.sum())
        assert np.all(np.abs(logits[ours_i].numpy()[diff]) < THRESHOLD_BAND), "a mask differs away from the threshold"
    assert differing <= 2, f"{differing} differing pixels"
    return differing


def test_final_predictions_offline(offline_model, oracle_clip, oracle_outputs):
    _check_final(offline_model, oracle_clip, oracle_outputs, "offline", "offline_", 20)


def test_final_predictions_online(offline_model, oracle_clip, oracle_outputs):
    _check_final(offline_model, oracle_clip, oracle_outputs, "online", "online_", 20)
    out = offline_model.forward_clip(offline_model.normalize(torch.from_numpy(oracle_clip).permute(0, 3, 1, 2)), "online")
    np.testing.assert_allclose(_np(out.final_logits), oracle_outputs["online_final_cls_logits"], atol=LOGIT_TOL, rtol=0)


def test_final_predictions_minvis(official_checkpoints, oracle_clip, oracle_outputs):
    from dvis_cli.checkpoint.load import load_model

    model = load_model(official_checkpoints["minvis_r50_ovis"])
    assert model.best_mode == "minvis"
    _check_final(model, oracle_clip, oracle_outputs, "minvis", "online_minvis_", 10)
    out = model.forward_clip(model.normalize(torch.from_numpy(oracle_clip).permute(0, 3, 1, 2)), "minvis")
    np.testing.assert_allclose(_np(out.final_logits), oracle_outputs["online_minvis_final_cls_logits"], atol=LOGIT_TOL, rtol=0)


def test_window_size_does_not_change_results(offline_model, oracle_clip, oracle_outputs):
    """The official fullclip run (no windows) and window 3 agree; so must ours for any window."""
    images = offline_model.normalize(torch.from_numpy(oracle_clip).permute(0, 3, 1, 2))
    a = offline_model.forward_clip(images, "offline", window_size=1)
    b = offline_model.forward_clip(images, "offline", window_size=6)
    torch.testing.assert_close(a.final_logits, b.final_logits, atol=1e-4, rtol=0)
    torch.testing.assert_close(a.final_masks, b.final_masks, atol=1e-3, rtol=1e-4)
    top = vis_topk(b.final_logits, 20, b.aux_logits)
    assert sorted(zip(top.query_ids.tolist(), top.labels.tolist())) == sorted(
        zip(oracle_outputs["offline_fullclip_pred_ids"].tolist(), oracle_outputs["offline_fullclip_pred_labels"].tolist())
    )
