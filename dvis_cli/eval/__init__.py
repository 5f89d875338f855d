"""Evaluation that reproduces the official tools number for number.

* YouTube-VIS / OVIS video AP and AR (+ OVIS occlusion AP): `load_vis_ground_truth`,
  `load_vis_results`, `evaluate_video_ap`.
"""
from dvis_cli.eval.io import load_vis_ground_truth, load_vis_results, write_json_atomic
from dvis_cli.eval.video_ap import VideoApResult, evaluate_video_ap

__all__ = [
    "VideoApResult",
    "evaluate_video_ap",
    "load_vis_ground_truth",
    "load_vis_results",
    "write_json_atomic",
]
