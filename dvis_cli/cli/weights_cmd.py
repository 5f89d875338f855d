"""`dvis weights convert|info|merge`: official checkpoints -> dvis safetensors, what a file holds,
and stages of several files put together."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from dvis_cli.cli.common import console

weights_app = typer.Typer(help="Convert official DVIS / MinVIS / Mask2Former checkpoints and inspect weights files.", no_args_is_help=True)


def _check_output(dst: Path, force: bool) -> None:
    from dvis_cli.errors import DvisError

    if dst.suffix.lower() != ".safetensors":
        raise DvisError(f"{dst}: the output must end in .safetensors")
    if dst.exists() and not force:
        raise DvisError(f"{dst}: exists (use --force to overwrite)")


@weights_app.command("convert")
def convert(
    src: Path = typer.Argument(..., help="Official .pth / .pkl checkpoint (detectron2 layout) or a dvis .safetensors file."),
    dst: Path = typer.Argument(..., help="Output .safetensors file."),
    preset: str = typer.Option(None, "--preset", help="Preset name, e.g. offline_r50_ytvis21 (default: detected from the keys)."),
    force: bool = typer.Option(False, "--force", help="Overwrite DST if it exists."),
) -> None:
    """Convert a checkpoint to dvis's safetensors format (every key accounted for)."""
    from dvis_cli.checkpoint.load import load_state_into, read_any
    from dvis_cli.checkpoint.store import save_weights
    from dvis_cli.model.build import build_dvis

    _check_output(dst, force)
    loaded = read_any(src, preset)
    load_state_into(build_dvis(loaded.config), loaded.state_dict)  # proves every tensor fits the model
    save_weights(dst, loaded.state_dict, loaded.config, {"source": src.name})
    report = loaded.report
    detail = f"{report.consumed} tensors mapped, {len(report.ignored)} ignored ({', '.join(report.ignored) or 'none'})" if report else ""
    console.print(f"[green]wrote[/] {dst}  preset [bold]{loaded.config.name}[/]  stages {', '.join(loaded.config.stages)}  {detail}")


@weights_app.command("info")
def info(
    file: Path = typer.Argument(..., help="A .pth / .pkl / .safetensors weights file."),
    preset: str = typer.Option(None, "--preset", help="Preset to read an official checkpoint with (default: detected)."),
    show_classes: bool = typer.Option(False, "--classes", help="List every class name."),
) -> None:
    """Show the preset, stages, parameters per component and classes of a weights file."""
    from dvis_cli.checkpoint.load import read_any
    from dvis_cli.checkpoint.summary import summarize

    s = summarize(read_any(file, preset))
    table = Table(title=str(file), show_header=False, title_justify="left")
    table.add_row("preset", s.preset)
    table.add_row("format", "dvis safetensors" if s.source_format == "dvis" else "official (detectron2)")
    table.add_row("stages", ", ".join(s.stages) + f"  (modes: {', '.join(('minvis', 'online', 'offline')[: len(s.stages)])})")
    table.add_row("classes", f"{s.num_classes}  (" + ", ".join(s.class_names[: 8 if not show_classes else None]) + (", …)" if len(s.class_names) > 8 and not show_classes else ")"))
    table.add_row("queries", str(s.num_queries))
    for name, n in s.parameters.items():
        table.add_row(f"  {name}", f"{n:,} parameters")
    table.add_row("total", f"{s.total_parameters:,} trainable parameters in {s.tensors} tensors")
    console.print(table)


@weights_app.command("merge")
def merge(
    dst: Path = typer.Argument(..., help="Output .safetensors file."),
    segmenter: Path = typer.Option(..., "--segmenter", help="File whose segmenter (and test settings) to take."),
    tracker: Optional[Path] = typer.Option(None, "--tracker", help="File whose referring tracker to take."),
    refiner: Optional[Path] = typer.Option(None, "--refiner", help="File whose temporal refiner to take (needs --tracker)."),
    force: bool = typer.Option(False, "--force", help="Overwrite DST if it exists."),
) -> None:
    """Combine stages of several files, e.g. a fine-tuned segmenter with an earlier tracker and refiner."""
    from dvis_cli.checkpoint.merge import merge_stages
    from dvis_cli.checkpoint.store import save_weights

    _check_output(dst, force)
    sources = {"segmenter": segmenter, "tracker": tracker, "refiner": refiner}
    merged = merge_stages({stage: path for stage, path in sources.items() if path is not None})
    extra = {f"{stage}_from": Path(path).name for stage, path in merged.sources.items()}
    save_weights(dst, merged.state_dict, merged.config, extra)
    parts = ", ".join(f"{stage} from {Path(path).name}" for stage, path in merged.sources.items())
    console.print(f"[green]wrote[/] {dst}  preset [bold]{merged.config.name}[/]  {parts}")


def register(app: typer.Typer) -> None:
    app.add_typer(weights_app, name="weights")
