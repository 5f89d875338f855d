"""Write RGB frames to an mp4 that plays in a browser, atomically.

H.264 (libx264), yuv420p, BT.709 tags, `+faststart`; the exact source rate (a Fraction such as
30000/1001); odd sizes padded by one black row/column at the bottom/right, never rescaled, so
overlays stay aligned with the source; the source's audio copied (or re-encoded to AAC when an
mp4 cannot carry it as is). Frames go to a hidden temporary file beside the target, which
replaces the target only when everything succeeded: a failed or interrupted write leaves no file.
"""
from __future__ import annotations

import os
import secrets
import subprocess
import tempfile
from fractions import Fraction

import numpy as np

from dvis_cli.errors import DvisError, InputError
from dvis_cli.io import ffmpeg
from dvis_cli.io.audio import AudioPlan, mux_audio, plan_audio
from dvis_cli.io.timecode import as_fraction


class VideoWriteError(DvisError):
    """ffmpeg could not write the video (disk full, bad path, encoder missing...)."""


def even_size(width: int, height: int) -> tuple[int, int]:
    """The size after padding to even numbers (what yuv420p needs)."""
    return width + width % 2, height + height % 2


class VideoWriter:
    """`with VideoWriter("out.mp4", fps, (width, height), audio_from="in.mp4") as w: w.write(rgb)`.

    `fps`: Fraction, int, float or "30000/1001" (29.97 and the like become n*1000/1001).
    `size`: (width, height) of the frames given to `write` (RGB uint8, shape (height, width, 3)).
    `audio_from`: a media file whose first audio track is added (nothing happens when it has
    none); `audio_start`/`audio_end` (seconds) cut it to the time range that was rendered.
    """

    def __init__(self, path: str | os.PathLike, fps, size: tuple[int, int], audio_from: str | os.PathLike | None = None,
                 *, audio_start: float = 0.0, audio_end: float | None = None, crf: int = 20,
                 preset: str = "veryfast") -> None:
        self.path = os.path.abspath(os.fspath(path))
        self.fps: Fraction = as_fraction(fps)
        width, height = (int(v) for v in size)
        if width < 1 or height < 1:
            raise ValueError(f"frame size must be positive, not {size!r}")
        self.size = (width, height)
        self.output_size = even_size(width, height)
        self.frames_written = 0
        self.audio: str | None = None  # what happened to the audio ("aac copied"...), once closed
        self._audio_plan = None if audio_from is None else self._plan_audio(os.fspath(audio_from), audio_start, audio_end)
        self._crf, self._preset = crf, preset
        folder = os.path.dirname(self.path)
        try:
            os.makedirs(folder, exist_ok=True)
        except OSError as exc:
            raise VideoWriteError(f"{self.path}: cannot create its folder: {exc.strerror or exc}") from exc
        stem = f".{os.path.basename(self.path)}.{secrets.token_hex(4)}"
        self._video_tmp = os.path.join(folder, stem + ".video.mp4")
        self._final_tmp = os.path.join(folder, stem + ".mp4")
        self._log = tempfile.TemporaryFile()
        self._proc: subprocess.Popen | None = subprocess.Popen(
            self._command(), stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=self._log
        )
        self._closed = False

    # -- the encoder --------------------------------------------------------------------------

    def _command(self) -> list[str]:
        width, height = self.size
        out_w, out_h = self.output_size
        filters = []
        if (out_w, out_h) != (width, height):
            filters.append(f"pad={out_w}:{out_h}:0:0:black")
        filters += ["scale=out_color_matrix=bt709:out_range=tv", "format=yuv420p",
                    "setparams=range=tv:color_primaries=bt709:color_trc=bt709:colorspace=bt709"]
        encoder = ffmpeg.h264_encoder()
        quality = ["-preset", self._preset, "-crf", str(self._crf)] if encoder == "libx264" else ["-b:v", "8M"]
        return ffmpeg.base_command() + ffmpeg.LOG_OPTIONS + [
            "-y", "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{width}x{height}",
            "-framerate", f"{self.fps.numerator}/{self.fps.denominator}", "-i", "pipe:0",
            "-map", "0:v:0", "-vf", ",".join(filters), "-c:v", encoder, *quality, "-pix_fmt", "yuv420p",
            # without this ffmpeg may round the time base (240000/1001 fps came out as 240)
            "-enc_time_base", f"{self.fps.denominator}/{self.fps.numerator}",
            *([] if self._audio_plan else ["-movflags", "+faststart"]), "-f", "mp4", self._video_tmp,
        ]

    @staticmethod
    def _plan_audio(source: str, start: float, end: float | None) -> AudioPlan | None:
        if not os.path.isfile(source):
            raise InputError(f"no such file for the audio: {source}")
        return plan_audio(source, start, end)

    def write(self, image: np.ndarray) -> None:
        """Append one RGB uint8 frame of shape (height, width, 3)."""
        if self._closed or self._proc is None:
            raise VideoWriteError(f"{self.path}: the writer is closed")
        width, height = self.size
        if image.dtype != np.uint8 or image.shape != (height, width, 3):
            raise ValueError(f"expected an RGB uint8 frame of shape {(height, width, 3)}, "
                             f"got {image.dtype} {tuple(image.shape)}")
        try:
            self._proc.stdin.write(memoryview(np.ascontiguousarray(image)).cast("B"))
        except (BrokenPipeError, OSError) as exc:
            reason = self._ffmpeg_error()
            self.abort()
            raise VideoWriteError(f"{self.path}: writing frame {self.frames_written} failed: {reason}") from exc
        self.frames_written += 1

    # -- finishing ----------------------------------------------------------------------------

    def close(self) -> str:
        """Finish the file (add the audio) and move it into place; returns its path."""
        if self._closed:
            return self.path
        proc = self._proc
        assert proc is not None
        try:
            proc.stdin.close()
        except OSError:
            pass
        code = proc.wait()
        self._proc = None
        try:
            if code != 0:
                raise VideoWriteError(f"{self.path}: ffmpeg failed: {self._ffmpeg_error()}")
            if self.frames_written == 0:
                raise VideoWriteError(f"{self.path}: no frames were written")
            if self._audio_plan is None:
                os.replace(self._video_tmp, self.path)
            else:
                self._add_audio(self._audio_plan)
        finally:
            self._closed = True
            self._cleanup()
        return self.path

    def _add_audio(self, plan: AudioPlan) -> None:
        duration = float(self.frames_written / self.fps)
        try:
            used = mux_audio(self._video_tmp, plan, self._final_tmp, duration)
        except RuntimeError as exc:
            raise VideoWriteError(f"{self.path}: adding the audio of {plan.source} failed: {exc}") from exc
        os.replace(self._final_tmp, self.path)
        self.audio = used.describe()

    def abort(self) -> None:
        """Stop without producing a file (also what leaving the `with` block on an error does)."""
        if self._proc is not None:
            self._proc.kill()
            self._proc.wait()
            for stream in (self._proc.stdin,):
                try:
                    stream.close()
                except OSError:
                    pass
            self._proc = None
        self._closed = True
        self._cleanup()

    def _cleanup(self) -> None:
        for tmp in (self._video_tmp, self._final_tmp):
            try:
                os.remove(tmp)
            except FileNotFoundError:
                pass
        if not self._log.closed:
            self._log.close()

    def _ffmpeg_error(self) -> str:
        if self._log.closed:
            return "ffmpeg failed"
        self._log.seek(0)
        return ffmpeg.main_error(self._log.read().decode("utf-8", "replace"))

    def __enter__(self) -> "VideoWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()

    def __del__(self) -> None:
        if getattr(self, "_closed", True) is False:
            try:
                self.abort()
            except Exception:  # pragma: no cover - interpreter shutdown
                pass
