"""VIPSeg panoptic videos as training clips, and format detection of --data paths."""
from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from dvis_cli.data.coco_pseudo import CocoPseudoVideos
from dvis_cli.data.dataset import ClipDataset
from dvis_cli.data.masks import decode_segmentation
from dvis_cli.data.source import load_training_source
from dvis_cli.data.synth import SynthConfig, write_dataset
from dvis_cli.data.transforms import AugmentConfig
from dvis_cli.data.vipseg import load_vipseg
from dvis_cli.data.ytvis import VideoDataset
from dvis_cli.errors import InputError

# categories: two stuff (ids 0, 3) and two things (ids 2, 5), listed unsorted
CATEGORIES = [
    {"id": 5, "name": "square", "isthing": 1, "color": [0, 0, 0]},
    {"id": 3, "name": "sky", "isthing": 0, "color": [0, 0, 0]},
    {"id": 0, "name": "wall", "isthing": 0, "color": [0, 0, 0]},
    {"id": 2, "name": "disc", "isthing": 1, "color": [0, 0, 0]},
]
SYNTH_TO_PANO = {1: 2, 2: 5, 3: 2, 4: 5, 5: 2}
BACKGROUND_ID = 7  # a stuff segment ("wall") covering what no object covers
CROWD_ID = 70000  # a crowd segment: in the PNG, never an instance


def _write_png(path: Path, ids: np.ndarray) -> None:
    rgb = np.stack([ids % 256, (ids // 256) % 256, ids // 65536], axis=-1).astype(np.uint8)
    cv2.imwrite(str(path), rgb[:, :, ::-1])


@pytest.fixture(scope="module")
def vipseg(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("vipseg")
    synth = root / "synth"
    write_dataset(synth, SynthConfig(videos=2, frames=5, height=40, width=56, seed=4))
    data = json.loads((synth / "annotations.json").read_text())
    videos, annotations = [], []
    for v in data["videos"]:
        name = f"{v['id']}_clip"
        (root / "images" / name).mkdir(parents=True)
        (root / "panomasksRGB" / name).mkdir(parents=True)
        anns = [a for a in data["annotations"] if a["video_id"] == v["id"]]
        images, frames = [], []
        for t, fname in enumerate(v["file_names"]):
            stem = f"{t:05d}"
            (root / "images" / name / f"{stem}.jpg").write_bytes((synth / "JPEGImages" / fname).read_bytes())
            ids = np.full((v["height"], v["width"]), BACKGROUND_ID, np.int64)
            ids[:3, :3] = CROWD_ID
            infos = [{"id": BACKGROUND_ID, "category_id": 0, "iscrowd": 0}, {"id": CROWD_ID, "category_id": 3, "iscrowd": 1}]
            for a in anns:
                if a["segmentations"][t] is None:
                    continue
                sid = 1000 + a["id"]  # uses the G channel too
                ids[decode_segmentation(a["segmentations"][t], v["height"], v["width"])] = sid
                infos.append({"id": sid, "category_id": SYNTH_TO_PANO[a["category_id"]], "iscrowd": 0})
            _write_png(root / "panomasksRGB" / name / f"{stem}.png", ids)
            images.append({"id": f"{name}_{stem}", "file_name": f"{stem}.jpg", "height": v["height"], "width": v["width"]})
            frames.append({"image_id": f"{name}_{stem}", "file_name": f"{stem}.png", "segments_info": infos})
        videos.append({"video_id": name, "images": images})
        annotations.append({"video_id": name, "annotations": frames})
    path = root / "panoptic_gt_VIPSeg_train.json"
    path.write_text(json.dumps({"videos": videos, "annotations": annotations, "categories": CATEGORIES}))
    return path


def test_load_things_first(vipseg):
    ds = load_vipseg(vipseg)
    cs = ds.class_set()
    assert cs.names == ("disc", "square", "wall", "sky") and cs.dataset_ids == (2, 5, 0, 3) and cs.num_things == 2
    assert len(ds.videos) == 2 and ds.videos[0].length == 5
    assert all(CROWD_ID not in [s.id for s in frame] for v in ds.videos for frame in v.segments)


def test_panoptic_clip(vipseg):
    ds = load_vipseg(vipseg)
    clips = ClipDataset(ds, 3, 1, AugmentConfig(min_sizes=(40,), flip=False))
    s = clips.sample(0, np.random.default_rng(1))
    assert s.images.shape == (3, 3, 40, 56) and s.video == ds.videos[0].name
    tracks = s.track_ids.tolist()
    assert BACKGROUND_ID in tracks and CROWD_ID not in tracks
    assert s.labels[tracks.index(BACKGROUND_ID)] == 2  # 'wall': first stuff class after 2 things
    assert all(lbl in (0, 1) for tid, lbl in zip(tracks, s.labels.tolist()) if tid != BACKGROUND_ID)
    # identity augmentation: masks are exactly the PNG segments
    for k, tid in enumerate(tracks):
        for t, f in enumerate(s.frame_indices):
            png = cv2.imread(ds.videos[0].panoptic_paths[f])[:, :, ::-1].astype(np.int64)
            ids = png[..., 0] + 256 * png[..., 1] + 65536 * png[..., 2]
            assert np.array_equal(s.masks[k, t].numpy(), ids == tid)
    # masks follow a resize and flip too
    flipped = ClipDataset(ds, 3, 1, AugmentConfig(min_sizes=(80,), flip=True, flip_prob=1.0)).sample(0, np.random.default_rng(1))
    assert flipped.masks.shape[-2:] == (80, 112) and flipped.track_ids.tolist() == tracks


def test_missing_png(vipseg, tmp_path):
    import shutil

    copy = tmp_path / "v"
    shutil.copytree(vipseg.parent, copy)
    next((copy / "panomasksRGB").rglob("*.png")).unlink()
    with pytest.raises(InputError, match="1 of 10 .*missing"):
        load_vipseg(copy / vipseg.name)


def test_load_training_source_detects_format(vipseg, tmp_path):
    assert len(load_training_source(vipseg).videos) == 2
    synth = tmp_path / "s"
    write_dataset(synth, SynthConfig(videos=1, frames=2, height=32, width=32, seed=0))
    assert isinstance(load_training_source(synth), VideoDataset)
    coco = {"images": [{"id": 1, "file_name": "a.jpg", "height": 32, "width": 32}],
            "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "segmentation": [[1, 1, 20, 1, 20, 20]], "iscrowd": 0}],
            "categories": [{"id": 1, "name": "person"}]}
    (tmp_path / "images").mkdir()
    cv2.imwrite(str(tmp_path / "images" / "a.jpg"), np.zeros((32, 32, 3), np.uint8))
    (tmp_path / "coco.json").write_text(json.dumps(coco))
    pseudo = load_training_source(tmp_path / "coco.json", target="ovis")
    assert isinstance(pseudo, CocoPseudoVideos) and pseudo.class_set().names[0] == "Person"
    (tmp_path / "other.json").write_text(json.dumps({"foo": 1}))
    with pytest.raises(InputError, match="neither"):
        load_training_source(tmp_path / "other.json")
