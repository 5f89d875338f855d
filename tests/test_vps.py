"""Video panoptic segmentation: the official merge rules, the streamed merge == the whole-clip merge,
and the VIPSeg exports scoring with our VPQ / STQ."""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from dvis_cli.classes import ClassSet
from dvis_cli.config import TestConfig as InferenceSettings
from dvis_cli.eval import evaluate_vipseg
from dvis_cli.eval.vipseg_io import read_id_png
from dvis_cli.export.vipseg import pan_id
from dvis_cli.inference.clip import predict_clip_panoptic
from dvis_cli.inference.panoptic import PanopticMerger, panoptic_merge_clip
from dvis_cli.inference.predictor import SegmentOptions, VideoPredictor
from dvis_cli.inference.results import ResultStore, ResultWriter, StoreMeta, decode_mask
from dvis_cli.inference.segment import segment_video
from dvis_cli.io import Frame

# things first (sorted by dataset id), then stuff, as the VIPSeg class order
CLASSES = ClassSet(("car", "person", "dog", "wall", "road", "sky"), (46, 60, 62, 0, 18, 29), 3)
# The model tests run the embedded synthetic-shapes model as a panoptic one (discs, squares and
# triangles as things, stars and rings as stuff): trained weights make real, varied segments,
# where random ones collapse to one class or none.
MODEL_CLASSES = ClassSet(("disc", "square", "triangle", "star", "ring"), (11, 12, 13, 21, 22), 3)
SIZE = 128
EMBEDDED = Path(__file__).resolve().parents[1] / "weights" / "dvis-tiny-synth.safetensors"


@pytest.fixture(scope="module")
def vps_model():
    from dvis_cli.checkpoint.load import read_any
    from dvis_cli.model.build import build_dvis

    loaded = read_any(EMBEDDED)
    config = dataclasses.replace(
        loaded.config, name="offline_tiny_vipseg", dataset="vipseg", classes=MODEL_CLASSES,
        test=InferenceSettings(task="vps", object_mask_threshold=0.5, overlap_threshold=0.5),
    )
    model = build_dvis(config)
    model.load_state_dict(loaded.state_dict)
    return model.eval()


@pytest.fixture(scope="module")
def clip() -> np.ndarray:
    """8 frames, 96 x 160, of the synthetic shapes (every class, some overlapping)."""
    from dvis_cli.data.synth import SynthConfig, generate_video

    video = generate_video(SynthConfig(videos=1, frames=8, seed=5, objects=(6, 6)), 0)
    return video.frames


# ---------------------------------------------------------------------------------------------
# The merge rules on crafted logits (8 x 8 frames, no resizing: bilinear to the same size is a copy)

BIG = 20.0


def _logits(*rows: tuple[int, float]) -> torch.Tensor:
    """One (class, logit) per query -> (Q, K+1) logits with that class far ahead (K = 6)."""
    out = torch.full((len(rows), CLASSES.num_classes + 1), -BIG)
    for q, (label, value) in enumerate(rows):
        out[q, label] = value
    return out


def _merge(cls, masks, **kw):
    return panoptic_merge_clip(cls, masks, (8, 8), (8, 8), (8, 8), CLASSES.num_things, **kw)


def test_merge_rules_stuff_shares_an_id_things_get_new_ids():
    T = 2
    masks = torch.full((5, T, 8, 8), -BIG)
    masks[0, :, :4, 4:] = BIG  # stuff "road" (class 4): top right
    masks[1, :, :, :4] = BIG  # thing "car": left half
    masks[2, :, 4:, 4:6] = BIG  # stuff "road" again: paints into the first road segment
    masks[3, 1, 6:, 6:] = BIG  # thing "person", frame 1 only
    masks[4, :, :, :] = BIG  # background query: never kept
    cls = _logits((4, BIG), (0, BIG), (4, BIG), (1, BIG), (CLASSES.num_classes, BIG))
    pan = _merge(cls, masks)
    assert pan.segments_infos == [
        {"id": 1, "isthing": False, "category_id": 4},
        {"id": 2, "isthing": True, "category_id": 0},
        {"id": 3, "isthing": True, "category_id": 1},
    ]
    assert pan.query_ids == [0, 1, 3]
    want = np.zeros((T, 8, 8), np.int32)
    want[:, :4, 4:] = 1
    want[:, :, :4] = 2
    want[:, 4:, 4:6] = 1
    want[1, 6:, 6:] = 3
    np.testing.assert_array_equal(pan.ids, want)
    assert pan.ids.dtype == np.int32


