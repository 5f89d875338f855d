"""`dvis segment`: videos or frame folders -> tracked instance masks, exports, overlays."""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer
from rich.markup import escape
from rich.panel import Panel
from rich.table import Table

from dvis_cli.cli.common import console, console_err


def segment(
    sources: List[str] = typer.Argument(..., help="Videos, frame folders (jpg/jpeg/png, natural order) or globs."),
    weights: Optional[str] = typer.Option(None, "--weights", "-w", help="Weights: embedded name, .pth/.pkl/.safetensors path or URL. Default: the embedded tiny model."),
    preset: Optional[str] = typer.Option(None, "--preset", help="Preset for official checkpoints whose dataset cannot be detected (e.g. YTVIS 2021)."),
    mode: Optional[str] = typer.Option(None, "--mode", help="online | offline | semi-online | minvis (default: the most the weights can do)."),
    window: Optional[int] = typer.Option(None, "--window", min=1, help="Semi-online: frames per refiner window."),
    context: Optional[int] = typer.Option(None, "--context", min=0, help="Semi-online: frames of the previous window the refiner also sees (default: the window)."),
    start: Optional[str] = typer.Option(None, "--start", help="First frame: a frame number or a time (12.5s, 00:01:02.5)."),
    end: Optional[str] = typer.Option(None, "--end", help="Stop before this frame number or time."),
    stride: int = typer.Option(1, "--stride", min=1, help="Use every N-th frame."),
    size: Optional[int] = typer.Option(None, "--size", min=32, help="Shorter side fed to the model (default: the preset's test size)."),
    conf: float = typer.Option(0.0, "--conf", min=0.0, max=1.0, help="Drop tracks scoring below this."),
    classes: Optional[str] = typer.Option(None, "--classes", help="Keep only these classes (names or 0-based indices, comma-separated)."),
    max_instances: Optional[int] = typer.Option(None, "--max-instances", min=1, help="Keep at most N tracks per video."),
    top_k: Optional[int] = typer.Option(None, "--top-k", min=1, help="(query, class) pairs kept before --conf (default: the preset's)."),
    device: str = typer.Option("auto", "--device", help="auto | cpu | cuda[:N]"),
    precision: str = typer.Option("fp32", "--precision", help="fp32 | fp16 | bf16 (the pixel decoder stays fp32)."),
    batch_frames: Optional[int] = typer.Option(None, "--batch-frames", min=1, help="Frames through the segmenter at a time (default 3)."),
    official_matching: bool = typer.Option(True, "--official-matching/--fixed-matching", help="Tracker pre-matching: the official DVIS orientation, or the corrected one."),
    out: Path = typer.Option(Path("runs/segment"), "--out", help="Project folder of the runs."),
    name: str = typer.Option("exp", "--name", help="Run name (auto-numbered: exp, exp2, ...)."),
    exist_ok: bool = typer.Option(False, "--exist-ok", help="Write into an existing run folder of that name."),
    save_masks: Optional[str] = typer.Option(None, "--save-masks", help="png: one 16-bit id PNG per frame."),
    render: bool = typer.Option(False, "--render", help="Also write an overlay mp4 per video."),
    alpha: float = typer.Option(0.5, "--alpha", min=0.0, max=1.0, help="Mask opacity in renders."),
    show: str = typer.Option("mask,contour,label", "--show", help="What renders draw: mask,contour,box,label."),
    progress: str = typer.Option("rich", "--progress", help="rich | plain | json | none"),
    resume: bool = typer.Option(False, "--resume", help="Continue the latest (or --name) run of these sources where it stopped."),
    checkpoint_every: int = typer.Option(50, "--checkpoint-every", min=1, help="Frames between resume checkpoints (online / semi-online)."),
) -> None:
    """Segment and track every instance in videos; write YouTube-VIS / COCO / CSV exports."""
    from dvis_cli.checkpoint.load import load_model
    from dvis_cli.checkpoint.resolve import resolve_weights
    from dvis_cli.cli.progress import progress_factory
    from dvis_cli.errors import InputError
    from dvis_cli.inference.device import check_precision, resolve_device
    from dvis_cli.inference.predictor import SegmentOptions, VideoPredictor
    from dvis_cli.inference.segment import FrameRange, _stem, segment_video, write_summary
    from dvis_cli.io import expand_sources, open_source
    from dvis_cli.runs import run_dir

    if save_masks not in (None, "png"):
        raise InputError(f"--save-masks {save_masks!r}: the only format is png")
    show_set = tuple(s.strip() for s in show.split(",") if s.strip())
    bad = [s for s in show_set if s not in ("mask", "contour", "box", "label")]
    if bad:
        raise InputError(f"--show {','.join(bad)}: choose from mask, contour, box, label")
    make_progress = progress_factory(progress)
    torch_device = resolve_device(device)
    dtype = check_precision(precision, torch_device)
    opened = [open_source(spec) for spec in expand_sources(sources)]  # every source checked before any work
    weights_path = resolve_weights(weights)
    model = load_model(weights_path, preset, torch_device, official_matching=official_matching)
    class_ids = _parse_classes(classes, model.config.classes.names)
    options = SegmentOptions(mode, window, size, conf, class_ids, max_instances, top_k, batch_frames, checkpoint_every, context)
    predictor = VideoPredictor(model, torch_device, dtype)
    predictor.check_mode(mode)
    folder = run_dir(out, name, exist_ok=exist_ok, latest=resume and not exist_ok)
    render_opts = {"alpha": alpha, "show": show_set} if render else None
    reports, taken = [], set()
    for source in opened:
        report = segment_video(
            predictor, source, folder, _stem(str(source.path), taken), options, FrameRange(start, end, stride),
            save_masks=save_masks, render=render_opts, resume=resume, weights_name=str(weights_path),
            progress=make_progress,
        )
        reports.append(report)
    settings = {
        "weights": str(weights_path), "preset": model.config.name, "mode": predictor.check_mode(mode), "device": str(torch_device),
        "precision": precision, "options": options.__dict__, "start": start, "end": end, "stride": stride,
    }
    summary = write_summary(folder, reports, settings)
    _report(folder, reports, summary)
    broken = [r for r in reports if r.error]
    if broken:
        raise InputError(broken[0].error)


