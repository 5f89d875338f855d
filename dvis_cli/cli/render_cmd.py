"""`dvis render RESULTS`: draw saved results on their video again, without running the model."""
from __future__ import annotations

from pathlib import Path

import typer

from dvis_cli.cli.common import console, console_err
from dvis_cli.errors import InputError

RESULTS_SUFFIX = ".results"


def default_output(results: Path, video: str) -> Path:
    """`<run>/<stem>.mp4` beside the results folder `<run>/<stem>.results` (the stem of the video
    for a folder named otherwise); `<stem>.render.mp4` where that would be the source itself."""
    name = results.name
    if name.endswith(RESULTS_SUFFIX) and len(name) > len(RESULTS_SUFFIX):
        stem = name[: -len(RESULTS_SUFFIX)]
    else:
        spec = Path(video.rstrip("/"))
        stem = (spec.parent.name if any(c in spec.name for c in "*?[") else spec.stem) or "render"
    out = results.parent / f"{stem}.mp4"
    if out.resolve() == Path(video).resolve():
        out = results.parent / f"{stem}.render.mp4"
    return out


def render(
    results: Path = typer.Argument(..., help="A results folder written by `dvis segment` (<run>/<stem>.results)."),
    video: str = typer.Option(None, "--video", help="The video (or frame folder / glob) the results were made from. "
                              "Default: the source recorded in the results."),
    out: Path = typer.Option(None, "--out", "-o", help="The .mp4 to write. Default: <run>/<stem>.mp4 beside RESULTS."),
    alpha: float = typer.Option(0.5, "--alpha", help="Mask fill opacity, 0 (none) to 1 (solid)."),
    show: str = typer.Option("mask,contour,box,label", "--show", help="What to draw: any of mask,contour,box,label."),
    full: bool = typer.Option(False, "--full", help="Render every frame of the video, not only the range the results cover."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace OUT if it exists."),
) -> None:
    """Render results onto their video: H.264 mp4 at the source frame rate, with the source's audio."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    from dvis_cli.export import open_store
    from dvis_cli.render import parse_show, render_video_report

    if not results.exists():
        raise InputError(f"no such results folder: {results}")
    if not results.is_dir():
        raise InputError(f"{results} is not a results folder (give the <stem>.results folder that `dvis segment` wrote)")
    if not 0.0 <= alpha <= 1.0:
        raise InputError(f"--alpha must be between 0 and 1, not {alpha:g}")
    parts = parse_show(show)
    store = open_store(results)
    if video is None:
        video = store.meta.source
        if not video or not Path(video).exists():
            raise InputError(f"the source recorded in {results} ({video or 'none'}) is not here: give it with --video")
    out = out or default_output(results, video)
    if out.suffix.lower() != ".mp4":
        raise InputError(f"--out must be an .mp4 file, not {out}")
    if out.is_dir():
        raise InputError(f"{out} is a directory")
    if out.exists() and not overwrite:
        raise InputError(f"{out} exists (use --overwrite to replace it)")

    with Progress(
        TextColumn("[bold]render[/]"), BarColumn(), MofNCompleteColumn(), TextColumn("frames"),
        TimeElapsedColumn(), TimeRemainingColumn(), console=console_err, transient=True,
    ) as bar:
        task = bar.add_task("frames", total=None)
        report = render_video_report(store, video, out, alpha=alpha, show=parts, full=full,
                                     progress=lambda done, total: bar.update(task, completed=done, total=total))
    width, height = report.size
    audio = f", audio {report.audio}" if report.audio else ", no audio"
    console.print(f"wrote {report.path} ({report.frames} frames, {report.annotated} with results, "
                  f"{width}x{height}{audio})", highlight=False)
    if report.missing:
        console_err.print(f"[yellow]warning:[/] {report.missing} frames of the results are not in {video}", highlight=False)
    if report.warning:
        console_err.print(f"[yellow]warning:[/] {report.warning}", highlight=False)


def register(app: typer.Typer) -> None:
    """Add `dvis render` to the `dvis` app."""
    app.command("render")(render)
