"""Video AP library: eval.md section 5.2 reference numbers, matching rules, IoU, loader checks, speed."""
from __future__ import annotations

import copy
import json
import time
from pathlib import Path

import numpy as np
import pytest
from pycocotools import mask as mask_api

from dvis_cli.errors import InputError
from dvis_cli.eval import evaluate_video_ap, load_vis_ground_truth, load_vis_results
from dvis_cli.eval.matching import greedy_match
from dvis_cli.eval.occlusion import occlusion_score
from dvis_cli.eval.video_ap import IOU_THRESHOLDS
from dvis_cli.eval.video_iou import video_iou

DATA = Path(__file__).parent / "data" / "eval"
KEYS = ["AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl"]


def _rle(mask: np.ndarray) -> dict:
    r = mask_api.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": r["size"], "counts": r["counts"].decode()}


def _case(name: str = "ytvis_case_gt.json"):
    gt = load_vis_ground_truth(DATA / name)
    return gt, load_vis_results(DATA / "ytvis_case_results.json", gt)


def test_reference_case_ious():
    gt, preds = _case()
    by_cat = lambda tracks, c: [t for t in tracks if t.category_id == c]  # noqa: E731
    cat1 = sorted(by_cat(preds, 1), key=lambda t: -t.score)
    g1 = by_cat(gt.tracks, 1)
    iou = video_iou([t.rles for t in cat1], [t.mask_areas for t in cat1],
                    [g.rles for g in g1], [g.mask_areas for g in g1])
    np.testing.assert_array_equal(iou, [[0, 0], [1, 0], [0, 0.875]])
    g2, p2 = by_cat(gt.tracks, 2), by_cat(preds, 2)
    assert video_iou([p2[0].rles], [p2[0].mask_areas], [g2[0].rles], [g2[0].mask_areas])[0, 0] == 0.75


def test_reference_case_stats():
    res = evaluate_video_ap(*_case())
    expected = [0.591914, 0.833333, 0.833333, 0.591914, -1, -1, 0.3, 0.75, 0.75, 0.75, -1, -1]
    assert list(res.stats) == KEYS
    np.testing.assert_allclose(res.official_stats(), expected, atol=5e-7)
    np.testing.assert_allclose([res.per_category_ap[1], res.per_category_ap[2]], [0.58383, 0.6], atol=5e-6)
    assert not res.occlusion


def test_reference_case_ovis_occlusion_stats():
    res = evaluate_video_ap(*_case("ovis_case_gt.json"))
    expected = [0.591914, 0.833333, 0.833333, 0.591914, -1, -1, 0.6, 0.5, 0.583828,
                0.3, 0.75, 0.75, 0.75, -1, -1, 0.6, 1.0, 0.9]
    assert res.occlusion
    assert list(res.stats)[6:9] == ["AP_light", "AP_medium", "AP_heavy"]
    np.testing.assert_allclose(res.official_stats(), expected, atol=5e-7)
    # Asking for plain YTVIS numbers on OVIS GT gives the first rows unchanged.
    plain = evaluate_video_ap(*_case("ovis_case_gt.json"), occlusion=False)
    assert list(plain.stats) == KEYS
    np.testing.assert_allclose(plain.official_stats(), np.delete(expected, [6, 7, 8, 15, 16, 17]), atol=5e-7)


def test_occlusion_score_top_half_mean():
    assert occlusion_score(["no_occlusion", "slight_occlusion", None, "severe_occlusion"]) == 0.5
    assert occlusion_score(["severe_occlusion", "severe_occlusion", "slight_occlusion", None]) == 0.75
    assert occlusion_score([None, "no_occlusion", "no_occlusion", "slight_occlusion"]) == 0.125
    with pytest.raises(ValueError, match="null"):
        occlusion_score([None, None])
    with pytest.raises(ValueError, match="unknown occlusion label"):
        occlusion_score(["partly"])