def test_merge_rules_overlap_threshold_and_void():
    masks = torch.full((3, 1, 8, 8), -BIG)
    masks[0, 0, :, :4] = BIG  # car, sure (score ~1): wins the left half
    masks[1, 0, :, :5] = BIG  # dog, less sure: its mask is mostly under the car
    masks[2, 0, :, 6:] = BIG  # sky, below the object threshold
    cls = _logits((0, BIG), (2, 1.0), (5, 0.1))
    cls[1, CLASSES.num_classes] = 0.0  # dog: ~0.73 dog, ~0.27 background
    cls[2, [3, CLASSES.num_classes]] = 0.0  # sky ~0.36, wall and background ~0.32
    pan = _merge(cls, masks, object_mask_threshold=0.5)
    # the dog wins 8 of its 40 pixels (0.2 < 0.8): skipped, those pixels stay void
    assert pan.segments_infos == [{"id": 1, "isthing": True, "category_id": 0}]
    want = np.zeros((1, 8, 8), np.int32)
    want[0, :, :4] = 1
    np.testing.assert_array_equal(pan.ids, want)
    # a lower overlap threshold keeps the dog, on the pixels it won only
    pan = _merge(cls, masks, object_mask_threshold=0.5, overlap_threshold=0.1)
    assert [s["category_id"] for s in pan.segments_infos] == [0, 2]
    want[0, :, 4] = 2
    np.testing.assert_array_equal(pan.ids, want)
    # a pixel won by a query whose own mask is off there (sigmoid < 0.5) is void too
    masks[0, 0, 0, 0] = -0.5
    masks[1, 0, 0, 0] = -BIG
    pan = _merge(cls, masks, object_mask_threshold=0.5, overlap_threshold=0.1)
    want[0, 0, 0] = 0
    np.testing.assert_array_equal(pan.ids, want)


def test_merge_with_nothing_kept_is_all_void():
    cls = _logits((CLASSES.num_classes, BIG), (3, -BIG))
    pan = _merge(cls, torch.randn(2, 3, 8, 8) * 5)
    assert pan.segments_infos == [] and pan.query_ids == []
    assert pan.ids.shape == (3, 8, 8) and not pan.ids.any()


def test_offline_aux_logits_raise_the_non_background_columns():
    masks = torch.full((1, 1, 8, 8), BIG)
    cls = _logits((CLASSES.num_classes, 1.0))  # background ~0.73, wall ~0.27
    cls[0, 3] = 0.0
    aux = _logits((3, BIG))  # the tracker is sure of "wall"
    assert _merge(cls, masks).segments_infos == []
    pan = _merge(cls, masks, aux_cls_logits=aux)
    assert pan.segments_infos == [{"id": 1, "isthing": False, "category_id": 3}]
    assert (pan.ids == 1).all()


@pytest.mark.parametrize("seed", range(5))
def test_frame_by_frame_merge_equals_the_volume_merge(seed):
    """Random logits with a real resize chain (4x up, crop, up to an odd size)."""
    g = torch.Generator().manual_seed(seed)
    Q, T = 12, 5
    cls = torch.randn(Q, CLASSES.num_classes + 1, generator=g) * 3
    aux = torch.randn(Q, CLASSES.num_classes + 1, generator=g) * 3
    masks = torch.randn(Q, T, 8, 10, generator=g) * 4 + 1
    args = ((32, 40), (30, 37), (45, 55), CLASSES.num_things)
    whole = panoptic_merge_clip(cls, masks, *args, aux, 0.2, 0.3)
    frames = PanopticMerger(cls, *args, aux, 0.2, 0.3).merge(masks[:, t] for t in range(T))
    assert whole.segments_infos and frames.segments_infos == whole.segments_infos
    assert frames.query_ids == whole.query_ids and frames.scores == whole.scores
    np.testing.assert_array_equal(frames.ids, whole.ids)


# ---------------------------------------------------------------------------------------------
# The streaming predictor == the clip API


def _store_ids(store: ResultStore, num_frames: int) -> np.ndarray:
    ids = np.zeros((num_frames, store.meta.height, store.meta.width), np.int32)
    for t, frame in enumerate(store.frames()):
        assert frame.index == t
        for segment_id, rle in frame.masks.items():
            assert not ids[t][decode_mask(rle)].any()  # segments never overlap
            ids[t][decode_mask(rle)] = segment_id
    return ids


