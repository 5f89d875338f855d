"""The streaming predictor writes exactly the model core's final predictions, in every mode."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from dvis_cli.inference.clip import predict_clip
from dvis_cli.inference.predictor import SegmentOptions, StreamState, VideoPredictor
from dvis_cli.inference.results import ResultStore, ResultWriter, StoreMeta, decode_mask
from dvis_cli.io import Frame


def _run(model, clip, tmp_path, **opts):
    frames = [Frame(i, i / 10, clip[i]) for i in range(len(clip))]
    writer = ResultWriter(tmp_path, StoreMeta("clip", clip.shape[2], clip.shape[1], 10.0))
    VideoPredictor(model).run(iter(frames), clip.shape[1:3], writer, SegmentOptions(size=clip.shape[1], **opts))
    return ResultStore(tmp_path)


def _masks(store, num_frames):
    h, w = store.meta.height, store.meta.width
    out = np.zeros((len(store.tracks), num_frames, h, w), bool)
    for frame in store.frames():
        for k, (_, rle) in enumerate(store.track_masks(frame)):
            if rle is not None:
                out[k, frame.index] = decode_mask(rle)
    return out


@pytest.mark.parametrize("mode", ["offline", "online", "minvis"])
def test_stream_equals_model_core(mode, offline_model, oracle_clip, tmp_path):
    store = _run(offline_model, oracle_clip, tmp_path, mode=mode)
    ref = predict_clip(offline_model, oracle_clip, mode=mode, size=oracle_clip.shape[1])
    assert [t.slot for t in store.tracks] == ref.query_ids.tolist()
    assert [t.label for t in store.tracks] == ref.labels.tolist()
    np.testing.assert_allclose([t.score for t in store.tracks], ref.scores, atol=1e-6)
    assert [t.track_id for t in store.tracks] == list(range(1, len(ref) + 1))
    np.testing.assert_array_equal(_masks(store, len(oracle_clip)), ref.masks)


def test_semi_online_with_a_long_window_equals_offline(offline_model, oracle_clip, tmp_path):
    semi = _run(offline_model, oracle_clip, tmp_path / "semi", mode="semi-online", window=len(oracle_clip))
    off = _run(offline_model, oracle_clip, tmp_path / "off", mode="offline")
    assert [(t.slot, t.label) for t in semi.tracks] == [(t.slot, t.label) for t in off.tracks]
    np.testing.assert_array_equal(_masks(semi, 6), _masks(off, 6))


def _masks_by_slot(store, num_frames) -> dict[int, np.ndarray]:
    return {t.slot: m for t, m in zip(store.tracks, _masks(store, num_frames))}


def test_semi_online_context_refines_a_window_with_the_frames_before(offline_model, oracle_clip, tmp_path):
    """Window 3 with 3 frames of context: the second window is refined over all 6 frames, so its
    masks are offline's; without context they are not."""
    off = _masks_by_slot(_run(offline_model, oracle_clip, tmp_path / "off", mode="offline", top_k=200), 6)
    ctx = _masks_by_slot(_run(offline_model, oracle_clip, tmp_path / "ctx", mode="semi-online", window=3, context=3, top_k=200), 6)
    bare = _masks_by_slot(_run(offline_model, oracle_clip, tmp_path / "bare", mode="semi-online", window=3, context=0, top_k=200), 6)
    slots = sorted(set(off) & set(ctx) & set(bare))
    assert len(slots) >= 10
    for slot in slots:
        np.testing.assert_array_equal(ctx[slot][3:], off[slot][3:])
    assert any((bare[slot][3:] != off[slot][3:]).any() for slot in slots)


def test_filters_conf_classes_max_instances(offline_model, oracle_clip, tmp_path):
    all_tracks = _run(offline_model, oracle_clip, tmp_path / "a", mode="online").tracks
    label = all_tracks[0].label
    only = _run(offline_model, oracle_clip, tmp_path / "b", mode="online", classes=(label,)).tracks
    assert only and all(t.label == label for t in only)
    capped = _run(offline_model, oracle_clip, tmp_path / "c", mode="online", max_instances=3).tracks
    assert [t.slot for t in capped] == [t.slot for t in all_tracks[:3]]
    threshold = all_tracks[4].score
    confident = _run(offline_model, oracle_clip, tmp_path / "d", mode="online", conf=threshold).tracks
    assert all(t.score >= threshold for t in confident) and len(confident) >= 5


def test_resume_after_kill_gives_the_same_result(offline_model, oracle_clip, tmp_path):
    """Stop after 3 frames (state checkpointed), resume with the saved state: same store as one run."""
    full = _run(offline_model, oracle_clip, tmp_path / "full", mode="online")
    saved = {}
    frames = [Frame(i, i / 10, oracle_clip[i]) for i in range(6)]
    meta = StoreMeta("clip", 224, 128, 10.0)
    writer = ResultWriter(tmp_path / "part", meta)
    predictor = VideoPredictor(offline_model)
    options = SegmentOptions(mode="online", size=128, checkpoint_every=3)

    def killing_frames():
        for f in frames:
            if f.index == 4:  # the run dies while frame 4 is being read
                raise KeyboardInterrupt
            yield f

    with pytest.raises(KeyboardInterrupt):
        predictor.run(killing_frames(), (128, 224), writer, options, checkpoint=lambda s: saved.update(s.to_dict()))
    writer.close()
    assert saved["frames_done"] == 3
    state = StreamState.from_dict(saved, "cpu")
    writer = ResultWriter(tmp_path / "part", meta, resume_frames=state.frames_done)
    predictor.run(iter(frames[state.last_index + 1 :]), (128, 224), writer, options, state=state)
    resumed = ResultStore(tmp_path / "part")
    assert [(t.slot, t.label) for t in resumed.tracks] == [(t.slot, t.label) for t in full.tracks]
    np.testing.assert_array_equal(_masks(resumed, 6), _masks(full, 6))
    assert [f.index for f in resumed.frames()] == list(range(6))


def test_precision_checks():
    from dvis_cli.errors import InputError
    from dvis_cli.inference.device import check_precision, resolve_device

    cpu = resolve_device("cpu")
    with pytest.raises(InputError, match="fp16 needs a CUDA device"):
        check_precision("fp16", cpu)
    assert check_precision("bf16", cpu) == torch.bfloat16
    if not torch.cuda.is_available():
        with pytest.raises(InputError, match="no CUDA GPU"):
            resolve_device("cuda:0")
