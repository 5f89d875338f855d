"""COCO instance annotations as pseudo videos (the official `CocoClipDatasetMapper` idea).

Every image becomes a clip whose frames are that image, augmented once for the whole clip
(resize / crop / flip, see `transforms`) and then rotated per frame by angles that change
monotonically over the clip (within ±15°, around a centre drawn in [0.4, 0.6] of the image, no
expansion): pseudo motion.  A virtual video length in 16..48 is drawn and the usual frame
selection runs on it, so `frame_indices` look like those of a real clip.

COCO categories are mapped onto a video data set's categories with the official tables
(`COCO_TO_YTVIS_2019`, `COCO_TO_YTVIS_2021`, `COCO_TO_OVIS`, as defined in DVIS's
``dvis/data_video/datasets/ytvis.py`` and ``builtin.py``); annotations of other categories and
crowd annotations are left out, and so are images with nothing left (detectron2's
FILTER_EMPTY_ANNOTATIONS).  Without a target the json's own categories are used.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dvis_cli.classes import CLASS_SETS
from dvis_cli.errors import InputError

from .files import check_images_exist, read_json, require_keys, require_list, resolve_annotations
from .masks import has_segmentation
from .ytvis import SortedCategories, parse_categories

# COCO category id -> YouTube-VIS 2019 category id (COCO bicycle and motorcycle both -> motorbike,
# skis and snowboard -> snowboard, car -> sedan)
COCO_TO_YTVIS_2019: dict[int, int] = {
    1: 1, 2: 21, 3: 6, 4: 21, 5: 28, 7: 17, 8: 29, 9: 34, 17: 14, 18: 8, 19: 18, 21: 15, 22: 32,
    23: 20, 24: 30, 25: 22, 35: 33, 36: 33, 41: 5, 42: 27, 43: 40,
}
# COCO category id -> YouTube-VIS 2021 category id (adds bird, frisbee -> flying_disc)
COCO_TO_YTVIS_2021: dict[int, int] = {
    1: 26, 2: 23, 3: 5, 4: 23, 5: 1, 7: 36, 8: 37, 9: 4, 16: 3, 17: 6, 18: 9, 19: 19, 21: 7,
    22: 12, 23: 2, 24: 40, 25: 18, 34: 14, 35: 31, 36: 31, 41: 29, 42: 33, 43: 34,
}
# COCO category id -> OVIS category id (car, bus and truck -> "Vehical"; no COCO bird mapping)
COCO_TO_OVIS: dict[int, int] = {
    1: 1, 2: 21, 3: 25, 4: 22, 5: 23, 6: 25, 8: 25, 9: 24, 17: 3, 18: 4, 19: 5, 20: 6, 21: 7,
    22: 8, 23: 9, 24: 10, 25: 11,
}
COCO_CATEGORY_MAPS: dict[str, dict[int, int]] = {
    "ytvis19": COCO_TO_YTVIS_2019,
    "ytvis21": COCO_TO_YTVIS_2021,
    "ovis": COCO_TO_OVIS,
}

# the COCO names of the ids the tables use, to catch a json whose ids are not COCO's
COCO_NAMES: dict[int, str] = {
    1: "person", 2: "bicycle", 3: "car", 4: "motorcycle", 5: "airplane", 6: "bus", 7: "train",
    8: "truck", 9: "boat", 16: "bird", 17: "cat", 18: "dog", 19: "horse", 20: "sheep", 21: "cow",
    22: "elephant", 23: "bear", 24: "zebra", 25: "giraffe", 34: "frisbee", 35: "skis",
    36: "snowboard", 41: "skateboard", 42: "surfboard", 43: "tennis racket",
}

COCO_IMAGE_FOLDERS = ("JPEGImages", "images")  # looked for next to the json without an image root
PSEUDO_LENGTH_RANGE = (16, 48)  # virtual video length, both ends included


@dataclass
class ImageInstance:
    track_id: int  # the COCO annotation id
    category_id: int  # in the target data set's ids
    segmentation: Any  # polygons or RLE


@dataclass
class ImageRecord:
    id: int
    name: str
    file_path: str
    height: int
    width: int
    instances: list[ImageInstance] = field(default_factory=list)


@dataclass
class CocoPseudoVideos(SortedCategories):
    images: list[ImageRecord]
    categories: list[tuple[int, str]]  # (target dataset id, name), sorted by id
    source: Path | None = None
    image_root: Path | None = None
    max_rotation: float = 15.0  # degrees; 0 turns the pseudo motion off
    length_range: tuple[int, int] = PSEUDO_LENGTH_RANGE


def _same_name(a: str, b: str) -> bool:
    return a.lower().replace("_", " ").strip() == b.lower().replace("_", " ").strip()


def _target_categories(target: str) -> list[tuple[int, str]]:
    classes = CLASS_SETS[target]
    return sorted(zip(classes.dataset_ids, classes.names))


def load_coco_pseudo(
    annotations: str | Path,
    image_root: str | Path | None = None,
    target: str | None = None,
    category_map: dict[int, int] | None = None,
    check_images: bool = True,
    max_rotation: float = 15.0,
) -> CocoPseudoVideos:
    """Load a COCO instance json as pseudo videos, mapped onto `target` ("ytvis19", "ytvis21",
    "ovis") with the official table or with `category_map` (COCO id -> target id)."""
    source, root = resolve_annotations(annotations, image_root, COCO_IMAGE_FOLDERS)
    return coco_pseudo_from_json(read_json(source), source, root, target, category_map, check_images, max_rotation)


def coco_pseudo_from_json(
    data: Any,
    source: Path,
    root: Path,
    target: str | None = None,
    category_map: dict[int, int] | None = None,
    check_images: bool = True,
    max_rotation: float = 15.0,
) -> CocoPseudoVideos:
    """`load_coco_pseudo` on an already parsed json (`source` names it in messages)."""
    require_keys(data, ("images", "annotations", "categories"), "the top level", source)
    coco_categories = dict(parse_categories(data, source))

    if target is not None:
        if target not in CLASS_SETS or (category_map is None and target not in COCO_CATEGORY_MAPS):
            raise InputError(f"no COCO category map to {target!r}; known: {', '.join(COCO_CATEGORY_MAPS)}")
        categories = _target_categories(target)
        mapping = dict(category_map if category_map is not None else COCO_CATEGORY_MAPS[target])
        if category_map is None:
            wrong = [
                f"{cid} is '{coco_categories.get(cid)}'"
                for cid in mapping
                if cid in coco_categories and not _same_name(coco_categories[cid], COCO_NAMES[cid])
            ]
            if wrong:
                raise InputError(
                    f"{source}: category ids are not COCO's ({', '.join(wrong[:3])}); "
                    f"the COCO -> {target} table needs the original COCO ids"
                )
        known_targets = {cid for cid, _ in categories}
        bad = sorted(v for v in mapping.values() if v not in known_targets)
        if bad:
            raise InputError(f"category map sends COCO ids to {bad}, which {target} does not have")
    elif category_map is not None:
        raise InputError("a COCO category map needs a target data set (ytvis19, ytvis21 or ovis)")
    else:
        categories = sorted(coco_categories.items())
        mapping = {cid: cid for cid in coco_categories}

    images: dict[int, ImageRecord] = {}
    for i, img in enumerate(require_list(data, "images", "the file", source)):
        require_keys(img, ("id", "file_name", "height", "width"), f"image #{i}", source)
        if img["id"] in images:
            raise InputError(f"{source}: image id {img['id']} appears twice")
        name = Path(str(img["file_name"])).stem
        images[img["id"]] = ImageRecord(img["id"], name, str(root / str(img["file_name"])), int(img["height"]), int(img["width"]))

    for i, ann in enumerate(require_list(data, "annotations", "the file", source)):
        require_keys(ann, ("image_id", "category_id", "segmentation"), f"annotation #{i}", source)
        image = images.get(ann["image_id"])
        if image is None:
            raise InputError(f"{source}: annotation {ann.get('id', i + 1)} refers to image id {ann['image_id']}, which is not in 'images'")
        if ann["category_id"] not in coco_categories:
            raise InputError(f"{source}: annotation {ann.get('id', i + 1)} has category id {ann['category_id']}, which is not in 'categories'")
        if ann.get("iscrowd", 0) or ann["category_id"] not in mapping or not has_segmentation(ann["segmentation"]):
            continue
        image.instances.append(ImageInstance(int(ann.get("id", i + 1)), mapping[ann["category_id"]], ann["segmentation"]))

    kept = [im for im in images.values() if im.instances]
    if not kept:
        raise InputError(f"{source}: no image has an annotation of a category that maps to {target or 'the data set'}")
    dataset = CocoPseudoVideos(kept, categories, source, root, max_rotation)
    if check_images:
        check_images_exist((im.file_path for im in kept), source, root)
    return dataset
