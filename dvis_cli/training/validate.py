"""Validation AP of a model on a YouTube-VIS-format dataset with ground truth."""
from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from dvis_cli.eval import evaluate_video_ap, load_vis_ground_truth, load_vis_results
from dvis_cli.inference.dataset import plan_dataset, run_dataset
from dvis_cli.inference.predictor import SegmentOptions, VideoPredictor
from dvis_cli.model.dvis import DVIS


def validate(model: DVIS, spec: str | Path, mode: str, max_videos: int = 0) -> dict:
    """Stats of the official evaluator (AP, AP50, ..., -1 where a bin is empty)."""
    from dvis_cli.data.files import resolve_annotations

    gt_json, image_root = resolve_annotations(spec, None, ("JPEGImages",))
    scratch = Path(tempfile.mkdtemp(prefix="dvis-val-"))
    try:
        predictor = VideoPredictor(model, model.device)
        classes = model.config.classes
        plan = plan_dataset(gt_json, image_root, classes.names, classes.dataset_ids, max_videos)
        run = run_dataset(predictor, plan, scratch, SegmentOptions(mode=mode))
        gt = load_vis_ground_truth(run.gt_json)
        result = evaluate_video_ap(gt, load_vis_results(run.results, gt))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return {k: round(float(v), 6) for k, v in result.stats.items()}
