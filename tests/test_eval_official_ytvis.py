"""Our video AP against the official YouTube-VIS evaluator, on randomised cases, to 1e-9.

The reference is the youtubevos `YTVIS` / `YTVISeval` copy shipped in the mmdet 3.3.0 wheel
(`mmdet/evaluation/functional/ytvis.py`, `ytviseval.py`; numpy + pycocotools only). It is used here
as a test-time oracle, never as a dependency: the wheel is found through $DVIS_MMDET_WHEEL, or in
$DVIS_TEST_CACHE (default ~/.cache/dvis-cli-tests), or downloaded there with `pip download`.
.ci/run downloads it and sets DVIS_REQUIRE_REFERENCE=1, so CI fails instead of skipping.
"""
from __future__ import annotations

import contextlib
import copy
import hashlib
import importlib.util
import io
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
from pycocotools import mask as mask_api

from dvis_cli.eval import evaluate_video_ap, load_vis_ground_truth, load_vis_results
from dvis_cli.eval.occlusion import LABEL_SCORES, OCCLUSION_BINS, occlusion_score
from dvis_cli.eval.video_iou import video_iou

WHEEL_GLOB = "mmdet-3.3.0-*.whl"
MEMBERS = {  # sha256 of the two files as shipped in mmdet 3.3.0
    "ytvis.py": "429f8ffb60e8fa7bc9bee742b20e29abf02ad83d51b753bc8451e259f27a664d",
    "ytviseval.py": "37695145af39518e87e271184e82c109c197ea48148297e9331ed5d950d90d51",
}
N_RANDOM = 300
N_OCCLUSION = 100


def _find_wheel() -> tuple[Path | None, str]:
    """(wheel, why not) from $DVIS_MMDET_WHEEL, or the cache folder, downloading it there if needed."""
    explicit = os.environ.get("DVIS_MMDET_WHEEL")
    if explicit:
        found = Path(explicit)
        return (found, "") if found.is_file() else (None, f"DVIS_MMDET_WHEEL={explicit} does not exist")
    cache = Path(os.environ.get("DVIS_TEST_CACHE") or Path.home() / ".cache" / "dvis-cli-tests")
    wheels = sorted(cache.glob(WHEEL_GLOB))
    if not wheels:
        cache.mkdir(parents=True, exist_ok=True)
        cmd = [sys.executable, "-m", "pip", "download", "mmdet==3.3.0", "--no-deps", "-d", str(cache)]
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            subprocess.run(cmd, check=True, capture_output=True, timeout=300)
        wheels = sorted(cache.glob(WHEEL_GLOB))
    if not wheels:
        return None, (f"no mmdet 3.3.0 wheel in {cache} and `pip download mmdet==3.3.0 --no-deps` failed "
                      "(offline? set DVIS_MMDET_WHEEL to a local copy)")
    return wheels[0], ""


@pytest.fixture(scope="module")
def official(tmp_path_factory):
    """(YTVIS, YTVISeval) loaded by path from the wheel."""
    wheel, why = _find_wheel()
    if wheel is None:
        reason = f"official YouTube-VIS evaluator unavailable: {why}"
        if os.environ.get("DVIS_REQUIRE_REFERENCE"):
            pytest.fail(reason)
        pytest.skip(reason)
    folder = tmp_path_factory.mktemp("ytvis_reference")
    modules = {}
    with zipfile.ZipFile(wheel) as zf:
        for name, digest in MEMBERS.items():
            data = zf.read(f"mmdet/evaluation/functional/{name}")
            assert hashlib.sha256(data).hexdigest() == digest, f"{wheel}: unexpected {name}"
            (folder / name).write_bytes(data)
            spec = importlib.util.spec_from_file_location(f"_official_{name[:-3]}", folder / name)
            modules[name] = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(modules[name])
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(np, "float", float, raising=False)  # removed in numpy 1.24, used by accumulate()
        yield modules["ytvis.py"].YTVIS, modules["ytviseval.py"].YTVISeval


def _run_official(official, gt: dict, results: list, evaluator=None):
    ytvis, ytviseval = official
    with contextlib.redirect_stdout(io.StringIO()):  # it prints a lot; it also mutates its inputs
        coco_gt = ytvis(copy.deepcopy(gt))
        coco_dt = coco_gt.loadRes(copy.deepcopy(results))
        ev = (evaluator or ytviseval)(coco_gt, coco_dt)
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return ev


def _rle(mask: np.ndarray) -> dict:
    r = mask_api.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": r["size"], "counts": r["counts"].decode()}


def _uncompressed(mask: np.ndarray) -> dict:
    flat = mask.flatten(order="F").astype(np.int8)
    edges = np.flatnonzero(np.diff(np.concatenate([[0], flat, [2]])) != 0)  # starts of runs (+ end)
    runs = np.diff(np.concatenate([[0], edges])).tolist()  # zeros first; 0 if the mask starts with 1
    return {"size": list(mask.shape), "counts": [int(r) for r in runs]}


