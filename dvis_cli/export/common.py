"""What every exporter shares: the finished store, its categories, RLE geometry."""
from __future__ import annotations

import os
from pathlib import Path

from pycocotools import mask as mask_utils

from dvis_cli.errors import InputError
from dvis_cli.inference.results import ResultStore


def open_store(store: ResultStore | str | os.PathLike) -> ResultStore:
    """A finished result store (a store object passes through; a folder is opened).

    Exports need the final tracks (class and score are only known at the end of the video), so
    a store without tracks.json is refused with an InputError.
    """
    if not isinstance(store, ResultStore):
        folder = Path(store)
        if not folder.is_dir():
            raise InputError(f"no such results folder: {folder}")
        store = ResultStore(folder)
    if not store.finished:
        raise InputError(f"{store.folder}: the results are not finished (no tracks.json); resume the run to finish them")
    return store


def categories(store: ResultStore) -> list[dict]:
    """COCO-style categories: every class of the model (dataset ids and names), plus any class a
    track carries that the metadata does not list. Ids default to 1..K when the store has none."""
    meta = store.meta
    ids = list(meta.dataset_ids) if len(meta.dataset_ids) == len(meta.class_names) else list(range(1, len(meta.class_names) + 1))
    cats = {cid: name for cid, name in zip(ids, meta.class_names)}
    for track in store.tracks:
        cats.setdefault(int(track.category_id), track.class_name)
    return [{"id": int(cid), "name": name, "supercategory": ""} for cid, name in cats.items()]


def rle_area(rle: dict) -> int:
    """Pixels in a compressed RLE (str or bytes counts), without decoding it."""
    return int(mask_utils.area(rle))


def rle_bbox(rle: dict) -> list[float]:
    """[x, y, width, height] of a compressed RLE (pycocotools' toBbox)."""
    return [float(v) for v in mask_utils.toBbox(rle)]
