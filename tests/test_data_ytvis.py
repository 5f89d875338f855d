"""Loading and validating YouTube-VIS style training data."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from dvis_cli.classes import CLASS_SETS
from dvis_cli.data.synth import SynthConfig, write_dataset
from dvis_cli.data.ytvis import check_classes, load_ytvis
from dvis_cli.errors import InputError


@pytest.fixture(scope="module")
def synth(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("synth") / "ds"
    write_dataset(out, SynthConfig(videos=3, frames=8, height=48, width=64, seed=1))
    return out


def _copy(synth: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "copy"
    shutil.copytree(synth, dst)
    return dst


def _edit(folder: Path, change) -> None:
    path = folder / "annotations.json"
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


def test_load_folder_and_json(synth):
    ds = load_ytvis(synth)
    same = load_ytvis(synth / "annotations.json")
    assert len(ds.videos) == 3 and len(same.videos) == 3
    assert ds.image_root == synth / "JPEGImages"
    raw = json.loads((synth / "annotations.json").read_text())
    assert sum(len(v.instances) for v in ds.videos) == len(raw["annotations"])
    v = ds.videos[0]
    assert v.name == "synth_00000" and v.length == 8 and (v.height, v.width) == (48, 64)
    assert all(Path(p).is_file() for p in v.file_paths)
    inst = v.instances[0]
    assert len(inst.segmentations) == 8 and inst.occlusion is not None
    track_id, category_id, segs, occ = inst  # the documented 4-tuple
    assert track_id == raw["annotations"][0]["id"] and category_id == raw["annotations"][0]["category_id"]
    # frames with a null segmentation are None, the others are kept
    assert [s is None for s in segs] == [s is None for s in raw["annotations"][0]["segmentations"]]


def test_class_set_is_sorted_ids(synth, tmp_path):
    ds = load_ytvis(synth)
    cs = ds.class_set()
    assert cs.names == ("disc", "square", "triangle", "star", "ring")
    assert cs.dataset_ids == (1, 2, 3, 4, 5) and cs.num_classes == 5
    # categories listed out of order, with gaps: contiguous order follows the sorted ids
    folder = _copy(synth, tmp_path)

    def renumber(d):
        new = {1: 30, 2: 10, 3: 20, 4: 7, 5: 40}
        d["categories"] = [dict(c, id=new[c["id"]]) for c in reversed(d["categories"])]
        for a in d["annotations"]:
            a["category_id"] = new[a["category_id"]]

    _edit(folder, renumber)
    cs = load_ytvis(folder).class_set()
    assert cs.dataset_ids == (7, 10, 20, 30, 40)
    assert cs.names == ("star", "square", "triangle", "disc", "ring")
    assert load_ytvis(folder).contiguous_ids() == {7: 0, 10: 1, 20: 2, 30: 3, 40: 4}


def test_check_classes(synth):
    ds = load_ytvis(synth)
    check_classes(ds, ["disc", "square", "triangle", "star", "ring"])
    check_classes(ds, ds.class_set())
    with pytest.raises(InputError, match="5 classes but the model has 25.*only in the model: Person"):
        check_classes(ds, CLASS_SETS["ovis"])
    with pytest.raises(InputError, match="class 3: data 'star' vs model 'hexagon'"):
        check_classes(ds, ["disc", "square", "triangle", "hexagon", "ring"])


def test_missing_path(tmp_path):
    with pytest.raises(InputError, match="not found"):
        load_ytvis(tmp_path / "nope.json")
    with pytest.raises(InputError, match="without annotations.json"):
        load_ytvis(tmp_path)


def test_malformed_json(synth, tmp_path):
    folder = _copy(synth, tmp_path)
    (folder / "annotations.json").write_text('{"videos": [1, 2')
    with pytest.raises(InputError, match="not valid JSON"):
        load_ytvis(folder)
    _edit_text = (folder / "annotations.json")
    _edit_text.write_text(json.dumps({"videos": [], "annotations": []}))
    with pytest.raises(InputError, match="lacks the key 'categories'"):
        load_ytvis(folder)


def test_missing_key_in_video(synth, tmp_path):
    folder = _copy(synth, tmp_path)
    _edit(folder, lambda d: d["videos"][1].pop("file_names"))
    with pytest.raises(InputError, match="video #1 lacks the key 'file_names'"):
        load_ytvis(folder)


def test_wrong_segmentation_length(synth, tmp_path):
    folder = _copy(synth, tmp_path)

    def shorten(d):
        ann = next(a for a in d["annotations"] if a["video_id"] == d["videos"][2]["id"])
        ann["segmentations"] = ann["segmentations"][:-1]

    _edit(folder, shorten)
    with pytest.raises(InputError, match="video 'synth_00002' has 7 segmentations for 8 frames"):
        load_ytvis(folder)


def test_unknown_category_and_video(synth, tmp_path):
    folder = _copy(synth, tmp_path)
    _edit(folder, lambda d: d["annotations"][0].update(category_id=99))
    with pytest.raises(InputError, match="category id 99"):
        load_ytvis(folder)
    folder2 = tmp_path / "b"
    shutil.copytree(synth, folder2)
    _edit(folder2, lambda d: d["annotations"][0].update(video_id=1234))
    with pytest.raises(InputError, match="video id 1234"):
        load_ytvis(folder2)


def test_missing_images(synth, tmp_path):
    folder = _copy(synth, tmp_path)
    (folder / "JPEGImages" / "synth_00001" / "00003.jpg").unlink()
    (folder / "JPEGImages" / "synth_00002" / "00000.jpg").unlink()
    with pytest.raises(InputError, match=r"2 of 24 images .* missing .*first: .*synth_00001/00003\.jpg"):
        load_ytvis(folder)
    # an explicit image root elsewhere is used as given
    with pytest.raises(InputError, match="image folder not found"):
        load_ytvis(folder, tmp_path / "elsewhere")
    assert len(load_ytvis(folder / "annotations.json", synth / "JPEGImages").videos) == 3


def test_crowd_dropped_and_null_boxes(synth, tmp_path):
    folder = _copy(synth, tmp_path)

    def change(d):
        d["annotations"][0]["iscrowd"] = 1
        ann = d["annotations"][1]
        t = next(i for i, s in enumerate(ann["segmentations"]) if s is not None)
        ann["bboxes"][t] = None  # a frame counts only with both a box and a segmentation

    _edit(folder, change)
    ds = load_ytvis(folder)
    raw = json.loads((folder / "annotations.json").read_text())
    assert ds.num_crowd == 1
    assert raw["annotations"][0]["id"] not in [i.track_id for v in ds.videos for i in v.instances]
    inst = next(i for v in ds.videos for i in v.instances if i.track_id == raw["annotations"][1]["id"])
    t = raw["annotations"][1]["bboxes"].index(None)
    assert inst.segmentations[t] is None


def test_decode_segmentation_formats():
    import numpy as np
    from pycocotools import mask as mask_util

    from dvis_cli.data.masks import decode_segmentation, has_segmentation

    m = np.zeros((20, 30), np.uint8)
    m[5:12, 4:20] = 1
    rle = mask_util.encode(np.asfortranarray(m))
    compressed = {"size": rle["size"], "counts": rle["counts"].decode("ascii")}
    # uncompressed RLE: run lengths in column-major order, starting with zeros
    flat = m.flatten(order="F")
    runs, value, count = [], 0, 0
    for v in flat:
        if v == value:
            count += 1
        else:
            runs.append(count)
            value, count = v, 1
    runs.append(count)
    uncompressed = {"size": [20, 30], "counts": runs}
    polygon = [[4, 5, 20, 5, 20, 12, 4, 12], [1, 1, 2]]  # the second polygon is invalid and ignored
    assert np.array_equal(decode_segmentation(compressed, 20, 30), m.astype(bool))
    assert np.array_equal(decode_segmentation(uncompressed, 20, 30), m.astype(bool))
    poly = decode_segmentation(polygon, 20, 30)
    assert abs(int(poly.sum()) - int(m.sum())) < 30 and poly[8, 10]
    assert not has_segmentation(None) and not has_segmentation([]) and not has_segmentation([[1, 2, 3, 4]])
    assert not decode_segmentation(None, 20, 30).any()
