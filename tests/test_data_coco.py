"""COCO images as pseudo videos: category maps and the monotonic rotation."""
from __future__ import annotations

import json
import math
from pathlib import Path

import cv2
import numpy as np
import pytest

from dvis_cli.classes import CLASS_SETS
from dvis_cli.data.coco_pseudo import (
    COCO_NAMES,
    COCO_TO_OVIS,
    COCO_TO_YTVIS_2019,
    COCO_TO_YTVIS_2021,
    load_coco_pseudo,
)
from dvis_cli.data.dataset import ClipDataset
from dvis_cli.data.synth import SynthConfig, write_dataset
from dvis_cli.data.transforms import AugmentConfig
from dvis_cli.errors import InputError

# synth category -> a COCO id: person, car, dog, toaster (not mapped anywhere), truck
SYNTH_TO_COCO = {1: 1, 2: 3, 3: 18, 4: 70, 5: 8}
COCO_CATS = [{"id": 1, "name": "person"}, {"id": 3, "name": "car"}, {"id": 8, "name": "truck"},
             {"id": 18, "name": "dog"}, {"id": 70, "name": "toaster"}]


@pytest.fixture(scope="module")
def coco(tmp_path_factory) -> Path:
    """A COCO json made of the first frame of each synthetic video."""
    root = tmp_path_factory.mktemp("coco")
    synth = root / "synth"
    write_dataset(synth, SynthConfig(videos=4, frames=3, height=48, width=64, seed=2))
    data = json.loads((synth / "annotations.json").read_text())
    (root / "images").mkdir()
    images, anns = [], []
    for v in data["videos"]:
        name = f"{v['id']:012d}.jpg"
        (root / "images" / name).write_bytes((synth / "JPEGImages" / v["file_names"][0]).read_bytes())
        images.append({"id": v["id"], "file_name": name, "height": v["height"], "width": v["width"]})
    for a in data["annotations"]:
        if a["segmentations"][0] is None:
            continue
        anns.append({"id": a["id"], "image_id": a["video_id"], "category_id": SYNTH_TO_COCO[a["category_id"]],
                     "segmentation": a["segmentations"][0], "bbox": a["bboxes"][0], "area": a["areas"][0], "iscrowd": 0})
    anns[-1]["category_id"] = 70  # a toaster: in no table
    anns.append(dict(anns[0], id=999, iscrowd=1))  # crowd annotations are never used
    path = root / "instances.json"
    path.write_text(json.dumps({"images": images, "annotations": anns, "categories": COCO_CATS}))
    return path


def test_official_maps_are_consistent_with_names():
    ytvis19 = CLASS_SETS["ytvis19"].names
    ytvis21 = CLASS_SETS["ytvis21"].names
    ovis = CLASS_SETS["ovis"].names
    assert ytvis19[COCO_TO_YTVIS_2019[1] - 1] == "person"
    assert ytvis19[COCO_TO_YTVIS_2019[3] - 1] == "sedan"
    assert ytvis21[COCO_TO_YTVIS_2021[34] - 1] == "flying_disc"
    assert {ovis[COCO_TO_OVIS[c] - 1] for c in (3, 6, 8)} == {"Vehical"}
    # every map sends a COCO animal / vehicle to the category of the same name where one exists
    for table, names in ((COCO_TO_YTVIS_2019, ytvis19), (COCO_TO_YTVIS_2021, ytvis21), (COCO_TO_OVIS, ovis)):
        for coco_id, target in table.items():
            lowered = [n.lower() for n in names]
            if COCO_NAMES[coco_id] in lowered:
                assert lowered[target - 1] == COCO_NAMES[coco_id]


