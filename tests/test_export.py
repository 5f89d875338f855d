"""Exports of a result store (YouTube-VIS json, CVAT-ready COCO json, tracks.csv, id PNGs), checked
against the masks the store was built from. `build_store` is shared with tests/test_render.py."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO

from dvis_cli.errors import InputError
from dvis_cli.export import write_coco, write_id_pngs, write_tracks_csv, write_ytvis
from dvis_cli.inference.results import ResultStore, ResultWriter, StoreMeta, Track, decode_mask, encode_mask

CLASS_NAMES = ["cat", "dog", "bird"]
DATASET_IDS = [7, 12, 30]
# track id -> (slot, contiguous label, score); slot 9 has masks but never became a track
TRACKS = {1: (3, 0, 0.9), 2: (5, 1, 0.6), 3: (8, 0, 0.75)}
UNTRACKED_SLOT = 9
TRACK2_ABSENT = {3, 4}
TRACK3_FRAMES = {5, 6, 7, 8}

# pycocotools' decode under numpy 2 (not ours to fix)
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning")


def _box(height: int, width: int, y0: float, y1: float, x0: float, x1: float) -> np.ndarray:
    mask = np.zeros((height, width), dtype=bool)
    mask[int(y0 * height):int(y1 * height), int(x0 * width):int(x1 * width)] = True
    return mask


def synthetic_masks(frame: int, height: int, width: int) -> dict[int, np.ndarray]:
    """{track id (or -slot for the untracked one): mask} present in `frame`.

    Track 1: a box moving right, every frame. Track 2: a disc overlapping track 1, absent in
    frames 3 and 4. Track 3: a box in the lower right in frames 5..8. An untracked slot everywhere.
    """
    masks = {1: _box(height, width, 0.15, 0.5, 0.05 + 0.02 * frame, 0.40 + 0.02 * frame)}
    if frame not in TRACK2_ABSENT:
        yy, xx = np.mgrid[:height, :width]
        radius = 0.15 * min(height, width)
        masks[2] = (yy - 0.45 * height) ** 2 + (xx - 0.42 * width) ** 2 <= radius**2
    if frame in TRACK3_FRAMES:
        masks[3] = _box(height, width, 0.65, 0.9, 0.65, 0.9)
    masks[-UNTRACKED_SLOT] = _box(height, width, 0.7, 0.8, 0.05, 0.2)
    return masks


def build_store(folder: Path, width: int = 64, height: int = 48, indices=range(10), fps: float = 8.0,
                source: str = "synthetic.mp4") -> tuple[ResultStore, dict[int, dict[int, np.ndarray]]]:
    """A finished store written with ResultWriter, and the truth {frame index: {track id: mask}}."""
    meta = StoreMeta(source=source, width=width, height=height, fps=fps, class_names=CLASS_NAMES, dataset_ids=DATASET_IDS)
    writer = ResultWriter(folder, meta)
    truth: dict[int, dict[int, np.ndarray]] = {}
    for index in indices:
        masks = synthetic_masks(index, height, width)
        slots = {(TRACKS[k][0] if k > 0 else -k): encode_mask(m) for k, m in masks.items()}
        writer.append(index, index / fps, slots)
        truth[index] = {k: m for k, m in masks.items() if k > 0}
    writer.finish([Track(tid, slot, label, DATASET_IDS[label], CLASS_NAMES[label], score)
                   for tid, (slot, label, score) in TRACKS.items()])
    return ResultStore(folder), truth


@pytest.fixture()
def store(tmp_path):
    return build_store(tmp_path / "clip.results")


def _no_temp_files(folder: Path) -> bool:
    return not [p for p in folder.rglob(".*") if p.name.endswith(".part")]


def test_ytvis_round_trip(store, tmp_path):
    store, truth = store
    path = write_ytvis(store, tmp_path / "clip.ytvis.json", video_id=5)
    results = json.loads(path.read_text())
    assert [(r["video_id"], r["category_id"], r["score"]) for r in results] == [(5, 7, 0.9), (5, 12, 0.6), (5, 7, 0.75)]
    assert set(results[0]) == {"video_id", "category_id", "score", "segmentations"}
    for track_id, entry in zip(TRACKS, results):
        segs = entry["segmentations"]
        assert len(segs) == len(truth)
        for index, seg in enumerate(segs):
            if track_id not in truth[index]:
                assert seg is None
                continue
            assert isinstance(seg["counts"], str) and seg["size"] == [48, 64]
            assert np.array_equal(decode_mask(seg), truth[index][track_id])
    assert [i for i, s in enumerate(results[1]["segmentations"]) if s is None] == sorted(TRACK2_ABSENT)
    assert _no_temp_files(tmp_path)


def test_coco_loads_and_round_trips(store, tmp_path):
    store, truth = store
    path = write_coco(store, tmp_path / "clip.coco.json")
    coco = COCO(str(path))
    assert sorted(coco.getImgIds()) == [i + 1 for i in range(10)]
    for image_id in coco.getImgIds():
        image = coco.imgs[image_id]
        assert image["file_name"] == f"frame_{image_id - 1:06d}.jpg"
        assert (image["width"], image["height"]) == (64, 48)
    assert {c["id"]: c["name"] for c in coco.loadCats(coco.getCatIds())} == dict(zip(DATASET_IDS, CLASS_NAMES))

    expected = sum(len(masks) for masks in truth.values())
    anns = coco.loadAnns(coco.getAnnIds())
    assert len(anns) == expected and len({a["id"] for a in anns}) == expected
    seen = set()
    for ann in anns:
        frame, track_id = ann["image_id"] - 1, ann["track_id"]
        seen.add((frame, track_id))
        source = truth[frame][track_id]
        assert np.array_equal(coco.annToMask(ann).astype(bool), source)
        assert ann["attributes"] == {"track_id": track_id, "keyframe": True, "occluded": False}
        assert ann["keyframe"] is True and ann["iscrowd"] == 0
        assert ann["category_id"] == DATASET_IDS[TRACKS[track_id][1]] and ann["score"] == TRACKS[track_id][2]
        assert ann["area"] == int(source.sum())
        rle = mask_utils.encode(np.asfortranarray(source.astype(np.uint8)))
        assert ann["bbox"] == mask_utils.toBbox(rle).tolist()
    assert seen == {(f, t) for f, masks in truth.items() for t in masks}
    assert _no_temp_files(tmp_path)


def test_coco_uses_source_frame_numbers(tmp_path):
    store, _ = build_store(tmp_path / "s.results", indices=range(4, 20, 5))
    coco = COCO(str(write_coco(store, tmp_path / "s.coco.json")))
    assert sorted(img["file_name"] for img in coco.imgs.values()) == [f"frame_{i:06d}.jpg" for i in (4, 9, 14, 19)]
    assert sorted(coco.imgs) == [5, 10, 15, 20]


def test_tracks_csv(store, tmp_path):
    store, truth = store
    path = write_tracks_csv(store, tmp_path / "clip.tracks.csv")
    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert list(rows[0]) == ["id", "class", "score", "first_frame", "last_frame", "first_time", "last_time",
                             "frames_present", "mean_area"]
    assert [(r["id"], r["class"], r["score"]) for r in rows] == [("1", "cat", "0.9000"), ("2", "dog", "0.6000"), ("3", "cat", "0.7500")]
    for row in rows:
        track_id = int(row["id"])
        frames = [f for f in sorted(truth) if track_id in truth[f]]
        assert (int(row["first_frame"]), int(row["last_frame"])) == (frames[0], frames[-1])
        assert float(row["first_time"]) == pytest.approx(frames[0] / 8) and float(row["last_time"]) == pytest.approx(frames[-1] / 8)
        assert int(row["frames_present"]) == len(frames)
        mean_area = np.mean([truth[f][track_id].sum() for f in frames])
        assert float(row["mean_area"]) == pytest.approx(mean_area, abs=0.05)
    assert rows[1]["frames_present"] == "8" and rows[2]["first_frame"] == "5"


def test_id_pngs(store, tmp_path):
    store, truth = store
    folder = tmp_path / "masks" / "clip"
    folder.mkdir(parents=True)
    (folder / "000099.png").write_bytes(b"stale")  # from an earlier, longer export
    (folder / "notes.txt").write_text("keep")
    assert write_id_pngs(store, folder) == folder
    assert sorted(p.name for p in folder.iterdir()) == [f"{i:06d}.png" for i in range(10)] + ["notes.txt"]
    overlap_seen = False
    for index, masks in truth.items():
        ids = cv2.imread(str(folder / f"{index:06d}.png"), cv2.IMREAD_UNCHANGED)
        assert ids.dtype == np.uint16 and ids.shape == (48, 64)
        expected = np.zeros((48, 64), np.uint16)
        for track_id in sorted(masks, key=lambda t: TRACKS[t][2]):  # lowest score first: the highest wins
            expected[masks[track_id]] = track_id
        assert np.array_equal(ids, expected)
        if 2 in masks:
            overlap = masks[1] & masks[2]
            overlap_seen |= bool(overlap.any())
            assert (ids[overlap] == 1).all()  # track 1 (0.9) over track 2 (0.6)
        assert set(np.unique(ids)) == {0, *masks}  # the untracked slot is background
    assert overlap_seen
    assert _no_temp_files(tmp_path)


def test_unfinished_or_missing_store_is_a_user_error(tmp_path):
    meta = StoreMeta(source="x.mp4", width=8, height=8, fps=10.0)
    writer = ResultWriter(tmp_path / "partial", meta)
    writer.append(0, 0.0, {})
    writer.close()
    with pytest.raises(InputError, match="not finished"):
        write_ytvis(ResultStore(tmp_path / "partial"), tmp_path / "a.json")
    with pytest.raises(InputError, match="no such results folder"):
        write_coco(tmp_path / "nowhere", tmp_path / "b.json")
    assert not (tmp_path / "a.json").exists() and not (tmp_path / "b.json").exists()


def test_failed_write_leaves_no_file(store, tmp_path, monkeypatch):
    store, _ = store
    target = tmp_path / "clip.coco.json"
    target.write_text("previous")

    def broken(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr("dvis_cli.export.coco.rle_bbox", broken)
    with pytest.raises(RuntimeError):
        write_coco(store, target)
    assert target.read_text() == "previous" and _no_temp_files(tmp_path)
