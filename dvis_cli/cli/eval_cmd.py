"""`dvis eval`: score predictions against ground truth with the official metrics.

`dvis eval score` scores result files that already exist (no model). Dataset runs that need the
model (`dvis eval ovis`, `dvis eval ytvis19`, ...) belong on `eval_app` beside it, one command each.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import typer
from rich.progress import Progress
from rich.table import Table

from dvis_cli.cli.common import console, console_err
from dvis_cli.errors import InputError

eval_app = typer.Typer(
    name="eval",
    help="Evaluate: YouTube-VIS / OVIS AP, OVIS occlusion AP, VIPSeg VPQ and STQ, as the official tools.",
    no_args_is_help=True,
)


@eval_app.callback()
def _eval_group() -> None:
    """Evaluate video segmentation results with the official metrics, number for number."""


def _defined(value: float) -> float | None:
    """JSON value: None where the official tool gives -1 (nothing to score) or NaN."""
    return None if value == -1 or math.isnan(value) else float(value)


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.2f}"


def _score_vis(gt_path: Path, results_path: Path, per_category: bool) -> dict[str, Any]:
    from dvis_cli.eval import evaluate_video_ap, load_vis_ground_truth, load_vis_results

    gt = load_vis_ground_truth(gt_path)
    preds = load_vis_results(results_path, gt)
    res = evaluate_video_ap(gt, preds)
    stats = {k: _defined(v) for k, v in res.stats.items()}
    out: dict[str, Any] = {"task": "vis", "ground_truth": str(gt_path), "results": str(results_path),
                           "videos": len(gt.videos), "predictions": len(preds), "occlusion": res.occlusion}
    out.update(stats)
    out["per_category"] = [{"id": c, "name": gt.categories[c], "AP": _defined(ap)}
                           for c, ap in res.per_category_ap.items()]

    table = Table(title="OVIS video AP" if res.occlusion else "Video AP",
                  caption=f"{len(gt.videos)} videos, {len(preds)} predicted tracks")
    table.add_column("metric")
    table.add_column("value (%)", justify="right")
    for key, value in stats.items():
        table.add_row(key, _pct(value))
    console.print(table)
    if per_category:
        cats = Table(title="AP per category")
        cats.add_column("id", justify="right")
        cats.add_column("category")
        cats.add_column("AP (%)", justify="right")
        for row in out["per_category"]:
            cats.add_row(str(row["id"]), row["name"], _pct(row["AP"]))
        console.print(cats)
    return out


def _score_vps(gt_pan: Path, gt_json: Path, pred_pan: Path, pred_json: Path, per_category: bool) -> dict[str, Any]:
    from dvis_cli.eval import evaluate_vipseg

    with Progress(console=console_err, transient=True) as bar:
        task = bar.add_task("VIPSeg videos", total=None)
        res = evaluate_vipseg(gt_json, gt_pan, pred_json, pred_pan,
                              progress=lambda done, total, _vid: bar.update(task, completed=done, total=total))
    stq = res.stq
    out: dict[str, Any] = {
        "task": "vps", "ground_truth_json": str(gt_json), "ground_truth_pan": str(gt_pan),
        "prediction_json": str(pred_json), "prediction_pan": str(pred_pan), "videos": len(res.video_ids),
        "VPQ": _defined(res.vpq), "VPQ_th": _defined(res.vpq_things), "VPQ_st": _defined(res.vpq_stuff),
        "STQ": _defined(stq.stq), "AQ": _defined(stq.aq), "SQ": _defined(stq.sq),
        "units": {"VPQ": "percent, as vpq-final.txt", "STQ": "fraction, as eval_stq_vspw.py"},
        "windows": {
            str(n): {name: {"pq": _defined(s.pq), "sq": _defined(s.sq), "rq": _defined(s.rq), "n": s.n}
                     for name, s in groups.items()}
            for n, groups in res.per_window.items()
        },
        "per_class": {str(n): {str(c): v for c, v in rows.items()} for n, rows in res.per_class.items()},
        "per_video": [{"video_id": v, "STQ": _defined(s), "AQ": _defined(a), "SQ": _defined(q), "frames": n}
                      for v, s, a, q, n in zip(res.video_ids, stq.stq_per_seq, stq.aq_per_seq,
                                               stq.sq_per_seq, stq.length_per_seq)],
    }

    table = Table(title="VIPSeg VPQ", caption=f"{len(res.video_ids)} videos")
    for col in ("window", "VPQ", "VPQ_th", "VPQ_st"):
        table.add_column(col, justify="right")
    for n, groups in res.per_window.items():
        table.add_row(str(n), *(_pct(_defined(groups[g].pq)) for g in ("all", "things", "stuff")))
    table.add_row("mean", *(_pct(None if out[k] is None else out[k] / 100) for k in ("VPQ", "VPQ_th", "VPQ_st")),
                  style="bold")
    console.print(table)
    quality = Table(title="VIPSeg STQ")
    for col in ("STQ", "AQ", "SQ"):
        quality.add_column(col, justify="right")
    quality.add_row(*(_pct(out[k]) for k in ("STQ", "AQ", "SQ")))
    console.print(quality)
    if per_category:
        console.print("[dim]per-class VPQ is in the --json output[/]")
    return out


@eval_app.command("score")
def score(
    gt: Path = typer.Option(None, "--gt", help="YouTube-VIS / OVIS ground-truth JSON (with annotations)."),
    results: Path = typer.Option(None, "--results",
                                 help="Result JSON list (video_id, category_id, score, segmentations)."),
    gt_pan: Path = typer.Option(None, "--gt-pan", help="VIPSeg: folder of GT panoptic PNGs (<video>/<frame>.png)."),
    gt_json: Path = typer.Option(None, "--gt-json", help="VIPSeg: GT panoptic JSON (panoptic_gt_VIPSeg_val.json)."),
    pred_pan: Path = typer.Option(None, "--pred-pan", help="VIPSeg: folder of predicted PNGs (pan_pred)."),
    pred_json: Path = typer.Option(None, "--pred-json", help="VIPSeg: predicted JSON (pred.json)."),
    json_out: Path = typer.Option(None, "--json", help="Also write every number to this JSON file."),
    per_category: bool = typer.Option(False, "--per-category", help="Print AP per category too."),
) -> None:
    """Score existing results (no model): video AP, or VIPSeg VPQ and STQ.

    YouTube-VIS / OVIS: --gt GT.json --results results.json (OVIS GT with occlusion labels adds
    AP_light / AP_medium / AP_heavy). VIPSeg: --gt-pan DIR --gt-json J --pred-pan DIR --pred-json J.
    """
    vis = {"--gt": gt, "--results": results}
    vps = {"--gt-pan": gt_pan, "--gt-json": gt_json, "--pred-pan": pred_pan, "--pred-json": pred_json}
    given_vis = [k for k, v in vis.items() if v is not None]
    given_vps = [k for k, v in vps.items() if v is not None]
    if given_vis and given_vps:
        raise InputError(f"give either {' and '.join(vis)} (VIS) or {', '.join(vps)} (VIPSeg), not both")
    if given_vis:
        missing = [k for k, v in vis.items() if v is None]
        if missing:
            raise InputError(f"VIS scoring needs {' and '.join(vis)}; missing {', '.join(missing)}")
        out = _score_vis(gt, results, per_category)
    elif given_vps:
        missing = [k for k, v in vps.items() if v is None]
        if missing:
            raise InputError(f"VIPSeg scoring needs {', '.join(vps)}; missing {', '.join(missing)}")
        out = _score_vps(gt_pan, gt_json, pred_pan, pred_json, per_category)
    else:
        raise InputError("nothing to score: give --gt and --results (VIS) or --gt-pan, --gt-json, --pred-pan, "
                         "--pred-json (VIPSeg)")
    if json_out is not None:
        from dvis_cli.eval import write_json_atomic

        try:
            write_json_atomic(json_out, out)
        except OSError as exc:
            raise InputError(f"cannot write {json_out}: {exc.strerror or exc}") from None
        console.print(f"wrote {json_out}")


def _run_model(gt_json: Path, image_root: Path, weights: str | None, preset: str | None, mode: str | None, limit: int,
               size: int | None, device: str, out: Path, name: str, resume: bool,
               window: int | None = None, context: int | None = None) -> None:
    """Model over a dataset -> results.json + CodaLab zip (+ metrics when the json has annotations)."""
    from dvis_cli.checkpoint.load import load_model
    from dvis_cli.checkpoint.resolve import resolve_weights
    from dvis_cli.eval import write_json_atomic
    from dvis_cli.inference.dataset import plan_dataset, run_dataset
    from dvis_cli.inference.device import resolve_device
    from dvis_cli.inference.predictor import SegmentOptions, VideoPredictor
    from dvis_cli.runs import run_dir

    torch_device = resolve_device(device)
    path = resolve_weights(weights)
    model = load_model(path, preset, torch_device)
    predictor = VideoPredictor(model, torch_device)
    options = SegmentOptions(mode=mode, size=size, window=window, context=context)
    predictor.check_options(options)
    plan = plan_dataset(gt_json, image_root, model.config.classes.names, model.config.classes.dataset_ids, limit)
    folder = run_dir(out, name, latest=resume)
    with Progress(console=console_err) as bar:
        task = bar.add_task("videos", total=None)
        run = run_dataset(predictor, plan, folder, options,
                          progress=lambda done, total, _vid: bar.update(task, completed=done, total=total))
    console.print(f"wrote {run.results_json} and the CodaLab submission {run.submission_zip} ({run.videos} videos)")
    if run.has_ground_truth:
        metrics = _score_vis(run.gt_json, run.results_json, per_category=False)
        write_json_atomic(folder / "metrics.json", metrics)
        console.print(f"wrote {folder / 'metrics.json'}")
    else:
        console.print("the annotation file has no ground truth (official val / test): upload the zip to the benchmark server")


def _dataset_command(dataset: str):
    def command(
        weights: str = typer.Option(None, "--weights", "-w", help="Weights (embedded name, path or URL)."),
        data_root: Path = typer.Option(Path("datasets"), "--data-root", help="Folder holding the datasets in the detectron2 layout."),
        split: str = typer.Option("valid", "--split", help="Split (the annotation file's name, e.g. valid, train)."),
        mode: str = typer.Option(None, "--mode", help="online | offline | semi-online | minvis (default: the most the weights can do)."),
        window: int = typer.Option(None, "--window", min=1, help="Semi-online: frames per refiner window."),
        context: int = typer.Option(None, "--context", min=0, help="Semi-online: earlier frames the refiner also sees (default: the window)."),
        limit: int = typer.Option(0, "--limit", min=0, help="Only the first N videos."),
        size: int = typer.Option(None, "--size", help="Shorter side fed to the model."),
        preset: str = typer.Option(None, "--preset", help="Preset for official checkpoints."),
        device: str = typer.Option("auto", "--device"),
        out: Path = typer.Option(Path("runs/eval"), "--out"),
        name: str = typer.Option(dataset, "--name"),
        resume: bool = typer.Option(False, "--resume", help="Continue the latest run, skipping finished videos."),
    ) -> None:
        from dvis_cli.inference.dataset import official_paths

        gt_json, images = official_paths(dataset, data_root, split)
        _run_model(gt_json, images, weights, preset, mode, limit, size, device, out, name, resume, window, context)

    command.__doc__ = f"Run a model over {dataset} (official layout under --data-root): submission zip, and metrics when GT is there."
    return command


for _dataset in ("ovis", "ytvis19", "ytvis21", "ytvis22"):
    eval_app.command(_dataset)(_dataset_command(_dataset))


@eval_app.command("ytvis-custom")
def ytvis_custom(
    gt: Path = typer.Option(..., "--gt", help="YouTube-VIS-format json (file_names relative to --frames)."),
    frames: Path = typer.Option(..., "--frames", help="Folder the json's file_names are relative to."),
    weights: str = typer.Option(None, "--weights", "-w", help="Weights (embedded name, path or URL)."),
    mode: str = typer.Option(None, "--mode", help="online | offline | semi-online | minvis"),
    window: int = typer.Option(None, "--window", min=1, help="Semi-online: frames per refiner window."),
    context: int = typer.Option(None, "--context", min=0, help="Semi-online: earlier frames the refiner also sees (default: the window)."),
    limit: int = typer.Option(0, "--limit", min=0, help="Only the first N videos."),
    size: int = typer.Option(None, "--size", help="Shorter side fed to the model."),
    preset: str = typer.Option(None, "--preset"),
    device: str = typer.Option("auto", "--device"),
    out: Path = typer.Option(Path("runs/eval"), "--out"),
    name: str = typer.Option("custom", "--name"),
    resume: bool = typer.Option(False, "--resume", help="Continue the latest run, skipping finished videos."),
) -> None:
    """Run a model over any YouTube-VIS-format dataset; metrics when the json has annotations."""
    _run_model(gt, frames, weights, preset, mode, limit, size, device, out, name, resume, window, context)


@eval_app.command("vipseg")
def vipseg(
    weights: str = typer.Option(None, "--weights", "-w", help="A VIPSeg (video panoptic) model: embedded name, path or URL."),
    data_root: Path = typer.Option(Path("datasets"), "--data-root", help="Folder holding VIPSeg/VIPSeg_720P (the official 720p layout)."),
    split: str = typer.Option("val", "--split", help="val, test or train."),
    mode: str = typer.Option(None, "--mode", help="online | offline | minvis (default: the most the weights can do)."),
    limit: int = typer.Option(0, "--limit", min=0, help="Only the first N videos."),
    size: int = typer.Option(None, "--size", help="Shorter side fed to the model."),
    preset: str = typer.Option(None, "--preset"),
    device: str = typer.Option("auto", "--device"),
    out: Path = typer.Option(Path("runs/eval"), "--out"),
    name: str = typer.Option("vipseg", "--name"),
    resume: bool = typer.Option(False, "--resume", help="Continue the latest run, skipping finished videos."),
) -> None:
    """Run a VPS model over VIPSeg: pan_pred/ + pred.json, and VPQ / STQ when the GT PNGs are there."""
    from dvis_cli.checkpoint.load import load_model
    from dvis_cli.checkpoint.resolve import resolve_weights
    from dvis_cli.eval import write_json_atomic
    from dvis_cli.inference.dataset import VIPSEG_LAYOUT, run_vipseg_dataset
    from dvis_cli.inference.device import resolve_device
    from dvis_cli.inference.predictor import SegmentOptions, VideoPredictor
    from dvis_cli.runs import run_dir

    ann, images, pans = (data_root / p.format(split=split) for p in VIPSEG_LAYOUT)
    torch_device = resolve_device(device)
    model = load_model(resolve_weights(weights), preset, torch_device)
    predictor = VideoPredictor(model, torch_device)
    predictor.check_mode(mode)
    folder = run_dir(out, name, latest=resume)
    with Progress(console=console_err) as bar:
        task = bar.add_task("videos", total=None)
        pan_pred, pred_json, n = run_vipseg_dataset(predictor, ann, images, folder, SegmentOptions(mode=mode, size=size), limit,
                                                    progress=lambda done, total, _v: bar.update(task, completed=done, total=total))
    console.print(f"wrote {pred_json} and {pan_pred}/ ({n} videos)")
    if pans.is_dir():
        metrics = _score_vps(pans, ann, pan_pred, pred_json, per_category=False)
        write_json_atomic(folder / "metrics.json", metrics)
        console.print(f"wrote {folder / 'metrics.json'}")
    else:
        console.print("no ground-truth panoptic PNGs for this split: submit pred.json and pan_pred/ to the benchmark")


def register(app: typer.Typer) -> None:
    """Add the `eval` command group to the `dvis` app."""
    app.add_typer(eval_app, name="eval")
