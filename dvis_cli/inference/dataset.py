"""Run a model over a YouTube-VIS-format dataset: the official submission and, when the json has
annotations, the official metrics. Resumable: finished videos are appended to a jsonl file."""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from dvis_cli.atomic import write_text_atomic
from dvis_cli.errors import InputError
from dvis_cli.inference.predictor import SegmentOptions, VideoPredictor
from dvis_cli.inference.results import ResultStore, ResultWriter, StoreMeta, encode_mask

# Where each official dataset keeps a split under --data-root (detectron2's `datasets/` layout).
OFFICIAL_LAYOUT = {
    "ovis": ("ovis/annotations/annotations_{split}.json", "ovis/{split}"),
    "ytvis19": ("ytvis_2019/{split}.json", "ytvis_2019/{split}/JPEGImages"),
    "ytvis21": ("ytvis_2021/{split}.json", "ytvis_2021/{split}/JPEGImages"),
    "ytvis22": ("ytvis_2022/{split}.json", "ytvis_2022/{split}/JPEGImages"),
}
DATASET_CLASSES = {"ovis": "ovis", "ytvis19": "ytvis19", "ytvis21": "ytvis21", "ytvis22": "ytvis21"}


@dataclass
class DatasetRun:
    results: list[dict]
    results_json: Path
    submission_zip: Path
    has_ground_truth: bool
    gt_json: Path
    videos: int


def official_paths(dataset: str, root: str | Path, split: str) -> tuple[Path, Path]:
    ann, images = OFFICIAL_LAYOUT[dataset]
    root = Path(root)
    return root / ann.format(split=split), root / images.format(split=split)


def category_map(gt: dict, class_names: tuple[str, ...], dataset_ids: tuple[int, ...]) -> list[int]:
    """Contiguous class -> the dataset's category id; the names must agree (case-insensitive)."""
    cats = sorted(gt.get("categories", []), key=lambda c: c["id"])
    if not cats:
        return list(dataset_ids)
    names = [c["name"].lower() for c in cats]
    if names != [n.lower() for n in class_names]:
        missing = sorted(set(names) ^ {n.lower() for n in class_names})
        raise InputError(f"the dataset's categories do not match the model's classes (differ: {', '.join(missing[:6])})")
    return [c["id"] for c in cats]


def _entries(store: ResultStore, video_id: int, ids: list[int], size: tuple[int, int], length: int) -> list[dict]:
    empty = encode_mask(np.zeros(size, bool))
    per_track = {t.track_id: [empty] * length for t in store.tracks}
    for position, frame in enumerate(store.frames()):
        for track, rle in store.track_masks(frame):
            if rle is not None:
                per_track[track.track_id][position] = {"size": rle["size"], "counts": rle["counts"]}
    return [
        {"video_id": video_id, "score": t.score, "category_id": ids[t.label], "segmentations": per_track[t.track_id]}
        for t in store.tracks
    ]


@dataclass
class DatasetPlan:
    gt: dict
    gt_json: Path
    image_root: Path
    videos: list[dict]
    category_ids: list[int]  # contiguous class -> the dataset's category id


def plan_dataset(gt_json: str | Path, image_root: str | Path, class_names: tuple[str, ...], dataset_ids: tuple[int, ...], limit: int = 0) -> DatasetPlan:
    """Read and check everything before any work: json, categories against the model, frames on disk."""
    gt_json, image_root = Path(gt_json), Path(image_root)
    if not gt_json.exists():
        raise InputError(f"{gt_json}: no such annotation file")
    if not image_root.is_dir():
        raise InputError(f"{image_root}: no such frame folder")
    try:
        gt = json.loads(gt_json.read_text())
    except json.JSONDecodeError as exc:
        raise InputError(f"{gt_json}: not valid JSON ({exc})") from None
    if not isinstance(gt, dict) or "videos" not in gt:
        raise InputError(f"{gt_json}: no 'videos' list: not a YouTube-VIS / OVIS annotation file")
    ids = category_map(gt, class_names, dataset_ids)
    videos = gt["videos"][:limit] if limit else gt["videos"]
    for video in videos:
        missing = [f for f in video["file_names"] if not (image_root / f).exists()]
        if missing:
            raise InputError(f"video {video['id']}: {len(missing)} frames missing, e.g. {image_root / missing[0]}")
    return DatasetPlan(gt, gt_json, image_root, videos, ids)


