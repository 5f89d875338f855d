"""`<stem>.coco.json`: COCO instances, one image per processed frame, ready for CVAT to import as tracks.

What CVAT's COCO importer (through Datumaro) reads, and how this file meets it:
* images: `file_name` `frame_%06d.jpg` with the 0-based source frame number (CVAT's names for the
  frames of a video task), `id` = frame number + 1, `width`/`height` = the decoded frame size;
* annotations: a compressed RLE `segmentation` (str counts) becomes a mask; `attributes.track_id`
  plus `attributes.keyframe` make the shapes one track (every frame is a keyframe, so CVAT keeps
  them all instead of interpolating); `attributes.occluded` is read too; top-level `score` is kept;
* categories: the dataset ids and class names (the labels to create in the CVAT task).
`track_id` and `keyframe` are also written at the top level of each annotation for other tools.
Frames where a track is absent have no annotation for it (CVAT marks the gap as `outside`).

The annotations are written while the store is read, so memory does not grow with the video.
"""
from __future__ import annotations

import json
import os
from datetime import datetime, timezone
from pathlib import Path

from dvis_cli import __version__
from dvis_cli.atomic import atomic_open
from dvis_cli.export.common import categories, open_store, rle_area, rle_bbox
from dvis_cli.inference.results import ResultStore


def frame_file_name(index: int, ext: str = "jpg") -> str:
    """The name CVAT gives frame `index` (0-based) of a video task."""
    return f"frame_{index:06d}.{ext}"


def write_coco(store: ResultStore | str | os.PathLike, path: str | os.PathLike) -> Path:
    """Write the store as COCO instances with CVAT track attributes; returns the path written."""
    store = open_store(store)
    path = Path(path)
    meta = store.meta
    head = {
        "info": {
            "description": f"dvis {meta.task} results for {meta.source}",
            "version": __version__,
            "date_created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        },
        "licenses": [],
        "categories": categories(store),
    }
    images = []
    ann_id = 0
    with atomic_open(path) as fh:
        fh.write(json.dumps(head, separators=(",", ":"))[:-1] + ',"annotations":[')
        for frame in store.frames():
            image_id = frame.index + 1
            images.append({"id": image_id, "file_name": frame_file_name(frame.index), "width": meta.width,
                           "height": meta.height, "frame_index": frame.index, "time": frame.time})
            for track, rle in store.track_masks(frame):
                if rle is None:
                    continue
                ann_id += 1
                annotation = {
                    "id": ann_id,
                    "image_id": image_id,
                    "category_id": int(track.category_id),
                    "segmentation": rle,  # {"size": [H, W], "counts": str}
                    "area": rle_area(rle),
                    "bbox": rle_bbox(rle),
                    "iscrowd": 0,
                    "score": float(track.score),
                    "track_id": int(track.track_id),
                    "keyframe": True,
                    "attributes": {"track_id": int(track.track_id), "keyframe": True, "occluded": False},
                }
                fh.write(("," if ann_id > 1 else "") + json.dumps(annotation, separators=(",", ":")))
        fh.write('],"images":' + json.dumps(images, separators=(",", ":")) + "}")
    return path
