"""Drawing results: a fixed colour per track id, frame overlays, and whole-video renders.

    render_video(store, "clip.mp4", "runs/segment/exp/clip.mp4", alpha=0.5, show={"mask", "label"})
    draw_overlay(rgb, [Instance(track_id, mask_or_rle, "person", 0.93)], alpha=0.5)
"""
from dvis_cli.render.overlay import DEFAULT_SHOW, SHOW_CHOICES, Instance, draw_overlay, parse_show
from dvis_cli.render.palette import class_color, text_color, track_color
from dvis_cli.render.video import RenderReport, frame_instances, render_video, render_video_report

__all__ = [
    "DEFAULT_SHOW",
    "SHOW_CHOICES",
    "Instance",
    "RenderReport",
    "class_color",
    "draw_overlay",
    "frame_instances",
    "parse_show",
    "render_video",
    "render_video_report",
    "text_color",
    "track_color",
]
