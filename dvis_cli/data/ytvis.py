"""YouTube-VIS / OVIS training data: loading, validating and matching classes with a model.

A YTVIS json holds ``videos`` [{id, file_names, height, width, length?, name?}], ``annotations``
[{id, video_id, category_id, iscrowd?, segmentations (per frame RLE / polygons / null),
bboxes?, areas?, occlusion?}] and ``categories`` [{id, name}].  Everything a training run would
stumble over later (a missing frame, a segmentation list of the wrong length, an unknown category)
is reported here, before training starts, as one `InputError` line.

As the official loader does, a frame of an annotation counts only when its segmentation is usable
(compressed or uncompressed RLE, or polygons with at least 3 points) and, where the annotation
has ``bboxes``, its box is not null.  Crowd annotations are left out (the official mapper drops
them).  Contiguous classes are the dataset's category ids in sorted order.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple, Sequence

from dvis_cli.classes import ClassSet
from dvis_cli.errors import InputError

from .files import check_images_exist, read_json, require_keys, require_list, resolve_annotations
from .masks import has_segmentation


class InstanceRecord(NamedTuple):
    """One annotated object of a video: per-frame entries are None where it is not visible."""

    track_id: int
    category_id: int  # the dataset's category id
    segmentations: list[Any]  # per frame: RLE dict, polygon list or None
    occlusion: list[Any] | None  # per frame OVIS-style label, or None when the file has none

    def present_frames(self) -> list[int]:
        return [t for t, s in enumerate(self.segmentations) if s is not None]


@dataclass
class VideoRecord:
    id: int
    name: str
    file_paths: list[str]
    height: int
    width: int
    instances: list[InstanceRecord] = field(default_factory=list)

    @property
    def length(self) -> int:
        return len(self.file_paths)


class SortedCategories:
    """Classes of a data set whose `categories` are (dataset id, name) sorted by id."""

    categories: list[tuple[int, str]]

    def class_set(self) -> ClassSet:
        names = tuple(name for _, name in self.categories)
        ids = tuple(cid for cid, _ in self.categories)
        return ClassSet(names, ids, len(names))

    def contiguous_ids(self) -> dict[int, int]:
        """Dataset category id -> contiguous class 0..K-1 (sorted ids)."""
        return {cid: i for i, (cid, _) in enumerate(self.categories)}

    @property
    def num_classes(self) -> int:
        return len(self.categories)


@dataclass
class VideoDataset(SortedCategories):
    videos: list[VideoRecord]
    categories: list[tuple[int, str]]  # (dataset id, name), sorted by id
    source: Path | None = None
    image_root: Path | None = None
    num_crowd: int = 0  # crowd annotations left out

    @property
    def name(self) -> str:
        return str(self.source) if self.source is not None else "dataset"


def _video_name(video: dict) -> str:
    name = video.get("name")
    if isinstance(name, str) and name:
        return name
    files = video.get("file_names") or []
    if files and isinstance(files[0], str):
        parent = os.path.dirname(files[0].replace("\\", "/"))
        if parent:
            return parent
    return str(video["id"])


def parse_categories(data: dict, source: Path) -> list[tuple[int, str]]:
    cats = require_list(data, "categories", "the file", source)
    out: dict[int, str] = {}
    for i, cat in enumerate(cats):
        require_keys(cat, ("id", "name"), f"category #{i}", source)
        cid = cat["id"]
        if not isinstance(cid, int) or isinstance(cid, bool):
            raise InputError(f"{source}: category #{i} has a non-integer id {cid!r}")
        if cid in out:
            raise InputError(f"{source}: category id {cid} appears twice")
        out[cid] = str(cat["name"])
    if not out:
        raise InputError(f"{source}: 'categories' is empty")
    return sorted(out.items())


def load_ytvis(annotations: str | Path, image_root: str | Path | None = None, check_images: bool = True) -> VideoDataset:
    """Load and validate a YouTube-VIS / OVIS json (or a folder with annotations.json)."""
    source, root = resolve_annotations(annotations, image_root)
    return ytvis_from_json(read_json(source), source, root, check_images)


def ytvis_from_json(data: Any, source: Path, root: Path, check_images: bool = True) -> VideoDataset:
    """`load_ytvis` on an already parsed json (`source` names it in messages)."""
    require_keys(data, ("videos", "annotations", "categories"), "the top level", source)
    categories = parse_categories(data, source)
    known_categories = {cid for cid, _ in categories}

    videos: dict[int, VideoRecord] = {}
    for i, vid in enumerate(require_list(data, "videos", "the file", source)):
        require_keys(vid, ("id", "file_names", "height", "width"), f"video #{i}", source)
        vid_id = vid["id"]
        name = _video_name(vid)
        files = require_list(vid, "file_names", f"video '{name}'", source)
        if not files:
            raise InputError(f"{source}: video '{name}' has no file_names")
        if not all(isinstance(f, str) for f in files):
            raise InputError(f"{source}: video '{name}' has a file name that is not a string")
        if "length" in vid and vid["length"] != len(files):
            raise InputError(f"{source}: video '{name}' says length {vid['length']} but lists {len(files)} file_names")
        try:
            height, width = int(vid["height"]), int(vid["width"])
        except (TypeError, ValueError):
            raise InputError(f"{source}: video '{name}' has a non-integer height or width") from None
        if height < 1 or width < 1:
            raise InputError(f"{source}: video '{name}' has size {width}x{height}")
        if vid_id in videos:
            raise InputError(f"{source}: video id {vid_id} appears twice")
        videos[vid_id] = VideoRecord(vid_id, name, [str(root / f) for f in files], height, width)
    if not videos:
        raise InputError(f"{source}: 'videos' is empty")

    num_crowd = 0
    for i, ann in enumerate(require_list(data, "annotations", "the file", source)):
        require_keys(ann, ("video_id", "category_id", "segmentations"), f"annotation #{i}", source)
        ann_id = ann.get("id", i + 1)
        video = videos.get(ann["video_id"])
        if video is None:
            raise InputError(f"{source}: annotation {ann_id} refers to video id {ann['video_id']}, which is not in 'videos'")
        if ann["category_id"] not in known_categories:
            raise InputError(
                f"{source}: annotation {ann_id} of video '{video.name}' has category id {ann['category_id']}, "
                f"which is not in 'categories'"
            )
        segs = require_list(ann, "segmentations", f"annotation {ann_id}", source)
        if len(segs) != video.length:
            raise InputError(
                f"{source}: annotation {ann_id} of video '{video.name}' has {len(segs)} segmentations "
                f"for {video.length} frames"
            )
        boxes = ann.get("bboxes")
        if boxes is not None and (not isinstance(boxes, list) or len(boxes) != video.length):
            n = len(boxes) if isinstance(boxes, list) else type(boxes).__name__
            raise InputError(f"{source}: annotation {ann_id} of video '{video.name}' has {n} bboxes for {video.length} frames")
        if ann.get("iscrowd", 0):
            num_crowd += 1
            continue
        per_frame = [
            s if has_segmentation(s) and (boxes is None or boxes[t]) else None for t, s in enumerate(segs)
        ]
        occ = ann.get("occlusion")
        if not isinstance(occ, list) or len(occ) != video.length:
            occ = None
        video.instances.append(InstanceRecord(int(ann_id), int(ann["category_id"]), per_frame, occ))

    dataset = VideoDataset(list(videos.values()), categories, source, root, num_crowd)
    if check_images:
        check_images_exist((p for v in dataset.videos for p in v.file_paths), source, root)
    return dataset


def _names(model_classes: ClassSet | Sequence[str]) -> list[str]:
    if isinstance(model_classes, ClassSet):
        return list(model_classes.names)
    return [str(n) for n in model_classes]


def check_classes(dataset: VideoDataset | Any, model_class_names: ClassSet | Sequence[str]) -> None:
    """Raise InputError when the data set's classes (contiguous order) are not the model's."""
    ours = list(dataset.class_set().names)
    theirs = _names(model_class_names)
    if ours == theirs:
        return
    if len(ours) != len(theirs):
        only_data = [n for n in ours if n not in theirs]
        only_model = [n for n in theirs if n not in ours]
        detail = []
        if only_data:
            detail.append("only in the data: " + ", ".join(only_data[:8]) + (" ..." if len(only_data) > 8 else ""))
        if only_model:
            detail.append("only in the model: " + ", ".join(only_model[:8]) + (" ..." if len(only_model) > 8 else ""))
        raise InputError(
            f"the data set has {len(ours)} classes but the model has {len(theirs)}"
            + (f" ({'; '.join(detail)})" if detail else "")
        )
    diffs = [f"{i}: data '{a}' vs model '{b}'" for i, (a, b) in enumerate(zip(ours, theirs)) if a != b]
    more = f" and {len(diffs) - 5} more" if len(diffs) > 5 else ""
    raise InputError(f"the data set's classes differ from the model's at class {'; '.join(diffs[:5])}{more}")
