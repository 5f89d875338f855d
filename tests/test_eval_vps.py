"""VIPSeg VPQ / STQ: eval.md section 5.2 reference numbers, deeplab2's STQ vectors, the official
quirks, bad-input errors, and the `dvis eval score` folder form."""
from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from dvis_cli.cli.app import main
from dvis_cli.errors import InputError
from dvis_cli.eval import STQuality, evaluate_vipseg

# ---------------------------------------------------------------------------------------------
# Writing VIPSeg-layout folders


def _write_png(path: Path, ids: np.ndarray) -> None:
    ids = np.asarray(ids, dtype=np.uint32)
    rgb = np.stack([ids % 256, ids // 256 % 256, ids // 65536], axis=-1).astype(np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), np.ascontiguousarray(rgb[:, :, ::-1]))  # OpenCV writes B, G, R


def _infos(ids: np.ndarray, categories: dict[int, int], crowd=()) -> list[dict]:
    return [{"id": int(i), "category_id": categories[int(i)], "iscrowd": int(int(i) in crowd),
             "area": int((ids == i).sum())} for i in np.unique(ids) if i != 0]


def write_vipseg(root: Path, videos: dict, categories: list[dict], gt_cat: dict, pred_cat: dict, crowd=()) -> dict:
    """videos: {video_id: (GT id maps, predicted id maps)}. Returns the CLI/library paths."""
    gt = {"videos": [], "annotations": [], "categories": categories}
    pred = {"annotations": []}
    for vid, (gts, preds) in videos.items():
        names = [f"{t:08d}.png" for t in range(len(gts))]
        h, w = np.shape(gts[0])
        gt["videos"].append({"video_id": vid, "images": [{"id": n[:-4], "width": w, "height": h, "file_name": n}
                                                         for n in names]})
        gt["annotations"].append({"video_id": vid, "annotations": [
            {"image_id": n[:-4], "file_name": n, "segments_info": _infos(np.asarray(g), gt_cat, crowd)}
            for n, g in zip(names, gts)]})
        pred["annotations"].append({"video_id": vid, "annotations": [
            {"image_id": n[:-4], "file_name": n, "segments_info": _infos(np.asarray(p), pred_cat)}
            for n, p in zip(names, preds)]})
        for n, g, p in zip(names, gts, preds):
            _write_png(root / "gt" / vid / n, g)
            _write_png(root / "pred" / "pan_pred" / vid / n, p)
    (root / "gt.json").write_text(json.dumps(gt))
    (root / "pred" / "pred.json").write_text(json.dumps(pred))
    return {"gt_json": root / "gt.json", "gt_pan_dir": root / "gt",
            "pred_json": root / "pred" / "pred.json", "pred_pan_dir": root / "pred" / "pan_pred"}


WALL_PERSON = [{"id": 0, "name": "wall", "isthing": 0, "color": [1, 1, 1]},
               {"id": 1, "name": "person", "isthing": 1, "color": [2, 2, 2]}]


def reference_case(root: Path) -> dict:
    """eval.md section 5.2: one video, 6 x 8, 10 annotated frames; an identity switch, a track
    that ends early in the GT and late in the prediction, a VOID top row predicted as wall."""
    gts, preds = [], []
    for t in range(10):
        g = np.full((6, 8), 1000)
        g[0] = 0
        g[2:5, 1:3] = 2000
        if t <= 6:
            g[2:5, 5:7] = 2001
        p = np.full((6, 8), 50)
        p[2:5, 1:3] = 60 if t <= 4 else 61
        if t <= 7:
            p[2:5, 5:7] = 70
        gts.append(g)
        preds.append(p)
    return write_vipseg(root, {"vid1": (gts, preds)}, WALL_PERSON,
                        {1000: 0, 2000: 1, 2001: 1}, {50: 0, 60: 1, 61: 1, 70: 1})


# ---------------------------------------------------------------------------------------------
# VPQ and STQ reference numbers


def test_reference_case_vpq_and_stq(tmp_path):
    res = evaluate_vipseg(**reference_case(tmp_path))
    expected = {1: (97.689, 97.143, 98.235), 2: (90.149, 82.353, 97.944), 4: (84.177, 70.430, 97.923),
                6: (78.533, 59.067, 97.999), 8: (74.165, 50.873, 97.457)}
    for n, (all_, th, st) in expected.items():
        got = res.per_window[n]
        np.testing.assert_allclose([100 * got["all"].pq, 100 * got["things"].pq, 100 * got["stuff"].pq],
                                   [all_, th, st], atol=5e-4)
    np.testing.assert_allclose([res.vpq, res.vpq_things, res.vpq_stuff], [84.9423, 71.9731, 97.9115], atol=5e-5)
    np.testing.assert_allclose([res.stq.stq, res.stq.aq, res.stq.sq], [0.8133152, 0.6875, 0.9621551], atol=5e-8)
    assert res.stq.length_per_seq == (10,)


def test_vpq_void_is_taken_out_of_the_union(tmp_path):
    # GT [VOID, wall x3], prediction [wall x3, VOID]: I = 2, U = 3 + 3 - 2 - 1 (prediction on VOID).
    paths = write_vipseg(tmp_path, {"v": ([[[0, 1, 1, 1]]], [[[5, 5, 5, 0]]])}, WALL_PERSON, {1: 0}, {5: 0})
    res = evaluate_vipseg(**paths, windows=(1,))
    assert res.per_class[1][0]["tp"] == 1
    assert res.per_window[1]["all"].pq == pytest.approx(2 / 3)
    assert np.isnan(res.per_window[1]["things"].pq)  # no thing category scored (the official divides by 0)


def test_vpq_prediction_on_crowd_is_not_a_false_positive(tmp_path):
    gt = [[[7, 7, 7, 2]]]
    pred = [[[9, 9, 9, 4]]]
    paths = write_vipseg(tmp_path, {"v": (gt, pred)}, WALL_PERSON, {7: 1, 2: 0}, {9: 1, 4: 0}, crowd={7})
    res = evaluate_vipseg(**paths, windows=(1,))
    assert res.per_class[1][1] == {"pq": 0.0, "sq": 0.0, "rq": 0.0, "iou": 0.0, "tp": 0, "fp": 0, "fn": 0}
    assert res.per_window[1]["all"].pq == 1.0


def _grid(text: str) -> np.ndarray:
    return np.array([[int(c) for c in row] for row in text.split("/")])


# deeplab2 evaluation/numpy/segmentation_and_tracking_quality_test.py, test_complex_example:
# 3 frames of 8 x 8, classes sky / vegetation / cars, things = [2]; rows joined with "/".
_GT_SEM = ["00000000/00000000/00020111/02222111/22222211/22222221/22222221/22222211",
           "00000000/00000000/02001100/22211110/22221111/22222111/22222111/22221111",
           "00000000/00000000/00000000/20111000/22111100/22211110/22211111/22211111"]
_GT_INS = ["00000000/00000000/00020000/02222000/22222200/22222220/22222220/22222200",
           "00000000/00000000/02000000/22200000/22220000/22222000/22222000/22220000",
           "00000000/00000000/00000000/20000000/22000000/22200000/22200000/22200000"]
_PR_SEM = ["00000000/00000000/00000100/00022111/02222211/22222221/22222221/22222221",
           "00000000/00000000/00001100/02221111/22221111/22222111/22222211/22222111",
           "00000000/00000000/00001000/00111100/22211100/22211111/22221111/22221111"]
_PR_INS = ["00000000/00000000/00000000/00022000/02222100/22222110/22221110/22221110",
           "00000000/00000000/00000000/02220000/22220000/22222000/22221100/22221000",
           "00000000/00000000/00000000/00000000/22200000/22200000/22220000/22220000"]


def test_stq_deeplab2_complex_example():
    stq = STQuality(3, [2], 255, 16)
    for gs, gi, ps, pi in zip(_GT_SEM, _GT_INS, _PR_SEM, _PR_INS):
        stq.update((_grid(gs) << 16) + _grid(gi), (_grid(ps) << 16) + _grid(pi), sequence_id=1)
    r = stq.result()
    np.testing.assert_almost_equal([r.stq, r.aq, r.sq], [0.66841773352, 0.55366581415, 0.8069529580309542])
    assert r.seq_ids == (1,) and r.length_per_seq == (3,)


_SKY = 1 << 16  # class 1 (stuff); class 0 is the thing class "cars"
_BASIC = [  # deeplab2 test_basic_examples: (GT track, prediction, (STQ, AQ, IoU))
    ([1, 1, 1, 1, 1], [1, 1, 1, 1, 1], (1.0, 1.0, 1.0)),
    ([1, 1, 1, 1, 1], [1, 1, 2, 2, 2], (0.72111026, 0.52, 1.0)),
    ([1, 1, 1, 1, 1], [1, 2, 2, 2, 2], (0.82462113, 0.68, 1.0)),
    ([1, 1, 1, 1, 1], [1, 2, 3, 4, 5], (0.447213596, 0.2, 1.0)),
    ([1, 1, 1, 1, 1], [1, 2, 1, 2, 2], (0.72111026, 0.52, 1.0)),
    ([1, 1, 1, 1, 1], [_SKY, 1, 1, 1, 1], (0.50596443, 0.64, 0.4)),
    ([0, 1, 1, 1, 1, 1], [1, 1, 1, 1, 1, 1], (1.0, 1.0, 1.0)),  # first label is crowd
    ([0, 1, 1, 1, 1, 1], [2, 2, 2, 2, 1, 1], (0.72111026, 0.52, 1.0)),
    ([0, 1, 1, 1, 1, 1], [2, 2, _SKY, 1, 1, 1], (0.40824829, 0.4, 5.0 / 12.0)),
    ([_SKY, 1, 1, 1, 1], [1, 1, 1, 1, 1], (0.56568542, 0.8, 0.4)),  # first label is sky
    ([_SKY, 1, 1, 1, 1], [2, 2, 2, 1, 1], (0.42426407, 0.45, 0.4)),
    ([_SKY, 1, 1, 1, 1], [2, 2, _SKY, 1, 1], (0.3, 0.3, 0.3)),
]


@pytest.mark.parametrize("gt, pred, expected", _BASIC)
def test_stq_deeplab2_basic_examples(gt, pred, expected):
    stq = STQuality(2, [0], 255, 16)
    stq.update(np.array([gt]), np.array([pred]), sequence_id=1)
    r = stq.result()
    np.testing.assert_almost_equal([r.stq, r.aq, r.sq], expected)
    np.testing.assert_almost_equal([r.stq_per_seq[0], r.aq_per_seq[0], r.sq_per_seq[0]], expected)


def test_stq_void_prediction_is_an_extra_zero_class():
    # eval.md: GT [stuff, stuff, thing, thing] vs prediction [stuff, VOID, thing, thing]
    # -> SQ (0.5 + 1 + 0) / 3 = 0.5, not 0.75 (official quirk, kept).
    void = (255 << 16) + 255
    thing = (1 << 16) + 1
    stq = STQuality(2, [1], 255, 16)
    stq.update(np.array([0, 0, thing, thing]), np.array([0, void, thing, thing]))
    assert stq.result().sq == 0.5


def test_stq_first_gt_segment_of_a_video_is_crowd_if_it_is_a_thing(tmp_path):
    # Official quirk: instance numbers start at 0, so a thing listed first in the video is crowd and
    # leaves AQ; here the only thing track is first -> no GT tracks -> AQ 0.
    gt = [[[1, 1, 5, 5]]]  # segments_info lists ids in ascending order: the person (1) comes first
    pred = [[[8, 8, 3, 3]]]
    res = evaluate_vipseg(**write_vipseg(tmp_path, {"v": (gt, pred)}, WALL_PERSON, {1: 1, 5: 0}, {8: 1, 3: 0}))
    assert res.stq.aq == 0.0 and res.stq.sq == 1.0


# ---------------------------------------------------------------------------------------------
# Bad input


def _break(paths: dict, how: str) -> str:
    pred_json = Path(paths["pred_json"])
    pred = json.loads(pred_json.read_text())
    frames = pred["annotations"][0]["annotations"]
    if how == "missing_png":
        (Path(paths["pred_pan_dir"]) / "vid1" / "00000003.png").unlink()
        return r"video vid1, frame 3 \(00000003.png\): predicted PNG not found"
    if how == "unlisted_id":
        frames[2]["segments_info"] = [s for s in frames[2]["segments_info"] if s["id"] != 70]
        expected = r"video vid1, frame 2 \(00000002.png\): predicted PNG has segment ids \[70\] that 'segments_info'"
    elif how == "absent_id":
        frames[9]["segments_info"].append({"id": 99, "category_id": 1, "iscrowd": 0})
        expected = r"video vid1, frame 9 \(00000009.png\): 'segments_info' lists ids \[99\] that the predicted PNG"
    elif how == "unknown_category":
        frames[1]["segments_info"][0]["category_id"] = 42
        expected = r"frame 1 \(00000001.png\): prediction: segment 50 has unknown category_id 42"
    elif how == "frame_count":
        frames.pop()
        expected = "video vid1: 10 GT images, 10 GT frame annotations, 9 predicted frames"
    elif how == "missing_video":
        pred["annotations"][0]["video_id"] = "other"
        expected = "no prediction for video vid1"
    elif how == "size":
        _write_png(Path(paths["pred_pan_dir"]) / "vid1" / "00000004.png", np.full((3, 8), 50))
        return r"video vid1, frame 4 \(00000004.png\): predicted PNG is 8x3, ground truth 8x6"
    elif how == "malformed":
        pred_json.write_text('{"annotations": [')
        return "pred.json: not valid JSON"
    pred_json.write_text(json.dumps(pred))
    return expected


@pytest.mark.parametrize("how", ["missing_png", "unlisted_id", "absent_id", "unknown_category", "frame_count",
                                 "missing_video", "size", "malformed"])
def test_bad_vipseg_input_names_video_and_frame(tmp_path, how):
    paths = reference_case(tmp_path)
    message = _break(paths, how)
    with pytest.raises(InputError, match=message):
        evaluate_vipseg(**paths)


# ---------------------------------------------------------------------------------------------
# CLI folder form


def _cli_args(paths: dict) -> list[str]:
    return ["eval", "score", "--gt-pan", str(paths["gt_pan_dir"]), "--gt-json", str(paths["gt_json"]),
            "--pred-pan", str(paths["pred_pan_dir"]), "--pred-json", str(paths["pred_json"])]


def test_cli_score_vipseg_writes_json(tmp_path, capsys):
    paths = reference_case(tmp_path)
    out = tmp_path / "scores" / "vps.json"
    main(_cli_args(paths) + ["--json", str(out)])
    printed = capsys.readouterr().out
    assert "VPQ" in printed and "84.94" in printed and "81.33" in printed
    data = json.loads(out.read_text())
    assert data["VPQ"] == pytest.approx(84.9423, abs=5e-5)
    assert data["VPQ_th"] == pytest.approx(71.9731, abs=5e-5)
    assert data["VPQ_st"] == pytest.approx(97.9115, abs=5e-5)
    assert data["STQ"] == pytest.approx(0.8133152, abs=5e-8)
    assert data["windows"]["8"]["things"]["pq"] == pytest.approx(0.50873, abs=5e-6)
    assert data["per_video"][0]["video_id"] == "vid1"
    assert list(out.parent.iterdir()) == [out]  # no temporary file left behind


def test_cli_score_vipseg_missing_png_is_one_clear_line(tmp_path, capsys):
    paths = reference_case(tmp_path)
    _break(paths, "missing_png")
    with pytest.raises(SystemExit) as exit_info:
        main(_cli_args(paths))
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "error:" in err and "video vid1, frame 3 (00000003.png): predicted PNG not found" in err
    assert "Traceback" not in err
