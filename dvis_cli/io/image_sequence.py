"""Folders and globs of still frames (jpg, jpeg, png) as a source, in natural order."""
from __future__ import annotations

import os
import re
from fractions import Fraction
from typing import Iterator, Sequence

import cv2
import numpy as np

from dvis_cli.errors import InputError
from dvis_cli.io.frame import DecodeError, Frame, FrameSelection, select_frames
from dvis_cli.io.probe import VideoInfo
from dvis_cli.io.timecode import as_fraction

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png")
EXTENSION_LIST = "/".join(ext.lstrip(".") for ext in IMAGE_EXTENSIONS)  # for messages
DEFAULT_FPS = Fraction(30)  # what a frame folder plays at when nobody says otherwise


def is_image_file(path: str) -> bool:
    return os.path.splitext(path)[1].lower() in IMAGE_EXTENSIONS


def natural_key(path: str) -> list:
    """Sort key that orders 2.png before 10.png (and frame_2 before frame_10)."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", path)]


def natural_sorted(paths: Sequence[str]) -> list[str]:
    return sorted(paths, key=natural_key)


def list_images(folder: str) -> list[str]:
    """The image files directly in `folder`, naturally sorted (hidden files left out)."""
    names = [n for n in os.listdir(folder) if not n.startswith(".") and is_image_file(n)]
    return [os.path.join(folder, n) for n in natural_sorted(names) if os.path.isfile(os.path.join(folder, n))]


def read_image(path: str) -> np.ndarray | None:
    """An image file as RGB uint8 (H, W, 3), EXIF orientation applied; None if unreadable."""
    try:
        data = np.fromfile(path, np.uint8)
    except OSError:
        return None
    if data.size == 0:
        return None
    image = cv2.imdecode(data, cv2.IMREAD_COLOR)  # 8-bit BGR, grey and alpha converted
    if image is None:
        return None
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


class ImageSequenceSource:
    """Frames from image files, played at `fps` (30 unless given): frame i is at i / fps seconds."""

    kind = "frames"

    def __init__(self, files: Sequence[str], spec: str, fps=None) -> None:
        if not files:
            raise InputError(f"{spec}: no {EXTENSION_LIST} frames found")
        self.path = spec
        self.files = list(files)
        rate = DEFAULT_FPS if fps is None else as_fraction(fps)
        first = read_image(self.files[0])
        if first is None:
            raise InputError(f"{self.files[0]}: not an image that can be read")
        height, width = first.shape[:2]
        count = len(self.files)
        self.info = VideoInfo(
            path=spec,
            kind="frames",
            width=width,
            height=height,
            frame_count=count,
            fps=rate,
            avg_fps=rate,
            duration=float(count / rate),
            coded_width=width,
            coded_height=height,
            codec=os.path.splitext(self.files[0])[1].lower().lstrip(".") or None,
            fps_assumed=fps is None,
            notes=("no frame rate in image files: assuming 30 fps",) if fps is None else (),
            frame_times=np.arange(count, dtype=np.float64) / float(rate),
        )

    def __len__(self) -> int:
        return len(self.files)

    def __repr__(self) -> str:
        return f"ImageSequenceSource({self.path!r}, {len(self.files)} frames)"

    def frames(self, start=None, end=None, stride: int = 1) -> Iterator[Frame]:
        """Read frames `start` (inclusive) to `end` (exclusive), every `stride`-th, one at a time.

        Raises DecodeError (after the good frames) at an unreadable file or one of another size.
        """
        selection = select_frames(self.info, start, end, stride)
        return self._frames(selection)

    def _frames(self, selection: FrameSelection) -> Iterator[Frame]:
        read = 0
        for index in selection.indices():
            path = self.files[index]
            image = read_image(path)
            problem = None
            if image is None:
                problem = "cannot be read as an image"
            elif image.shape[:2] != (self.info.height, self.info.width):
                problem = (f"is {image.shape[1]}x{image.shape[0]}, the sequence is "
                           f"{self.info.width}x{self.info.height}")
            if problem:
                raise DecodeError(
                    f"{self.path}: frame {index} ({os.path.basename(path)}) {problem}; {read} frame(s) were read",
                    frame_index=index,
                    frames_read=read,
                )
            read += 1
            yield Frame(index=index, time=float(self.info.frame_times[index]), image=image,
                        name=os.path.basename(path))
