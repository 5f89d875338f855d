"""Turn what a user typed (a video, a folder of frames, a glob) into a source of frames."""
from __future__ import annotations

import glob
import os
from typing import Iterator, Protocol, Sequence

from dvis_cli.errors import InputError
from dvis_cli.io.frame import Frame
from dvis_cli.io.image_sequence import (
    EXTENSION_LIST,
    ImageSequenceSource,
    is_image_file,
    list_images,
    natural_sorted,
)
from dvis_cli.io.probe import VideoInfo
from dvis_cli.io.video_source import VideoFileSource


class Source(Protocol):
    """Anything `open_source` returns."""

    kind: str  # "video" or "frames"
    path: str
    info: VideoInfo

    def frames(self, start=None, end=None, stride: int = 1) -> Iterator[Frame]: ...

    def __len__(self) -> int: ...


def is_glob(spec: str) -> bool:
    return any(char in spec for char in "*?[")


def open_source(spec: str | os.PathLike, *, fps=None) -> Source:
    """A video file, a folder of frames, one image, or a glob of frames, ready to stream.

    `fps` sets the rate of image sequences (default 30); a video keeps its own. Raises InputError
    for a path that does not exist or holds nothing dvis can read.
    """
    path = os.fspath(spec)
    if os.path.isdir(path):
        images = list_images(path)
        if not images:
            raise InputError(f"{path}: folder holds no {EXTENSION_LIST} frames")
        return ImageSequenceSource(images, path, fps=fps)
    if os.path.isfile(path):
        if is_image_file(path):
            return ImageSequenceSource([path], path, fps=fps)
        return VideoFileSource(path)
    if is_glob(path):
        matches = [m for m in glob.glob(path, recursive=True) if os.path.isfile(m)]
        images = natural_sorted([m for m in matches if is_image_file(m)])
        if images:
            return ImageSequenceSource(images, path, fps=fps)
        if len(matches) == 1:
            return VideoFileSource(matches[0])
        if matches:
            raise InputError(f"{path} matches {len(matches)} files that are not frames: give the videos one by one")
        raise InputError(f"no files match {path}")
    raise InputError(f"no such file or folder: {path}")


def expand_sources(specs: Sequence[str | os.PathLike]) -> list[str]:
    """One entry per source: a glob of videos becomes its videos, a glob of frames stays one source."""
    expanded: list[str] = []
    for spec in specs:
        path = os.fspath(spec)
        if os.path.exists(path) or not is_glob(path):
            expanded.append(path)
            continue
        matches = [m for m in glob.glob(path, recursive=True) if os.path.isfile(m)]
        if any(is_image_file(m) for m in matches):
            expanded.append(path)
        else:
            expanded.extend(natural_sorted(matches) or [path])
    return expanded

