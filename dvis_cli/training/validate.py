"""Validation AP of a model on a YouTube-VIS-format dataset with ground truth."""
from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np

from dvis_cli.eval import evaluate_video_ap, load_vis_ground_truth, load_vis_results
from dvis_cli.inference.clip import predict_clip
from dvis_cli.inference.results import encode_mask
from dvis_cli.model.dvis import DVIS


def _annotation_path(spec: str | Path) -> Path:
    path = Path(spec)
    return path / "annotations.json" if path.is_dir() else path


def predict_dataset(model: DVIS, spec: str | Path, mode: str, max_videos: int = 0) -> tuple[dict, list[dict]]:
    """(ground-truth json restricted to the videos used, YouTube-VIS results)."""
    from dvis_cli.data.ytvis import load_ytvis

    data = load_ytvis(spec)
    gt = json.loads(_annotation_path(spec).read_text())
    videos = data.videos[:max_videos] if max_videos else data.videos
    used = {v.id for v in videos}
    gt["videos"] = [v for v in gt["videos"] if v["id"] in used]
    gt["annotations"] = [a for a in gt["annotations"] if a["video_id"] in used]
    classes = model.config.classes
    results = []
    for video in videos:
        frames = np.stack([cv2.imread(str(p), cv2.IMREAD_COLOR)[:, :, ::-1] for p in video.file_paths])
        pred = predict_clip(model, frames, mode=mode)
        for score, label, masks in zip(pred.scores, pred.labels, pred.masks):
            results.append({
                "video_id": video.id,
                "category_id": int(classes.dataset_ids[int(label)]),
                "score": float(score),
                "segmentations": [encode_mask(m) for m in masks],
            })
    return gt, results


def validate(model: DVIS, spec: str | Path, mode: str, max_videos: int = 0) -> dict:
    gt_json, results = predict_dataset(model, spec, mode, max_videos)
    gt = load_vis_ground_truth(gt_json)
    result = evaluate_video_ap(gt, load_vis_results(results, gt))
    stats = result.stats if hasattr(result, "stats") else result
    return {k: (round(float(v), 6) if v is not None else None) for k, v in dict(stats).items()}
