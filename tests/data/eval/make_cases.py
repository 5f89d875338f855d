"""Writes the eval.md section 5.2 VIS / OVIS case as JSON fixtures beside this file.

One video (id 1, 64 x 80, 4 frames), categories 1 "a" and 2 "b"; boxes are half-open
[y0:y1, x0:x1]; GT `areas` are pixel counts, null where absent. Run: python make_cases.py
"""
import json
from pathlib import Path

import numpy as np
from pycocotools import mask as mask_api

H, W, T = 64, 80, 4
HERE = Path(__file__).parent


def rle(box):
    m = np.zeros((H, W), dtype=np.uint8, order="F")
    if box:
        m[box[0]:box[1], box[2]:box[3]] = 1
    r = mask_api.encode(m)
    return {"size": r["size"], "counts": r["counts"].decode()}


GT_TRACKS = [  # (annotation id, category, per-frame box or None)
    (1, 1, [(0, 20, 0, 20), (0, 20, 0, 20), None, (2, 22, 2, 22)]),
    (2, 1, [(30, 50, 30, 60), (30, 50, 32, 62), (30, 50, 34, 64), None]),
    (3, 2, [None, (10, 30, 40, 70), (10, 30, 40, 70), (10, 30, 40, 70)]),
]
OCCLUSION = {
    1: ["no_occlusion", "slight_occlusion", None, "severe_occlusion"],  # score 0.5
    2: ["severe_occlusion", "severe_occlusion", "slight_occlusion", None],  # 0.75
    3: [None, "no_occlusion", "no_occlusion", "slight_occlusion"],  # 0.125
}
PREDICTIONS = [  # (category, score, per-frame box; None = an all-zero RLE, not null)
    (1, 0.9, [(0, 20, 0, 20), (0, 20, 0, 20), None, (2, 22, 2, 22)]),
    (1, 0.8, [(30, 50, 30, 60)] * 3 + [None]),
    (2, 0.7, [(10, 30, 40, 70)] * 4),
    (1, 0.95, [(40, 60, 0, 10)] * 4),
]


def ground_truth(occlusion: bool) -> dict:
    anns = []
    for aid, cat, boxes in GT_TRACKS:
        ann = {"id": aid, "video_id": 1, "category_id": cat, "iscrowd": 0,
               "segmentations": [rle(b) if b else None for b in boxes],
               "areas": [(b[1] - b[0]) * (b[3] - b[2]) if b else None for b in boxes]}
        if occlusion:
            ann["occlusion"] = OCCLUSION[aid]
        anns.append(ann)
    return {"videos": [{"id": 1, "height": H, "width": W, "length": T,
                        "file_names": [f"case/{t:05d}.jpg" for t in range(T)]}],
            "categories": [{"id": 1, "name": "a", "supercategory": "x"}, {"id": 2, "name": "b", "supercategory": "x"}],
            "annotations": anns}


def main() -> None:
    results = [{"video_id": 1, "category_id": c, "score": s, "segmentations": [rle(b) for b in boxes]}
               for c, s, boxes in PREDICTIONS]
    for name, obj in (("ytvis_case_gt.json", ground_truth(False)), ("ovis_case_gt.json", ground_truth(True)),
                      ("ytvis_case_results.json", results)):
        (HERE / name).write_text(json.dumps(obj) + "\n")


if __name__ == "__main__":
    main()
