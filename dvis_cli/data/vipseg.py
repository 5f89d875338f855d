"""VIPSeg panoptic training videos (the official `panoVSPW_vps_video_*` registration).

Layout: a json ``panoptic_gt_VIPSeg_<split>.json`` next to ``images/`` and ``panomasksRGB/``:

* ``videos`` [{video_id, images [{id, file_name, width, height}]}];
* ``annotations`` [{video_id, annotations [{image_id, file_name (png), segments_info [{id,
  category_id, iscrowd, ...}]}]}], frames in the order of this list;
* ``categories`` [{id, name, isthing, color}].

Frames are ``images/<video_id>/<image file stem>.jpg`` and panoptic PNGs
``panomasksRGB/<video_id>/<png>`` with segment id = R + 256 G + 256² B.  Every non-crowd segment,
thing or stuff, is an instance whose track id is its segment id; classes are contiguous
things-first: things ranked by id, then stuff ranked by id.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import cv2
import numpy as np

from dvis_cli.classes import ClassSet
from dvis_cli.errors import InputError

from .files import check_images_exist, read_json, require_keys, require_list, resolve_annotations


class Segment(NamedTuple):
    id: int  # panoptic segment id, the track id
    category_id: int


@dataclass
class PanopticVideo:
    name: str  # the VIPSeg video_id
    file_paths: list[str]
    panoptic_paths: list[str]
    height: int
    width: int
    segments: list[list[Segment]] = field(default_factory=list)  # per frame, crowd left out

    @property
    def length(self) -> int:
        return len(self.file_paths)


@dataclass
class PanopticVideoDataset:
    videos: list[PanopticVideo]
    categories: list[tuple[int, str, bool]]  # (id, name, isthing) in contiguous order: things, then stuff
    source: Path | None = None
    image_root: Path | None = None
    panoptic_root: Path | None = None

    def class_set(self) -> ClassSet:
        return ClassSet(
            tuple(c[1] for c in self.categories),
            tuple(c[0] for c in self.categories),
            sum(1 for c in self.categories if c[2]),
        )

    def contiguous_ids(self) -> dict[int, int]:
        return {c[0]: i for i, c in enumerate(self.categories)}

    @property
    def num_classes(self) -> int:
        return len(self.categories)


def read_panoptic_ids(path: str) -> np.ndarray:
    """(H, W) int64 segment ids of an RGB panoptic PNG: R + 256 G + 256² B."""
    image = cv2.imread(path, cv2.IMREAD_COLOR)
    if image is None:
        raise InputError(f"cannot read panoptic PNG {path}")
    image = image.astype(np.int64)  # OpenCV order: B, G, R
    return image[:, :, 2] + 256 * image[:, :, 1] + 65536 * image[:, :, 0]


def _categories(data: dict, source: Path) -> list[tuple[int, str, bool]]:
    cats = require_list(data, "categories", "the file", source)
    seen: dict[int, tuple[int, str, bool]] = {}
    for i, cat in enumerate(cats):
        require_keys(cat, ("id", "name", "isthing"), f"category #{i}", source)
        if cat["id"] in seen:
            raise InputError(f"{source}: category id {cat['id']} appears twice")
        seen[cat["id"]] = (int(cat["id"]), str(cat["name"]), bool(cat["isthing"]))
    if not seen:
        raise InputError(f"{source}: 'categories' is empty")
    things = sorted(c for c in seen.values() if c[2])
    stuff = sorted(c for c in seen.values() if not c[2])
    return things + stuff


def load_vipseg(
    annotations: str | Path,
    image_root: str | Path | None = None,
    panoptic_root: str | Path | None = None,
    check_images: bool = True,
) -> PanopticVideoDataset:
    """Load and validate a VIPSeg panoptic json with its frames and panoptic PNGs."""
    source, root = resolve_annotations(annotations, image_root, ("images",))
    if panoptic_root is None:
        pan_root = source.parent / "panomasksRGB"
    else:
        pan_root = Path(panoptic_root).expanduser()
    if not pan_root.is_dir():
        raise InputError(f"panoptic PNG folder not found: {pan_root}")
    return vipseg_from_json(read_json(source), source, root, pan_root, check_images)


def vipseg_from_json(data: Any, source: Path, root: Path, pan_root: Path, check_images: bool = True) -> PanopticVideoDataset:
    """`load_vipseg` on an already parsed json (`source` names it in messages)."""
    require_keys(data, ("videos", "annotations", "categories"), "the top level", source)
    categories = _categories(data, source)
    known = {c[0] for c in categories}

    images: dict[str, dict] = {}
    for i, vid in enumerate(require_list(data, "videos", "the file", source)):
        require_keys(vid, ("video_id", "images"), f"video #{i}", source)
        frames = {}
        for j, im in enumerate(require_list(vid, "images", f"video '{vid['video_id']}'", source)):
            require_keys(im, ("id", "file_name", "height", "width"), f"image #{j} of video '{vid['video_id']}'", source)
            frames[im["id"]] = im
        images[str(vid["video_id"])] = frames

    videos = []
    for i, ann in enumerate(require_list(data, "annotations", "the file", source)):
        require_keys(ann, ("video_id", "annotations"), f"annotation #{i}", source)
        name = str(ann["video_id"])
        frames = images.get(name)
        if frames is None:
            raise InputError(f"{source}: annotations of video '{name}', which is not in 'videos'")
        entries = require_list(ann, "annotations", f"video '{name}'", source)
        if not entries:
            raise InputError(f"{source}: video '{name}' has no annotated frames")
        video = None
        for t, entry in enumerate(entries):
            require_keys(entry, ("image_id", "file_name", "segments_info"), f"frame {t} of video '{name}'", source)
            im = frames.get(entry["image_id"])
            if im is None:
                raise InputError(f"{source}: frame {t} of video '{name}' refers to image id {entry['image_id']}, not in the video")
            h, w = int(im["height"]), int(im["width"])
            if video is None:
                video = PanopticVideo(name, [], [], h, w)
            elif (h, w) != (video.height, video.width):
                raise InputError(f"{source}: video '{name}' mixes frame sizes {video.width}x{video.height} and {w}x{h}")
            video.file_paths.append(str(root / name / (Path(im["file_name"]).stem + ".jpg")))
            video.panoptic_paths.append(str(pan_root / name / entry["file_name"]))
            segs = []
            for info in require_list(entry, "segments_info", f"frame {t} of video '{name}'", source):
                require_keys(info, ("id", "category_id"), f"a segment of frame {t} of video '{name}'", source)
                if info["category_id"] not in known:
                    raise InputError(f"{source}: segment {info['id']} of video '{name}' has unknown category id {info['category_id']}")
                if not info.get("iscrowd", 0):
                    segs.append(Segment(int(info["id"]), int(info["category_id"])))
            video.segments.append(segs)
        videos.append(video)
    if not videos:
        raise InputError(f"{source}: no annotated video")

    dataset = PanopticVideoDataset(videos, categories, source, root, pan_root)
    if check_images:
        check_images_exist((p for v in videos for p in v.file_paths), source, root)
        check_images_exist((p for v in videos for p in v.panoptic_paths), source, pan_root)
    return dataset
