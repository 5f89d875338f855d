"""`dvis train segmenter|tracker|refiner` (also `dvis train-segmenter` ...): the three DVIS stages."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import List, Optional

import typer

from dvis_cli.cli.common import console, console_err

train_app = typer.Typer(help="Train DVIS: segmenter -> tracker -> refiner (each stage starts from the previous one).", no_args_is_help=True)


def _run_stage(
    stage: str,
    data: List[str],
    val: Optional[str],
    preset: Optional[str],
    from_weights: Optional[str],
    iters: Optional[int],
    batch: Optional[int],
    out: Optional[Path],
    name: Optional[str],
    resume: bool,
    config: Optional[Path],
    sets: List[str],
    gpus: int,
    device: Optional[str],
    amp: Optional[str],
    workers: Optional[int],
    progress: str,
) -> None:
    from dvis_cli.training.config import TrainConfig, apply_overrides, load_toml, parse_sets

    cfg = TrainConfig(stage=stage)
    if config is not None:
        apply_overrides(cfg, load_toml(config))
    flags = {"data": data or None, "val": val, "preset": preset, "from_weights": from_weights, "iters": iters, "batch": batch,
             "out": str(out) if out else None, "name": name, "device": device, "amp": amp, "workers": workers}
    apply_overrides(cfg, {k: v for k, v in flags.items() if v is not None})
    apply_overrides(cfg, parse_sets(sets))
    cfg.stage = stage
    cfg.validate()
    in_torchrun = "LOCAL_RANK" in os.environ
    rank = int(os.environ.get("RANK", 0))
    if in_torchrun:
        run = Path(cfg.out) / cfg.name
    else:
        run = _stage_run(Path(cfg.out), cfg.name, stage, resume, cfg.from_weights is not None)
    if gpus > 1 and not in_torchrun:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={gpus}", "-m", "dvis_cli",
               "train", stage, *sys.argv[sys.argv.index(stage) + 1 :], "--out", str(run.parent), "--name", run.name]
        cmd = [c for i, c in enumerate(cmd) if not (c.startswith("--gpus") or (i > 0 and cmd[i - 1] == "--gpus"))]
        raise typer.Exit(subprocess.call(cmd))
    from dvis_cli.training.trainer import Trainer, set_seed

    set_seed(cfg.seed)
    trainer = Trainer(cfg, run, log=console.print)
    if resume and trainer.resume():
        console_err.print(f"resuming {stage} at iteration {trainer.iteration}")
    bar = None
    if rank == 0 and progress != "none":
        from dvis_cli.cli.progress import progress_factory

        bar = progress_factory(progress, unit="it")(f"train {stage}", cfg.iters)
    try:
        summary = trainer.train(progress=(lambda it, rec: bar.update(it, f"loss {rec['loss']:.3f}")) if bar else None)
    except KeyboardInterrupt:
        if bar:
            bar.close()
        console_err.print(f"[yellow]interrupted[/]: saved {trainer.folder / 'last.pt'} at iteration {trainer.iteration}; continue with --resume")
        raise typer.Exit(130)
    if bar:
        bar.close()
    if rank == 0:
        ev = summary["eval"]
        ap = f", validation AP {ev['AP']:.3f}" if ev else ""
        console.print(f"[green]done[/] {stage}: {summary['iterations']} iterations in {summary['seconds']:.0f} s{ap}")
        console.print(f"  weights: {trainer.folder / 'weights' / 'last.safetensors'}   metrics: {trainer.folder / 'metrics.jsonl'}")


def _stage_run(project: Path, name: str, stage: str, resume: bool, has_from: bool) -> Path:
    """The run folder of this stage: --resume continues the newest run holding this stage; a tracker
    or refiner joins the newest run holding the previous stage (whose weights it starts from) or,
    with --from, the newest run not yet holding this stage; a segmenter starts a new run."""
    from dvis_cli.errors import InputError
    from dvis_cli.runs import numbered_runs, run_dir
    from dvis_cli.training.trainer import PREVIOUS, stage_weights

    runs = numbered_runs(project, name)
    if resume:
        found = [r for r in runs if (r / stage / "last.pt").exists()]
        if not found:
            raise InputError(f"nothing to resume: no {project}/{name}* run holds a {stage} checkpoint")
        return found[0]
    if stage == "segmenter":
        return run_dir(project, name)
    if not has_from:
        found = [r for r in runs if stage_weights(r, PREVIOUS[stage]).exists()]
        if not found:
            raise InputError(
                f"the {stage} stage starts from a trained {PREVIOUS[stage]}: none in {project}/{name}*; "
                "train it first or pass --from WEIGHTS"
            )
        return found[0]
    free = [r for r in runs if not (r / stage).exists()]
    return free[0] if free else run_dir(project, name)


def _make(stage: str):
    def command(
        data: List[str] = typer.Option([], "--data", help="Dataset folder (annotations.json + JPEGImages) or YTVIS json; repeatable, PATH:RATIO to mix."),
        val: Optional[str] = typer.Option(None, "--val", help="Validation dataset with ground truth (AP at the end and every --set eval_every=N)."),
        preset: Optional[str] = typer.Option(None, "--preset", help="Model for a segmenter from scratch (default: the tiny preset)."),
        from_weights: Optional[str] = typer.Option(None, "--from", help="Weights to start from (default for tracker/refiner: the previous stage of this run)."),
        iters: Optional[int] = typer.Option(None, "--iters", min=1, help="Iterations."),
        batch: Optional[int] = typer.Option(None, "--batch", min=1, help="Videos per iteration (over all processes)."),
        out: Optional[Path] = typer.Option(None, "--out", help="Project folder (default runs/train)."),
        name: Optional[str] = typer.Option(None, "--name", help="Run name (default exp, auto-numbered)."),
        resume: bool = typer.Option(False, "--resume", help="Continue this stage from its last checkpoint."),
        config: Optional[Path] = typer.Option(None, "--config", help="TOML file of settings ([train] table)."),
        sets: List[str] = typer.Option([], "--set", help="key=value setting override; repeatable."),
        gpus: int = typer.Option(1, "--gpus", min=1, help="Processes (DDP through torchrun; gloo on CPU)."),
        device: Optional[str] = typer.Option(None, "--device", help="auto | cpu | cuda"),
        amp: Optional[str] = typer.Option(None, "--amp", help="none | fp16 | bf16"),
        workers: Optional[int] = typer.Option(None, "--workers", min=0, help="Data loader worker processes."),
        progress: str = typer.Option("rich", "--progress", help="rich | plain | json | none"),
    ) -> None:
        _run_stage(stage, data, val, preset, from_weights, iters, batch, out, name, resume, config, sets, gpus, device, amp, workers, progress)

    command.__doc__ = f"Train the {stage} stage of DVIS."
    return command


def register(app: typer.Typer) -> None:
    for stage in ("segmenter", "tracker", "refiner"):
        train_app.command(stage)(_make(stage))
        app.command(f"train-{stage}", help=f"Same as `dvis train {stage}`.")(_make(stage))
    app.add_typer(train_app, name="train")
