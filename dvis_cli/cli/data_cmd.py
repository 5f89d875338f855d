"""`dvis data ...`: make data sets (synthetic videos in YouTube-VIS / OVIS format, example clips)."""
from __future__ import annotations

import re
from pathlib import Path

import typer

from dvis_cli.cli.common import console, console_err
from dvis_cli.errors import InputError

data_app = typer.Typer(
    name="data",
    help="Make data sets: synthetic YouTube-VIS / OVIS style videos with occlusion labels, example clips.",
    no_args_is_help=True,
)

_SIZE = re.compile(r"^\s*(\d+)\s*[xX]\s*(\d+)\s*$")


def parse_size(text: str) -> tuple[int, int]:
    """'HxW' (e.g. '96x160') -> (height, width); InputError when it is not two positive integers."""
    match = _SIZE.match(text)
    if not match or int(match.group(1)) < 1 or int(match.group(2)) < 1:
        raise InputError(f"--size must be HEIGHTxWIDTH in pixels, e.g. 96x160, got {text!r}")
    return int(match.group(1)), int(match.group(2))


def _parse_classes(text: str | None) -> tuple[str, ...] | None:
    if text is None:
        return None
    names = tuple(n.strip() for n in text.split(",") if n.strip())
    if not names:
        raise InputError("--classes needs at least one class name")
    return names


def _parse_objects(text: str | None) -> tuple[int, int] | None:
    if text is None:
        return None
    match = re.match(r"^\s*(\d+)\s*(?:-\s*(\d+)\s*)?$", text)
    if not match:
        raise InputError(f"--objects must be N or MIN-MAX, e.g. 2-5, got {text!r}")
    lo = int(match.group(1))
    return lo, int(match.group(2) or lo)


@data_app.command("synth")
def synth(
    out: Path = typer.Argument(..., help="Folder to create: annotations.json and JPEGImages/<video>/00000.jpg ..."),
    videos: int = typer.Option(20, "--videos", "-n", help="Number of videos."),
    frames: int = typer.Option(20, "--frames", "-t", help="Frames per video."),
    size: str = typer.Option("96x160", "--size", help="Frame size HEIGHTxWIDTH."),
    seed: int = typer.Option(0, "--seed", help="Random seed; the same seed gives the same data set."),
    occlusion: str = typer.Option("normal", "--occlusion", help="normal or heavy (more, larger, crowded objects; staged hides)."),
    classes: str = typer.Option(None, "--classes", help="Comma-separated classes (default disc,square,triangle,star,ring; also cross,hexagon,crescent)."),
    objects: str = typer.Option(None, "--objects", help="Objects per video, N or MIN-MAX (default 2-5, heavy 4-7)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace OUT if it exists and is not empty."),
) -> None:
    """Generate a synthetic video instance segmentation data set (YouTube-VIS format, OVIS occlusion labels)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from dvis_cli.data.synth import DEFAULT_CLASSES, OCCLUSION_NAMES, SynthConfig, write_dataset

    height, width = parse_size(size)
    cfg = SynthConfig(
        videos=videos,
        frames=frames,
        height=height,
        width=width,
        seed=seed,
        classes=_parse_classes(classes) or DEFAULT_CLASSES,
        objects=_parse_objects(objects),
        occlusion=occlusion.strip().lower(),
    )
    cfg.validate()
    with Progress(
        TextColumn("[bold]synth[/]"), BarColumn(), MofNCompleteColumn(), TextColumn("videos"), TimeElapsedColumn(),
        console=console_err, transient=True,
    ) as bar:
        task = bar.add_task("videos", total=cfg.videos)
        summary = write_dataset(out, cfg, overwrite=overwrite, progress=lambda done, total: bar.update(task, completed=done))
    counts = summary.occlusion_counts
    labelled = max(1, sum(counts.values()))
    shares = ", ".join(f"{OCCLUSION_NAMES[k]} {counts[k]} ({100 * counts[k] / labelled:.0f}%)" for k in sorted(counts))
    console.print(
        f"wrote {summary.videos} videos, {summary.frames} frames, {summary.annotations} objects to {summary.out} "
        f"in {summary.seconds:.1f} s",
        highlight=False,
    )
    console.print(f"object-frames: {shares}; fully hidden {summary.hidden_frames}", highlight=False)
    console.print(
        f"objects entering {summary.entering}, leaving {summary.leaving}, disappearing and coming back {summary.reappearing}",
        highlight=False,
    )


@data_app.command("clip")
def clip(
    out: Path = typer.Argument(..., help="The .mp4 file to write (H.264, yuv420p)."),
    seed: int = typer.Option(0, "--seed", help="Random seed."),
    frames: int = typer.Option(24, "--frames", "-t", help="Number of frames."),
    size: str = typer.Option("96x160", "--size", help="Frame size HEIGHTxWIDTH."),
    fps: float = typer.Option(8.0, "--fps", help="Frames per second."),
    audio: bool = typer.Option(False, "--audio", help="Add a 440 Hz sine audio track."),
    occlusion: str = typer.Option("heavy", "--occlusion", help="normal or heavy."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace OUT if it exists."),
) -> None:
    """Write one synthetic video as an mp4 (an example input for `dvis` commands)."""
    from dvis_cli.data.synth import write_example_clip

    if out.exists() and not overwrite:
        raise InputError(f"{out} exists (use --overwrite to replace it)")
    if out.is_dir():
        raise InputError(f"{out} is a directory")
    path = write_example_clip(out, seed, frames, parse_size(size), fps=fps, audio=audio, occlusion=occlusion.strip().lower())
    console.print(f"wrote {path} ({frames} frames at {fps:g} fps{', with audio' if audio else ''})", highlight=False)


def register(app: typer.Typer) -> None:
    """Add this module's commands to the `dvis` app."""
    app.add_typer(data_app, name="data")