def run_dataset(
    predictor: VideoPredictor,
    plan: DatasetPlan,
    out: Path,
    options: SegmentOptions,
    progress: Callable[[int, int, str], None] | None = None,
) -> DatasetRun:
    from dvis_cli.eval.submission import write_submission_zip
    from dvis_cli.io import ImageSequenceSource

    gt, gt_json, image_root, videos, ids = plan.gt, plan.gt_json, plan.image_root, plan.videos, plan.category_ids
    limit = len(videos) < len(gt["videos"])
    out.mkdir(parents=True, exist_ok=True)
    partial = out / "results.partial.jsonl"
    done: dict[int, list[dict]] = {}
    if partial.exists():
        for line in partial.read_text().splitlines():
            if line.strip():
                rec = json.loads(line)
                done[rec["video_id"]] = rec["results"]
    scratch = Path(tempfile.mkdtemp(prefix=".store.", dir=out))
    try:
        with open(partial, "a", encoding="utf-8") as log:
            for n, video in enumerate(videos):
                if progress:
                    progress(n, len(videos), str(video["id"]))
                if video["id"] in done:
                    continue
                files = [str(image_root / f) for f in video["file_names"]]
                source = ImageSequenceSource(files, str(image_root), fps=None)
                size = (int(video["height"]), int(video["width"]))
                writer = ResultWriter(scratch, StoreMeta(str(video["id"]), size[1], size[0], None))
                predictor.run(source.frames(), (source.info.height, source.info.width), writer, options)
                entries = _entries(ResultStore(scratch), video["id"], ids, (source.info.height, source.info.width), len(files))
                done[video["id"]] = entries
                log.write(json.dumps({"video_id": video["id"], "results": entries}) + "\n")
                log.flush()
                os.fsync(log.fileno())
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    if progress:
        progress(len(videos), len(videos), "")
    results = [e for v in videos for e in done[v["id"]]]
    results_json = out / "results.json"
    write_text_atomic(results_json, json.dumps(results))
    zip_path = write_submission_zip(results, out / "results.zip")
    has_gt = bool(gt.get("annotations"))
    if limit and has_gt:
        keep = {v["id"] for v in videos}
        gt = dict(gt, videos=videos, annotations=[a for a in gt["annotations"] if a["video_id"] in keep])
        gt_json = out / "ground_truth.subset.json"
        gt_json.write_text(json.dumps(gt))
    return DatasetRun(results, results_json, zip_path, has_gt, gt_json, len(videos))


VIPSEG_LAYOUT = ("VIPSeg/VIPSeg_720P/panoptic_gt_VIPSeg_{split}.json", "VIPSeg/VIPSeg_720P/images", "VIPSeg/VIPSeg_720P/panomasksRGB")


def vipseg_frames(gt: dict, image_root: Path, limit: int = 0) -> list[tuple[str, list[Path]]]:
    """(video id, frame files) in the json's order; frames are images/<video>/<image id>.jpg."""
    per_video = gt.get("annotations") or gt.get("videos") or []
    out = []
    for video in per_video[:limit] if limit else per_video:
        vid = str(video["video_id"])
        entries = video.get("annotations") or video.get("images") or []
        names = [str(e.get("image_id") or e.get("id") or Path(e["file_name"]).stem) for e in entries]
        files = [image_root / vid / f"{Path(n).stem}.jpg" for n in names]
        missing = [f for f in files if not f.exists()]
        if missing:
            raise InputError(f"video {vid}: {len(missing)} frames missing, e.g. {missing[0]}")
        out.append((vid, files))
    return out


def run_vipseg_dataset(
    predictor: VideoPredictor,
    gt_json: Path,
    image_root: Path,
    out: Path,
    options: SegmentOptions,
    limit: int = 0,
    progress: Callable[[int, int, str], None] | None = None,
) -> tuple[Path, Path, int]:
    """VIPSeg submission (`pan_pred/` + `pred.json`) of a VPS model; finished videos are skipped."""
    from dvis_cli.inference.segment import segment_video
    from dvis_cli.io import ImageSequenceSource

    if predictor.model.config.test.task != "vps":
        raise InputError("VIPSeg needs a video panoptic model (a *_vipseg preset / VIPSeg checkpoint)")
    if not gt_json.exists():
        raise InputError(f"{gt_json}: no such annotation file")
    try:
        gt = json.loads(gt_json.read_text())
    except json.JSONDecodeError as exc:
        raise InputError(f"{gt_json}: not valid JSON ({exc})") from None
    videos = vipseg_frames(gt, image_root, limit)
    out.mkdir(parents=True, exist_ok=True)
    for n, (vid, files) in enumerate(videos):
        if progress:
            progress(n, len(videos), vid)
        source = ImageSequenceSource([str(f) for f in files], str(image_root / vid), fps=None)
        segment_video(predictor, source, out, vid, options, exports=(), resume=True)
    if progress:
        progress(len(videos), len(videos), "")
    return out / "pan_pred", out / "pred.json", len(videos)
