"""`dvis info VIDEO...`: what dvis will see in each input before a long run."""
from __future__ import annotations

import json
from typing import List

import typer
from rich.table import Table
from rich.text import Text

from dvis_cli.cli.common import console, console_err
from dvis_cli.errors import InputError
from dvis_cli.io import VideoInfo, expand_sources, open_source
from dvis_cli.io.timecode import format_duration, format_rate


def register(app: typer.Typer) -> None:
    """Add this module's commands to the `dvis` app."""
    app.command("info")(info)


def info(
    sources: List[str] = typer.Argument(..., metavar="VIDEO...", help="Video files, folders of frames or globs ('frames/*.jpg')."),
    as_json: bool = typer.Option(False, "--json", help="Print a JSON list instead of tables."),
    fps: str = typer.Option(None, "--fps", help="Frame rate to assume for folders of frames (default 30)."),
) -> None:
    """Probe inputs: display size, rotation, average vs stream fps, VFR, frame count, duration, audio."""
    specs = expand_sources(sources)
    found: list[VideoInfo] = []
    failures: list[InputError] = []
    for spec in specs:
        try:
            found.append(open_source(spec, fps=fps).info)
        except InputError as exc:
            if len(specs) == 1:
                raise
            failures.append(exc)
            console_err.print(f"[bold red]error:[/] {exc}", highlight=False)
    if as_json:
        console.print_json(json.dumps([item.to_dict() for item in found]))
    else:
        for number, item in enumerate(found):
            if number:
                console.print()
            # the path on its own line, never wrapped (a table title would break long paths)
            console.print(Text(item.path, style="bold"), soft_wrap=True)
            console.print(info_table(item))
    if failures:
        raise InputError(f"{len(failures)} of {len(specs)} inputs could not be read")


def info_table(item: VideoInfo) -> Table:
    """A two-column Rich table describing one source."""
    table = Table(show_header=False, box=None, padding=(0, 2))
    table.add_column("field", style="bold cyan", no_wrap=True)
    table.add_column("value")
    table.add_row("kind", "video file" if item.kind == "video" else "image sequence")
    size = f"{item.width}x{item.height}"
    if item.kind == "video" and (item.coded_width, item.coded_height) != (item.width, item.height):
        size += f" (coded {item.coded_width}x{item.coded_height})"
    table.add_row("display size", size)
    table.add_row("rotation", f"{item.rotation}° clockwise" if item.rotation else "none")
    stream = format_rate(item.fps) + (" (assumed)" if item.fps_assumed else "")
    table.add_row("stream fps", stream)
    table.add_row("average fps", format_rate(item.avg_fps))
    table.add_row("variable frame rate", "[yellow]yes[/]" if item.vfr else "no")
    table.add_row("frames", f"{item.frame_count}" + (" (counted)" if item.kind == "video" else " files"))
    duration = format_duration(item.duration)
    if item.header_duration is not None and abs(item.header_duration - item.duration) > 0.05:
        duration += f" (header says {format_duration(item.header_duration)})"
    table.add_row("duration", duration)
    if item.kind == "video":
        table.add_row("codec", " ".join(x for x in (item.codec, item.pix_fmt) if x) or "?")
        table.add_row("container", item.container or "?")
        audio = "none"
        if item.audio_codec:
            audio = item.audio_codec + (f" (+{item.audio_streams - 1} more)" if item.audio_streams > 1 else "")
        table.add_row("audio", audio)
    for note in item.notes:
        table.add_row("note", f"[yellow]{note}[/]")
    return table