def test_perfect_match_like_mmdet_unit_test():
    h, w = 720, 1280
    m = np.zeros((h, w), np.uint8)
    m[100:150, 200:250] = 1
    gt = {"videos": [{"id": 1, "height": h, "width": w, "length": 2}],
          "categories": [{"id": 1, "name": "a"}],
          "annotations": [{"id": 1, "video_id": 1, "category_id": 1, "iscrowd": 0,
                           "segmentations": [_rle(m), _rle(m)], "areas": [2500, 2500]}]}
    g = load_vis_ground_truth(gt)
    res = evaluate_video_ap(g, load_vis_results([{"video_id": 1, "category_id": 1, "score": 0.9,
                                                  "segmentations": [_rle(m), _rle(m)]}], g))
    for key in ("AP", "AP50", "AP75", "APs"):  # tp / (tp + eps), as officially
        assert res.stats[key] == pytest.approx(1.0, abs=1e-12)
    assert res.stats["APm"] == res.stats["APl"] == -1


def test_matching_ties_go_to_later_gt_and_crowd_absorbs():
    thr = IOU_THRESHOLDS[:1]
    ious = np.array([[0.7, 0.7]])
    none = np.zeros(2, bool)
    matched, _ = greedy_match(ious, none, none, thr)
    assert matched.all()
    # Which GT was taken shows through the second detection: only GT 0 is left for it.
    m2, _ = greedy_match(np.array([[0.7, 0.7], [0.6, 0.0]]), none, none, thr)
    assert m2.tolist() == [[True, True]]
    # A crowd GT stays available: two detections both match it (and are ignored).
    crowd = np.array([True])
    m3, ign3 = greedy_match(np.array([[0.8], [0.9]]), crowd, crowd, thr)
    assert m3.all() and ign3.all()
    # A regular GT beats a better ignored one that comes after it.
    m4, ign4 = greedy_match(np.array([[0.55, 0.95]]), np.array([False, True]), none, thr)
    assert m4.all() and not ign4.any()


def test_video_iou_equals_decoded_masks():
    rng = np.random.default_rng(3)
    h, w, t = 30, 41, 5
    masks = rng.random((7, t, h, w)) < 0.3
    masks[2, 1] = False
    rles = [[_rle(m) for m in track] for track in masks]
    rles[3][2] = None
    masks[3, 2] = False
    areas = [np.array([0 if r is None else int(mask_api.area(r)) for r in tr]) for tr in rles]
    got = video_iou(rles[:4], areas[:4], rles[4:], areas[4:])
    inter = np.einsum("dthw,gthw->dg", masks[:4].astype(np.int64), masks[4:].astype(np.int64))
    union = masks[:4].sum((1, 2, 3))[:, None] + masks[4:].sum((1, 2, 3))[None, :] - inter
    np.testing.assert_array_equal(got, inter / union)


def _gt_dict():
    return json.loads((DATA / "ytvis_case_gt.json").read_text())


def _results():
    return json.loads((DATA / "ytvis_case_results.json").read_text())


