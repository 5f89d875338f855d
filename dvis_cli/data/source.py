"""One entry point for a `--data` path: tell the annotation format apart and load it."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from dvis_cli.errors import InputError

from .coco_pseudo import COCO_IMAGE_FOLDERS, CocoPseudoVideos, coco_pseudo_from_json
from .files import IMAGE_FOLDER_NAMES, read_json, resolve_annotations
from .vipseg import PanopticVideoDataset, vipseg_from_json
from .ytvis import VideoDataset, ytvis_from_json

FORMATS = ("ytvis", "vipseg", "coco")


def detect_format(data: Any) -> str | None:
    """'ytvis', 'vipseg' or 'coco' from a parsed json's structure; None when it is none of them."""
    if not isinstance(data, dict):
        return None
    videos = data.get("videos")
    if isinstance(videos, list):
        first = videos[0] if videos else {}
        if isinstance(first, dict) and "images" in first and "file_names" not in first:
            return "vipseg"
        return "ytvis"
    if isinstance(data.get("images"), list) and isinstance(data.get("annotations"), list):
        return "coco"
    return None


def load_training_source(
    path: str | Path,
    image_root: str | Path | None = None,
    target: str | None = None,
    panoptic_root: str | Path | None = None,
    check_images: bool = True,
) -> VideoDataset | CocoPseudoVideos | PanopticVideoDataset:
    """Load a YouTube-VIS / OVIS, VIPSeg or COCO (as pseudo videos) training set.

    `target` ("ytvis19", "ytvis21", "ovis") maps COCO categories with the official tables; it is
    ignored for video data sets.
    """
    source, _ = resolve_annotations(path, image_root)
    data = read_json(source)
    kind = detect_format(data)
    if kind is None:
        raise InputError(f"{source} is neither a YouTube-VIS / OVIS, a VIPSeg nor a COCO annotation file")
    if kind == "ytvis":
        _, root = resolve_annotations(source, image_root, IMAGE_FOLDER_NAMES)
        return ytvis_from_json(data, source, root, check_images)
    if kind == "coco":
        _, root = resolve_annotations(source, image_root, COCO_IMAGE_FOLDERS)
        return coco_pseudo_from_json(data, source, root, target, None, check_images)
    _, root = resolve_annotations(source, image_root, ("images",))
    pan_root = Path(panoptic_root).expanduser() if panoptic_root is not None else source.parent / "panomasksRGB"
    if not pan_root.is_dir():
        raise InputError(f"panoptic PNG folder not found: {pan_root}")
    return vipseg_from_json(data, source, root, pan_root, check_images)