def test_category_map_filter(coco):
    ds = load_coco_pseudo(coco, target="ovis")
    assert ds.class_set() == CLASS_SETS["ovis"]
    raw = json.loads(coco.read_text())
    want = {a["id"]: COCO_TO_OVIS[a["category_id"]] for a in raw["annotations"]
            if a["category_id"] != 70 and not a["iscrowd"]}
    got = {i.track_id: i.category_id for im in ds.images for i in im.instances}
    assert got == want and len(raw["annotations"]) > len(want)  # toaster left out
    # no target: the json's own categories, contiguous in sorted id order
    own = load_coco_pseudo(coco)
    assert own.class_set().dataset_ids == (1, 3, 8, 18, 70)
    assert sum(len(im.instances) for im in own.images) == len(raw["annotations"]) - 1


def test_wrong_ids_rejected(coco, tmp_path):
    raw = json.loads(coco.read_text())
    raw["categories"][1]["name"] = "giraffe"  # id 3 is not 'car' any more
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(raw))
    with pytest.raises(InputError, match="not COCO's"):
        load_coco_pseudo(bad, coco.parent / "images", target="ytvis19")
    with pytest.raises(InputError, match="no COCO category map"):
        load_coco_pseudo(coco, target="vipseg")


def test_pseudo_clip_targets(coco):
    ds = load_coco_pseudo(coco, target="ovis", max_rotation=0.0)
    clips = ClipDataset(ds, 5, 2, AugmentConfig(min_sizes=(48,), flip=True))
    assert len(clips) == len(ds.images)
    s = clips.sample(0, np.random.default_rng(0))
    assert s.images.shape == (5, 3, 48, 64)
    # without rotation all frames of a pseudo video are the same augmented image
    assert all(np.array_equal(s.images[0], s.images[t]) for t in range(5))
    assert s.masks.shape[1:] == (5, 48, 64) and s.present.all()
    contiguous = ds.contiguous_ids()
    raw = {a.track_id: a.category_id for a in ds.images[0].instances}
    assert [contiguous[raw[int(t)]] for t in s.track_ids] == s.labels.tolist()
    assert len(s.frame_indices) == 5 and all(0 <= f < 48 for f in s.frame_indices)  # virtual length 16..48


def _bar_dataset(tmp_path: Path) -> Path:
    h, w = 64, 96
    image = np.full((h, w, 3), 20, np.uint8)
    image[28:36, 16:80] = 230
    cv2.imwrite(str(tmp_path / "bar.png"), image)
    poly = [16, 28, 80, 28, 80, 36, 16, 36]
    data = {
        "images": [{"id": 1, "file_name": "bar.png", "height": h, "width": w}],
        "annotations": [{"id": 5, "image_id": 1, "category_id": 1, "segmentation": [poly], "iscrowd": 0}],
        "categories": [{"id": 1, "name": "person"}],
    }
    (tmp_path / "bar.json").write_text(json.dumps(data))
    return tmp_path / "bar.json"


def _orientation(mask: np.ndarray) -> float:
    m = cv2.moments(mask.astype(np.uint8), binaryImage=True)
    return math.degrees(0.5 * math.atan2(2 * m["mu11"], m["mu20"] - m["mu02"]))


def test_rotation_monotonic_over_clip(tmp_path):
    ds = load_coco_pseudo(_bar_dataset(tmp_path), target="ytvis19")
    clips = ClipDataset(ds, 6, 0, AugmentConfig(min_sizes=(64,), flip=False))
    spans = []
    for seed in range(6):
        s = clips.sample(0, np.random.default_rng(seed))
        assert s.labels.tolist() == [0] and s.track_ids.tolist() == [5]
        angles = [_orientation(s.masks[0, t].numpy()) for t in range(6)]
        d = np.diff(angles)
        assert (d >= -0.5).all() or (d <= 0.5).all(), angles
        assert max(abs(a) for a in angles) < 16
        spans.append(max(angles) - min(angles))
        # the image rotates with the mask
        for t in range(6):
            bright = s.images[t, 0].numpy() > 125
            assert (bright == s.masks[0, t].numpy()).mean() > 0.97
    assert max(spans) > 5  # the bar really turns