def random_case(seed: int, n_cat_max: int = 12) -> tuple[dict, list]:
    """Random videos (sizes up to 480 x 640, 1-5 frames), GT with absent frames, crowd, polygons,
    uncompressed RLE, `areas` that differ from the masks; predictions near and far from GT, all-zero
    masks and nulls, scores with many ties, result order shuffled."""
    rng = np.random.default_rng(seed)
    n_cat = int(rng.integers(1, n_cat_max + 1))
    ties = np.round(rng.uniform(0.05, 1, size=5), 2)
    videos, anns, results = [], [], []
    for vid in rng.choice(np.arange(1, 1000), size=int(rng.integers(1, 7)), replace=False).tolist():
        h, w = int(rng.choice([24, 60, 150, 300, 480])), int(rng.choice([32, 90, 200, 400, 640]))
        t_len = int(rng.integers(1, 6))
        videos.append({"id": vid, "height": h, "width": w, "length": t_len,
                       "file_names": [f"v{vid}/{t:05d}.jpg" for t in range(t_len)]})

        def boxes(base=None, p_absent=0.25):
            out = []
            for t in range(t_len):
                if rng.random() < p_absent:
                    out.append(None)
                elif base is not None and base[t] is not None and rng.random() < 0.8:
                    y0, y1, x0, x1 = base[t]
                    dy, dx = rng.integers(-3, 4, 2)
                    out.append((max(0, y0 + dy), max(1, y1 + dy), max(0, x0 + dx), max(1, x1 + dx)))
                else:
                    bh, bw = int(rng.integers(1, h + 1)), int(rng.integers(1, w + 1))
                    y0, x0 = int(rng.integers(0, h - bh + 1)), int(rng.integers(0, w - bw + 1))
                    out.append((y0, y0 + bh, x0, x0 + bw))
            return out

        def masks(bxs):
            out = []
            for b in bxs:
                m = np.zeros((h, w), np.uint8)
                if b is not None:
                    m[b[0]:b[1], b[2]:b[3]] = 1
                    if rng.random() < 0.2:
                        m[b[0]:b[1]:2, b[2]:b[3]:3] = 0
                out.append(None if b is None else m)
            return out

        gt_tracks = []
        for _ in range(int(rng.integers(0, 6))):
            cat, bxs = int(rng.integers(1, n_cat + 1)), boxes()
            gt_tracks.append((cat, bxs))
            segs, areas = [], []
            for b, m in zip(bxs, masks(bxs)):
                if m is None:
                    segs.append(None)
                    areas.append(None)
                    continue
                form = rng.random()
                if form < 0.1 and b[1] - b[0] > 1 and b[3] - b[2] > 1:
                    y0, y1, x0, x1 = b
                    segs.append([[x0, y0, x1, y0, x1, y1, x0, y1]])
                    areas.append(float((y1 - y0) * (x1 - x0)))
                    continue
                segs.append(_uncompressed(m) if form < 0.3 else _rle(m))
                areas.append(int(m.sum()))
            if rng.random() < 0.1:
                areas = [None if a is None else float(a) * rng.uniform(0.5, 2) for a in areas]
            occ = [None if s is None else str(rng.choice(list(LABEL_SCORES))) for s in segs]
            if all(o is None for o in occ):
                occ[0] = "slight_occlusion"
            anns.append({"id": len(anns) + 1, "video_id": vid, "category_id": cat,
                         "iscrowd": int(rng.random() < 0.15), "segmentations": segs, "areas": areas,
                         "occlusion": occ})
        for _ in range(int(rng.integers(0, 12))):
            if gt_tracks and rng.random() < 0.7:
                cat, base = gt_tracks[int(rng.integers(len(gt_tracks)))]
                if rng.random() < 0.3:
                    cat = int(rng.integers(1, n_cat + 1))
                bxs = boxes(base, 0.1)
            else:
                cat, bxs = int(rng.integers(1, n_cat + 1)), boxes()
            zero_for_absent = rng.random() < 0.5
            segs = [_rle(np.zeros((h, w), np.uint8)) if m is None and zero_for_absent else
                    None if m is None else _rle(m) for m in masks(bxs)]
            score = float(rng.choice(ties)) if rng.random() < 0.6 else float(rng.random())
            results.append({"video_id": vid, "category_id": cat, "score": score, "segmentations": segs})
    if not results:  # the official loadRes needs at least one result
        v = videos[0]
        full = _rle(np.ones((v["height"], v["width"]), np.uint8))
        results.append({"video_id": v["id"], "category_id": 1, "score": 0.5, "segmentations": [full] * v["length"]})
    order = rng.permutation(len(results))
    gt = {"videos": videos, "categories": [{"id": c, "name": f"c{c}"} for c in range(1, n_cat + 1)],
          "annotations": anns}
    return gt, [results[i] for i in order]