@pytest.mark.parametrize("mode", ["offline", "online"])
def test_stream_equals_clip_merge(mode, vps_model, clip, tmp_path):
    meta = StoreMeta("clip", clip.shape[2], clip.shape[1], 10.0, task="vps")
    writer = ResultWriter(tmp_path / "store", meta)
    frames = iter([Frame(i, i / 10, clip[i]) for i in range(len(clip))])
    result = VideoPredictor(vps_model).run(frames, clip.shape[1:3], writer, SegmentOptions(mode=mode, size=SIZE))
    store = ResultStore(tmp_path / "store")
    with torch.inference_mode():
        ref = predict_clip_panoptic(vps_model, clip, mode, SIZE)
    assert len(ref.segments_infos) >= 2, "the test model should make several segments"
    assert result.frames == len(clip)
    # windowed vs whole-clip batches round differently (oneDNN picks kernels by batch size, and the
    # thread count changes them): a near-tie pixel may flip, never more than a few in 49,152
    mismatch = int((_store_ids(store, len(clip)) != ref.ids).sum())
    assert mismatch <= 5, mismatch
    assert [(t.track_id, t.slot, t.label) for t in store.tracks] == [(s["id"], s["id"], s["category_id"]) for s in ref.segments_infos]
    assert [t.category_id for t in store.tracks] == [MODEL_CLASSES.dataset_ids[s["category_id"]] for s in ref.segments_infos]
    segments = json.loads((store.folder / "segments.json").read_text())
    assert [s["query_id"] for s in segments] == ref.query_ids
    assert [s["isthing"] for s in segments] == [s["isthing"] for s in ref.segments_infos]
    assert sorted(p.name for p in store.folder.iterdir()) == ["frames.jsonl", "meta.json", "segments.json", "tracks.json"]


def test_stream_makes_things_and_stuff(vps_model, clip):
    with torch.inference_mode():
        ref = predict_clip_panoptic(vps_model, clip, "online", SIZE)
    assert {s["isthing"] for s in ref.segments_infos} == {True, False}


# ---------------------------------------------------------------------------------------------
# VIPSeg exports


def _gt_from(pred: dict, width: int, height: int) -> dict:
    """A VIPSeg GT json that is the prediction itself."""
    return {
        "videos": [{"video_id": v["video_id"], "images": [{"id": f["image_id"], "file_name": f["file_name"], "width": width, "height": height}
                                                        for f in v["annotations"]]} for v in pred["annotations"]],
        "annotations": pred["annotations"],
        "categories": [{"id": did, "name": name, "isthing": int(k < MODEL_CLASSES.num_things)}
                       for k, (did, name) in enumerate(zip(MODEL_CLASSES.dataset_ids, MODEL_CLASSES.names))],
    }


def test_segment_video_writes_vipseg_that_scores_100_against_itself(vps_model, clip, tmp_path):
    folder = tmp_path / "1234_video"
    folder.mkdir()
    for t, frame in enumerate(clip):
        cv2.imwrite(str(folder / f"{10 * t:08d}.jpg"), frame[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, 100])
    run = tmp_path / "run"
    report = segment_video(VideoPredictor(vps_model), folder, run, "1234_video", SegmentOptions(size=SIZE), save_masks="png")
    assert report.warnings == []
    pan = run / "pan_pred" / "1234_video"
    assert report.outputs["pan_pred"] == report.outputs["masks"] == str(pan)
    assert report.outputs["pred_json"] == str(run / "pred.json")
    assert not (run / "1234_video.ytvis.json").exists() and not (run / "masks").exists()
    assert sorted(p.name for p in pan.iterdir()) == [f"{10 * t:08d}.png" for t in range(len(clip))]
    pred = json.loads((run / "pred.json").read_text())
    (video,) = pred["annotations"]
    assert video["video_id"] == "1234_video" and len(video["annotations"]) == len(clip)

    # PNG ids are the store's segment ids through pan_id; segments_info matches the PNGs
    store = ResultStore(run / "1234_video.results")
    ids = _store_ids(store, len(clip))
    by_id = {t.track_id: t for t in store.tracks}
    assert len(by_id) >= 2
    for t, entry in enumerate(video["annotations"]):
        png = read_id_png(pan / entry["file_name"], "png")
        present = [int(s) for s in np.unique(ids[t]) if s]
        expect = np.zeros_like(png)
        for s in present:
            expect[ids[t] == s] = pan_id(s)
        np.testing.assert_array_equal(png, expect)
        assert [i["id"] for i in entry["segments_info"]] == [pan_id(s) for s in present]
        for info, s in zip(entry["segments_info"], present):
            ys, xs = np.nonzero(ids[t] == s)
            assert info["category_id"] == by_id[s].category_id and info["iscrowd"] == 0
            assert info["area"] == len(ys)
            assert info["bbox"] == [int(xs.min()), int(ys.min()), int(xs.max() - xs.min() + 1), int(ys.max() - ys.min() + 1)]

    gt = _gt_from(pred, clip.shape[2], clip.shape[1])
    res = evaluate_vipseg(gt, run / "pan_pred", run / "pred.json", run / "pan_pred")
    assert res.vpq == pytest.approx(100.0)
    assert res.stq.stq == pytest.approx(1.0)

    # a crafted GT: the first segment's class changed -> no longer perfect
    seg1 = by_id[1]
    wrong = next(c["id"] for c in gt["categories"] if c["id"] != seg1.category_id
                 and bool(c["isthing"]) == (seg1.label < MODEL_CLASSES.num_things))
    gt = json.loads(json.dumps(gt))
    for frame in gt["annotations"][0]["annotations"]:
        for info in frame["segments_info"]:
            if info["id"] == pan_id(1):
                info["category_id"] = wrong
    assert evaluate_vipseg(gt, run / "pan_pred", run / "pred.json", run / "pan_pred").vpq < 100.0

    # a second video in the same run folder joins pred.json; rewriting one replaces its entry
    from dvis_cli.export import write_vipseg

    write_vipseg(store, run, "other")
    write_vipseg(store, run)
    assert [v["video_id"] for v in json.loads((run / "pred.json").read_text())["annotations"]] == ["1234_video", "other"]