def _parse_classes(text: str | None, names: tuple[str, ...]) -> tuple[int, ...] | None:
    from dvis_cli.errors import InputError

    if not text:
        return None
    lower = [n.lower() for n in names]
    out = []
    for item in (t.strip() for t in text.split(",") if t.strip()):
        if item.isdigit() and int(item) < len(names):
            out.append(int(item))
        elif item.lower() in lower:
            out.append(lower.index(item.lower()))
        else:
            raise InputError(f"--classes: unknown class {item!r} (this model knows {', '.join(names[:10])}{', …' if len(names) > 10 else ''})")
    return tuple(out)


def _report(folder: Path, reports, summary: Path) -> None:
    table = Table(show_header=True, header_style="bold", box=None)
    for col in ("source", "frames", "fps", "tracks", "outputs"):
        table.add_column(col)
    for r in reports:
        outs = "\n".join(f"{k}: {Path(v).name}" for k, v in r.outputs.items())
        table.add_row(r.source, str(r.frames), f"{r.fps:.1f}", str(r.tracks), outs)
    console.print(Panel(table, title=f"[green]done[/] → {folder}", subtitle=f"summary: {summary.name}", expand=False))
    for r in reports:
        for warning in r.warnings:
            if warning != r.error:  # a broken source ends the command with its own error line
                console_err.print(f"[yellow]warning[/]: {escape(r.stem)}: {escape(warning)}", highlight=False)


def register(app: typer.Typer) -> None:
    app.command("segment")(segment)