def _max_diff(ours, ev) -> float:
    return max(np.abs(np.asarray(ev.stats) - ours.official_stats()).max(),
               np.abs(ev.eval["precision"] - ours.precision).max(),
               np.abs(ev.eval["recall"] - ours.recall).max())


def test_random_cases_equal_official(official):
    worst, defined = 0.0, np.zeros(12, int)
    for seed in range(N_RANDOM):
        gt, results = random_case(seed, n_cat_max=40 if seed % 10 == 0 else 12)
        ev = _run_official(official, gt, results)
        g = load_vis_ground_truth(gt)
        preds = load_vis_results(results, g)
        ours = evaluate_video_ap(g, preds, occlusion=False)
        diff = _max_diff(ours, ev)
        assert diff <= 1e-9, f"seed {seed}: max |ours - official| = {diff}"
        worst = max(worst, diff)
        defined += ours.official_stats() > 0
        # The IoU matrices themselves, per (video, category) with both sides present.
        for (vid, cat), iou in ev.ious.items():
            if len(iou) and iou.shape[1]:
                dts = sorted([d for d in preds if (d.video_id, d.category_id) == (vid, cat)],
                             key=lambda d: -d.score)[:100]
                gts = [t for t in g.tracks if (t.video_id, t.category_id) == (vid, cat)]
                mine = video_iou([d.rles for d in dts], [d.mask_areas for d in dts],
                                 [t.rles for t in gts], [t.mask_areas for t in gts])
                np.testing.assert_array_equal(mine, iou)
    print(f"{N_RANDOM} random cases: max |ours - official| = {worst}")
    assert (defined[[0, 3, 4, 5]] > 10).all(), f"cases too easy: stats > 0 in {defined.tolist()} cases"


def test_many_detections_per_video_and_ties_equal_official(official):
    """> 100 detections in one (video, category): the per-video cut at maxDets, ties everywhere."""
    rng = np.random.default_rng(7)
    h, w, t_len = 50, 60, 3
    gt = {"videos": [{"id": 5, "height": h, "width": w, "length": t_len}], "categories": [{"id": 1, "name": "a"}],
          "annotations": []}
    boxes = []
    for i in range(6):
        y0, x0 = int(rng.integers(0, 30)), int(rng.integers(0, 40))
        boxes.append((y0, x0))
        m = np.zeros((h, w), np.uint8)
        m[y0:y0 + 20, x0:x0 + 20] = 1
        gt["annotations"].append({"id": i + 1, "video_id": 5, "category_id": 1, "iscrowd": int(i == 5),
                                  "segmentations": [_rle(m)] * t_len, "areas": [400] * t_len})
    results = []
    for _ in range(130):
        y0, x0 = boxes[int(rng.integers(6))]
        dy, dx = rng.integers(-4, 5, 2)
        m = np.zeros((h, w), np.uint8)
        m[max(0, y0 + dy):y0 + dy + 20, max(0, x0 + dx):x0 + dx + 20] = 1
        results.append({"video_id": 5, "category_id": 1, "score": float(rng.choice([0.3, 0.5, 0.9])),
                        "segmentations": [_rle(m)] * t_len})
    ev = _run_official(official, gt, results)
    g = load_vis_ground_truth(gt)
    assert _max_diff(evaluate_video_ap(g, load_vis_results(results, g)), ev) <= 1e-9


def _occlusion_bin_evaluator(official, lo: float, hi: float):
    """YTVISeval plus OVISeval's one extra rule: a GT outside the occlusion bin is ignored (like a
    crowd or out-of-area GT); detections are never filtered by occlusion."""
    class OcclusionBinEval(official[1]):
        def _prepare(self):
            super()._prepare()
            for anns in self._gts.values():
                for ann in anns:
                    if not lo <= occlusion_score(ann["occlusion"]) <= hi:
                        ann["ignore"] = True
    return OcclusionBinEval


def test_occlusion_bins_equal_official_rule(official):
    worst = 0.0
    for seed in range(N_OCCLUSION):
        gt, results = random_case(1000 + seed)
        g = load_vis_ground_truth(gt)
        if not g.tracks:
            continue
        ours = evaluate_video_ap(g, load_vis_results(results, g), occlusion=True)
        for name, (lo, hi) in OCCLUSION_BINS.items():
            ev = _run_official(official, gt, results, _occlusion_bin_evaluator(official, lo, hi))
            s = ours.settings.index(("all", name))
            diff = max(np.abs(ev.eval["precision"][:, :, :, 0] - ours.precision[:, :, :, s]).max(),
                       np.abs(ev.eval["recall"][:, :, 0] - ours.recall[:, :, s]).max(),
                       abs(ev.stats[0] - ours.stats[f"AP_{name}"]), abs(ev.stats[8] - ours.stats[f"AR_{name}"]))
            assert diff <= 1e-9, f"seed {seed}, {name}: {diff}"
            worst = max(worst, diff)
    print(f"{N_OCCLUSION} random cases x 3 occlusion bins: max |ours - official rule| = {worst}")