def test_cli_segment_then_score(vps_model, clip, tmp_path, capsys):
    from dvis_cli.checkpoint.store import save_weights
    from dvis_cli.cli.app import main

    weights = tmp_path / "vps.safetensors"
    save_weights(weights, vps_model.state_dict(), vps_model.config)
    folder = tmp_path / "vid"
    folder.mkdir()
    for t, frame in enumerate(clip):
        cv2.imwrite(str(folder / f"{t:05d}.png"), frame[:, :, ::-1])
    main(["segment", str(folder), "--weights", str(weights), "--out", str(tmp_path / "runs"), "--progress", "none",
          "--size", str(SIZE), "--mode", "online", "--top-k", "5"])
    assert "warning: vid: --top-k not applied" in capsys.readouterr().err
    run = tmp_path / "runs" / "exp"
    pred = json.loads((run / "pred.json").read_text())
    gt_json = tmp_path / "gt.json"
    gt_json.write_text(json.dumps(_gt_from(pred, clip.shape[2], clip.shape[1])))
    capsys.readouterr()
    main(["eval", "score", "--gt-pan", str(run / "pan_pred"), "--gt-json", str(gt_json),
          "--pred-pan", str(run / "pan_pred"), "--pred-json", str(run / "pred.json")])
    assert "100.0" in capsys.readouterr().out


def test_instance_filters_on_a_panoptic_model_are_reported_not_silently_dropped(vps_model, clip, tmp_path):
    folder = tmp_path / "vid"
    folder.mkdir()
    for t, frame in enumerate(clip[:3]):
        cv2.imwrite(str(folder / f"{t:05d}.png"), frame[:, :, ::-1])
    options = SegmentOptions(size=SIZE, mode="online", conf=0.5, top_k=3)
    report = segment_video(VideoPredictor(vps_model), folder, tmp_path / "run", "vid", options)
    (warning,) = report.warnings
    assert warning.startswith("--conf, --top-k not applied")


def test_eval_vipseg_dataset_run(vps_model, clip, tmp_path, capsys):
    """`dvis eval vipseg` over the official 720p layout: pan_pred + pred.json, then VPQ against GT."""
    import shutil

    from dvis_cli.checkpoint.store import save_weights
    from dvis_cli.cli.app import main

    weights = tmp_path / "vps.safetensors"
    save_weights(weights, vps_model.state_dict(), vps_model.config)
    root = tmp_path / "datasets" / "VIPSeg" / "VIPSeg_720P"
    frames = root / "images" / "12_abc"
    frames.mkdir(parents=True)
    names = [f"{t:08d}" for t in range(len(clip))]
    for name, frame in zip(names, clip):
        cv2.imwrite(str(frames / f"{name}.jpg"), frame[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, 100])
    split = {"annotations": [{"video_id": "12_abc", "annotations": [{"image_id": n, "file_name": f"{n}.png", "segments_info": []} for n in names]}]}
    (root / "panoptic_gt_VIPSeg_val.json").write_text(json.dumps(split))
    args = ["eval", "vipseg", "--weights", str(weights), "--data-root", str(tmp_path / "datasets"), "--out", str(tmp_path / "runs"),
            "--size", str(SIZE)]
    main(args)  # no GT PNGs yet: a submission only
    run = tmp_path / "runs" / "vipseg"
    pred = json.loads((run / "pred.json").read_text())
    assert [v["video_id"] for v in pred["annotations"]] == ["12_abc"]
    assert sorted(p.stem for p in (run / "pan_pred" / "12_abc").iterdir()) == names
    # the predictions as ground truth: the run scores VPQ 100
    (root / "panoptic_gt_VIPSeg_val.json").write_text(json.dumps(_gt_from(pred, clip.shape[2], clip.shape[1])))
    shutil.copytree(run / "pan_pred", root / "panomasksRGB")
    capsys.readouterr()
    main(args + ["--resume"])
    assert json.loads((run / "metrics.json").read_text())["VPQ"] == pytest.approx(100.0)
