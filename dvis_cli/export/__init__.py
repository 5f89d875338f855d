"""Exports of a result store, one module per format; every writer is atomic (temp file + os.replace).

    write_ytvis(store, "clip.ytvis.json", video_id=1)   # YouTube-VIS / OVIS results (CodaLab)
    write_coco(store, "clip.coco.json")                 # COCO per frame, CVAT track attributes
    write_tracks_csv(store, "clip.tracks.csv")          # one row per track
    write_id_pngs(store, "masks/clip")                  # 16-bit id PNG per frame
    write_vipseg(store, "run", video_id="clip")        # VPS: run/pan_pred/clip/*.png + run/pred.json

`store` is a `ResultStore` or its folder; it must be finished (tracks.json written).
"""
from dvis_cli.export.coco import frame_file_name, write_coco
from dvis_cli.atomic import atomic_open
from dvis_cli.export.common import categories, open_store
from dvis_cli.export.id_png import id_map, write_id_pngs
from dvis_cli.export.tracks_csv import COLUMNS as TRACKS_CSV_COLUMNS
from dvis_cli.export.tracks_csv import TrackStats, track_stats, write_tracks_csv
from dvis_cli.export.vipseg import pan_id, write_vipseg, write_vipseg_pngs
from dvis_cli.export.ytvis import write_ytvis

__all__ = [
    "TRACKS_CSV_COLUMNS",
    "TrackStats",
    "atomic_open",
    "categories",
    "frame_file_name",
    "id_map",
    "open_store",
    "pan_id",
    "track_stats",
    "write_coco",
    "write_id_pngs",
    "write_tracks_csv",
    "write_vipseg",
    "write_vipseg_pngs",
    "write_ytvis",
]
