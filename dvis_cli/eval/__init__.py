"""Evaluation that reproduces the official tools number for number.

* YouTube-VIS / OVIS video AP and AR (+ OVIS occlusion AP): `load_vis_ground_truth`,
  `load_vis_results`, `evaluate_video_ap`;
* VIPSeg VPQ (windows 1, 2, 4, 6, 8) and STQ: `evaluate_vipseg`;
* a CodaLab-ready `results.json` zip: `write_submission_zip`.
"""
from dvis_cli.eval.io import load_vis_ground_truth, load_vis_results, write_json_atomic
from dvis_cli.eval.stq import STQuality
from dvis_cli.eval.submission import write_submission_zip
from dvis_cli.eval.video_ap import VideoApResult, evaluate_video_ap
from dvis_cli.eval.vipseg import VipsegResult, evaluate_vipseg

__all__ = [
    "STQuality",
    "VideoApResult",
    "VipsegResult",
    "evaluate_video_ap",
    "evaluate_vipseg",
    "load_vis_ground_truth",
    "load_vis_results",
    "write_json_atomic",
    "write_submission_zip",
]
