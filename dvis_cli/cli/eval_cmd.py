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


def register(app: typer.Typer) -> None:
    """Add the `eval` command group to the `dvis` app."""
    app.add_typer(eval_app, name="eval")
