"""Video input/output: probe, stream frames (files, folders, globs), write browser-safe mp4.

Frames are numpy RGB uint8 (H, W, 3) in display orientation; nothing here knows the model.

    source = open_source("clip.mp4")            # or "frames/", "frames/*.jpg"
    source.info                                 # VideoInfo: size, rotation, fps, VFR, frames, audio
    for frame in source.frames(start="1.5s", end=300, stride=2):
        frame.index, frame.time, frame.image
    with VideoWriter("out.mp4", source.info.fps, source.info.size, audio_from="clip.mp4") as w:
        w.write(image)
"""
from dvis_cli.io.frame import DecodeError, Frame, FrameSelection, select_frames
from dvis_cli.io.image_sequence import IMAGE_EXTENSIONS, ImageSequenceSource, natural_sorted
from dvis_cli.io.probe import VideoInfo, probe_video
from dvis_cli.io.sources import Source, expand_sources, open_source
from dvis_cli.io.timecode import Position, as_fraction, parse_position
from dvis_cli.io.video_source import DecodeWarning, VideoFileSource
from dvis_cli.io.writer import VideoWriteError, VideoWriter

__all__ = [
    "DecodeError",
    "DecodeWarning",
    "Frame",
    "FrameSelection",
    "IMAGE_EXTENSIONS",
    "ImageSequenceSource",
    "Position",
    "Source",
    "VideoFileSource",
    "VideoInfo",
    "VideoWriteError",
    "VideoWriter",
    "as_fraction",
    "expand_sources",
    "natural_sorted",
    "open_source",
    "parse_position",
    "probe_video",
    "select_frames",
]