@pytest.mark.parametrize("mutate, message", [
    (lambda r: r[0].update(video_id=99), "video_id 99 is not in the ground truth"),
    (lambda r: r[1].update(category_id=7), "entry 1, video 1 (case): category_id 7 is not in the ground truth"),
    (lambda r: r[2]["segmentations"].pop(), "'segmentations' has 3 frames, the video has 4"),
    (lambda r: r[0]["segmentations"].__setitem__(2, {"size": [32, 40], "counts": "PPP2"}),
     "video 1 (case), frame 2 (case/00002.jpg): mask size 32x40 does not match the video size 64x80"),
    (lambda r: r[3].update(score="high"), "'score' must be a finite number"),
    (lambda r: r[3].update(score=float("nan")), "'score' must be a finite number"),
    (lambda r: r[0]["segmentations"].__setitem__(0, [[1, 1, 5, 1, 5, 5]]), "results must hold RLE masks"),
])
def test_bad_results_name_the_video_and_frame(mutate, message):
    gt = load_vis_ground_truth(_gt_dict())
    results = _results()
    mutate(results)
    with pytest.raises(InputError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_vis_results(results, gt)


@pytest.mark.parametrize("mutate, message", [
    (lambda g: g.update(annotations=None), "has no 'annotations'"),
    (lambda g: g["annotations"][0].update(id=0), "'id' must be a unique integer >= 1"),
    (lambda g: g["annotations"][1].update(video_id=5), "unknown video_id 5"),
    (lambda g: g["annotations"][2]["areas"].pop(), "'areas' must list one value per frame"),
    (lambda g: g["annotations"][0].update(occlusion=["no_occlusion"] * 4), "no 'occlusion' labels while 1 of 3"),
])
def test_bad_ground_truth(mutate, message):
    gt = _gt_dict()
    mutate(gt)
    with pytest.raises(InputError, match=message):
        load_vis_ground_truth(gt)


def test_inputs_are_not_mutated_and_forms_agree():
    gt, results = _gt_dict(), _results()
    before = copy.deepcopy((gt, results))
    ref = evaluate_video_ap(load_vis_ground_truth(gt), load_vis_results(results, load_vis_ground_truth(gt)))
    assert (gt, results) == before
    # GT as polygons / uncompressed RLE and a missing `areas` field score the same.
    poly = copy.deepcopy(gt)
    ann = poly["annotations"][0]
    ann["segmentations"][0] = [[0, 0, 20, 0, 20, 20, 0, 20]]  # a 20 x 20 square
    m = np.zeros((64, 80), np.uint8)
    m[0:20, 0:20] = 1  # frame 1 of annotation 1
    runs, prev, count = [], 0, 0
    for v in m.flatten(order="F"):
        if v != prev:
            runs.append(count)
            prev, count = v, 0
        count += 1
    ann["segmentations"][1] = {"size": [64, 80], "counts": runs + [count]}
    del poly["annotations"][2]["areas"]
    g2 = load_vis_ground_truth(poly)
    assert evaluate_video_ap(g2, load_vis_results(results, g2)).stats == ref.stats


def test_300_videos_x_20_predictions_in_seconds():
    rng = np.random.default_rng(0)
    h, w, t = 720, 1280, 36
    yy, xx = np.mgrid[:h, :w]
    pool = []
    for _ in range(40):
        cy, cx, ry, rx = rng.uniform(100, 620), rng.uniform(100, 1180), *rng.uniform(20, 200, 2)
        pool.append(_rle(((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1))
    areas = [int(mask_api.area(p)) for p in pool]
    videos, anns, results = [], [], []
    for v in range(1, 301):
        videos.append({"id": v, "height": h, "width": w, "length": t})
        tracks = []
        for _ in range(3):
            cat, idx = int(rng.integers(1, 41)), rng.integers(0, len(pool), t)
            tracks.append((cat, idx))
            anns.append({"id": len(anns) + 1, "video_id": v, "category_id": cat, "iscrowd": 0,
                         "segmentations": [pool[i] for i in idx], "areas": [areas[i] for i in idx]})
        for k in range(20):
            cat, idx = tracks[k % 3] if k < 9 else (int(rng.integers(1, 41)), rng.integers(0, len(pool), t))
            idx = np.where(rng.random(t) < 0.8, idx, rng.integers(0, len(pool), t))
            results.append({"video_id": v, "category_id": cat, "score": float(rng.random()),
                            "segmentations": [pool[i] for i in idx]})
    gt = {"videos": videos, "categories": [{"id": c, "name": str(c)} for c in range(1, 41)], "annotations": anns}
    start = time.perf_counter()
    g = load_vis_ground_truth(gt)
    res = evaluate_video_ap(g, load_vis_results(results, g))
    elapsed = time.perf_counter() - start
    assert 0 < res.stats["AP"] < 1
    assert elapsed < 20, f"300 videos x 20 predictions took {elapsed:.1f} s"
