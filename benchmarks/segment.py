"""Benchmark the `dvis segment` pipeline: time per stage, and peak memory against video length.

Three parts (`--only stages|rss|embedded` runs one of them):

stages  ms/frame of each stage of `segment_video` for a random-weight R50 model
        (`offline_r50_ovis`) on a synthetic 640x360 video and for the tiny model
        (`offline_tiny_synth`) on a synthetic 160x96 video, in online and offline mode.
        The stages are timed by wrapping the library's own calls in this process only (no
        library code changes): decode (the source's frame iterator), preprocess (resize +
        normalise), segmenter, tracker, refiner (offline: the tracker's frame projection, the
        refiner over the video and its mask products), spill (offline: mask features written to
        disk and read back), post (mask upsampling + RLE encoding + store append), export (YTVIS,
        COCO, CSV) and, with --render, the overlay render (its decode, drawing and encoding).
        Each stage's time is exclusive: a timed call nested in another counts only once, in the
        inner stage. "other" is the rest of the wall time of `segment_video` (accumulating class
        logits, the final top-k, opening the store...). A warm-up run on the first frames of
        the same video goes first and is not counted.

rss     peak resident memory of `segment_video` (tiny model, online and offline) on synthetic
        160x96 videos of 200 and 2000 frames (a ping-pong loop of 200 rendered frames), each in a
        fresh subprocess so that the peak (VmHWM) belongs to that run alone. "peak run" is the peak when
        the model is done (before the exports), "peak" the peak after the exports too; RSS@25% /
        RSS@end are the current RSS a quarter of the way through the video and after its last
        frame (a rise between the two is memory growing with length).

embedded  `dvis segment examples/shapes.mp4` as a user runs it (the embedded trained model, default
        threads, one subprocess per run) in each mode, a few times each: frames/s of the model
        run as `summary.json` gives it, and the wall time of the whole command (start-up, model
        load, exports included).

    python benchmarks/segment.py [--quick] [--only rss|stages|embedded] [--json OUT] [--render]
                                 [--threads N] [--plain] [--workdir DIR] [--keep]

`--quick` is a small version (under a minute): 3 R50 frames, 20 tiny frames, and the RSS runs at 50
and 500 frames, online only. Torch runs 1 thread by default (`--threads`): on a machine whose cores
other work shares, several OpenMP threads wait on each other and the times scatter by 10x.
Models have random weights (seeded), so the number of masks a frame holds (a cost of
post-processing) is not that of a trained model; it is printed.
"""
from __future__ import annotations

import argparse
import contextlib
import functools
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch

R50_PRESET = "offline_r50_ovis"
TINY_PRESET = "offline_tiny_synth"
EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "shapes.mp4"
EMBEDDED_MODES = (("minvis", ()), ("online", ()), ("semi-online", ("--window", "8")), ("offline", ()))
EMBEDDED_TARGET_FPS = 10.0
LOOP_FRAMES = 200  # frames rendered for the long videos, played forwards and backwards
STAGES = ("decode", "preprocess", "segmenter", "tracker", "refiner", "spill", "post", "export", "render")
POST_PARTS = ("post.upsample", "post.rle", "post.append")
RENDER_PARTS = ("render.decode", "render.draw", "render.encode", "render.other")


# ----------------------------------------------------------------------------------------------
# memory
# ----------------------------------------------------------------------------------------------


def peak_rss_mb() -> float:
    """The peak resident memory of this process image, in MB.

    Linux: VmHWM of /proc/self/status, the high-water mark of this address space. Not ru_maxrss:
    that one carries over execve, so a child forked from a big parent starts at the parent's
    RSS (this script's parent holds the R50 model when it starts the RSS runs).
    Elsewhere ru_maxrss (macOS reports bytes, the rest KiB).
    """
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except (OSError, ValueError, IndexError):
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 1024.0


def current_rss_mb() -> float:
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError):
        return peak_rss_mb()


# ----------------------------------------------------------------------------------------------
# timing
# ----------------------------------------------------------------------------------------------


class StageTimer:
    """Exclusive wall time per named stage: time spent in a nested timed call counts only there."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self.counts: dict[str, int] = defaultdict(int)
        self.decode_label = "decode"
        self._nested: list[float] = []  # per open call: seconds spent in timed calls inside it

    def reset(self) -> None:
        self.seconds.clear()
        self.counts.clear()

    def call(self, name: str, fn, *args, **kwargs):
        self._nested.append(0.0)
        start = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            elapsed = time.perf_counter() - start
            inner = self._nested.pop()
            self.seconds[name] += elapsed - inner
            if self._nested:
                self._nested[-1] += elapsed

    def wrap(self, name: str, fn):
        @functools.wraps(fn)
        def timed(*args, **kwargs):
            return self.call(name, fn, *args, **kwargs)

        return timed

    def iterate(self, iterator):
        """Time each step of an iterator under the current decode label."""
        iterator = iter(iterator)
        try:
            while True:
                try:
                    item = self.call(self.decode_label, next, iterator)
                except StopIteration:
                    return
                yield item
        finally:
            close = getattr(iterator, "close", None)
            if close is not None:
                close()


class _TimedNumpy:
    """Stands in for the predictor module's `np`: times np.save / np.load (the feature spill)."""

    def __init__(self, timer: StageTimer, real) -> None:
        self._timer, self._real = timer, real

    def __getattr__(self, name):
        value = getattr(self._real, name)
        if name == "save":
            return self._save
        if name == "load":
            return self._timer.wrap("spill", value)
        return value

    def _save(self, path, array, *args, **kwargs):
        self._timer.counts["spill_bytes"] += int(np.asarray(array).nbytes)
        return self._timer.call("spill", self._real.save, path, array, *args, **kwargs)


@contextlib.contextmanager
def instrument(timer: StageTimer):
    """Wrap the pipeline's calls with timers for the duration of the block; restore them after."""
    import dvis_cli.export as export
    import dvis_cli.inference.predictor as predictor
    import dvis_cli.inference.results as results
    import dvis_cli.io.video_source as video_source
    import dvis_cli.io.writer as writer
    import dvis_cli.render as render
    import dvis_cli.render.video as render_video

    saved = []

    def patch(owner, attr, replacement) -> None:
        saved.append((owner, attr, owner.__dict__[attr]))
        setattr(owner, attr, replacement)

    def timed(owner, attr, name) -> None:
        patch(owner, attr, timer.wrap(name, getattr(owner, attr)))

    frames = video_source.VideoFileSource.frames

    @functools.wraps(frames)
    def timed_frames(self, *args, **kwargs):
        return timer.iterate(timer.call(timer.decode_label, frames, self, *args, **kwargs))

    append = results.ResultWriter.append

    @functools.wraps(append)
    def counted_append(self, index, time_, masks):
        timer.counts["frames"] += 1
        timer.counts["masks"] += len(masks)
        return timer.call("post.append", append, self, index, time_, masks)

    render_fn = render.render_video

    @functools.wraps(render_fn)
    def timed_render(*args, **kwargs):
        timer.decode_label = "render.decode"
        try:
            return timer.call("render.other", render_fn, *args, **kwargs)
        finally:
            timer.decode_label = "decode"

    patch(video_source.VideoFileSource, "frames", timed_frames)
    cls = predictor.VideoPredictor
    timed(cls, "_images", "preprocess")
    timed(cls, "_segment", "segmenter")
    timed(cls, "_track", "tracker")
    timed(cls, "_refine", "refiner")
    timed(cls, "_write_frames", "post.upsample")
    timed(predictor, "encode_mask", "post.rle")
    patch(predictor, "np", _TimedNumpy(timer, np))
    patch(results.ResultWriter, "append", counted_append)
    for name in ("write_ytvis", "write_coco", "write_tracks_csv", "write_id_pngs"):
        timed(export, name, "export")
    patch(render, "render_video", timed_render)
    timed(render_video, "draw_overlay", "render.draw")
    for name in ("__init__", "write", "close"):
        timed(writer.VideoWriter, name, "render.encode")
    try:
        yield timer
    finally:
        for owner, attr, original in reversed(saved):
            setattr(owner, attr, original)


# ----------------------------------------------------------------------------------------------
# inputs and models
# ----------------------------------------------------------------------------------------------


def make_clip(path: Path, frames: int, size: tuple[int, int], seed: int = 0) -> Path:
    from dvis_cli.data.synth import write_example_clip

    if not path.exists():
        write_example_clip(path, seed=seed, frames=frames, size=size, fps=30.0)
    return path


def make_long_video(path: Path, frames: int, loop: int = LOOP_FRAMES, size: tuple[int, int] = (96, 160)) -> Path:
    """A `frames`-long mp4 from `loop` rendered frames played forwards, backwards, forwards..."""
    from dvis_cli.data.synth import SynthConfig, generate_video
    from dvis_cli.io import VideoWriter

    if path.exists():
        return path
    loop = max(2, min(loop, frames))
    height, width = size
    images = generate_video(SynthConfig(videos=1, frames=loop, height=height, width=width, seed=0, occlusion="heavy")).frames
    order = np.concatenate([np.arange(loop), np.arange(loop - 2, 0, -1)])  # ping-pong, no repeated ends
    path.parent.mkdir(parents=True, exist_ok=True)
    with VideoWriter(path, 30, (width, height)) as out:
        for i in range(frames):
            out.write(images[order[i % len(order)]])
    return path


def build_predictor(preset: str, seed: int = 0):
    from dvis_cli.config import get_preset
    from dvis_cli.inference.predictor import VideoPredictor
    from dvis_cli.model.build import build_dvis

    torch.manual_seed(seed)
    return VideoPredictor(build_dvis(get_preset(preset)), "cpu")


# ----------------------------------------------------------------------------------------------
# part 1: time per stage
# ----------------------------------------------------------------------------------------------


def time_stages(label: str, preset: str, video: Path, modes, warm_frames: int, render: bool, work: Path) -> list[dict]:
    from dvis_cli.inference.predictor import SegmentOptions
    from dvis_cli.inference.segment import FrameRange, segment_video
    from dvis_cli.io import open_source

    predictor = build_predictor(preset)
    render_opts = {"alpha": 0.5, "show": ("mask", "contour", "label")} if render else None
    rows = []
    for mode in modes:
        options = SegmentOptions(mode=mode)
        folder = work / f"stages-{label.replace(' ', '_')}-{mode}"
        timer = StageTimer()
        with instrument(timer):
            segment_video(predictor, open_source(video), folder, "warmup", options, FrameRange(end=warm_frames),
                          render=render_opts)
            source = open_source(video)
            timer.reset()
            start = time.perf_counter()
            report = segment_video(predictor, source, folder, "timed", options, render=render_opts)
            wall = time.perf_counter() - start
        n = report.frames
        ms = {name: 1e3 * sec / n for name, sec in timer.seconds.items()}
        row = {
            "model": label,
            "preset": preset,
            "mode": mode,
            "frames": n,
            "size": f"{source.info.width}x{source.info.height}",
            "tracks": report.tracks,
            "masks_per_frame": timer.counts["masks"] / max(1, timer.counts["frames"]),
            "spill_mb_per_frame": timer.counts["spill_bytes"] / 2**20 / n,
            "parts_ms": {k: round(v, 3) for k, v in sorted(ms.items())},
            "wall_s": round(wall, 3),
        }
        stage_ms = {
            "post": sum(ms.get(p, 0.0) for p in POST_PARTS),
            "render": sum(ms.get(p, 0.0) for p in RENDER_PARTS),
            **{s: ms.get(s, 0.0) for s in STAGES if s not in ("post", "render")},
        }
        total = 1e3 * wall / n
        stage_ms["other"] = total - sum(stage_ms.values())
        row["stage_ms"] = {k: round(v, 3) for k, v in stage_ms.items()}
        row["total_ms"] = round(total, 3)
        row["fps"] = round(n / wall, 3)
        rows.append(row)
        shutil.rmtree(folder, ignore_errors=True)
    return rows


# ----------------------------------------------------------------------------------------------
# part 2: peak RSS against video length (one fresh subprocess per run)
# ----------------------------------------------------------------------------------------------


class _RssProbe:
    """A progress object for segment_video that samples the process's current RSS."""

    def __init__(self, stem: str, total: int) -> None:
        self.total = total
        self.samples: list[tuple[int, float]] = []
        self.peak_run = None

    def update(self, done: int, live: int) -> None:
        self.samples.append((done, current_rss_mb()))

    def close(self) -> None:
        self.peak_run = peak_rss_mb()


def child_main(spec: dict) -> None:
    """Runs in a fresh interpreter: one segment_video call, then one JSON line on stdout."""
    from dvis_cli.inference.predictor import SegmentOptions
    from dvis_cli.inference.segment import segment_video

    torch.set_num_threads(spec["threads"])
    predictor = build_predictor(spec["preset"])
    baseline = peak_rss_mb()
    probes: list[_RssProbe] = []

    def factory(stem: str, total: int) -> _RssProbe:
        probes.append(_RssProbe(stem, total))
        return probes[-1]

    start = time.perf_counter()
    report = segment_video(predictor, spec["video"], Path(spec["out"]), "video", SegmentOptions(mode=spec["mode"]),
                           progress=factory)
    wall = time.perf_counter() - start
    probe = probes[0]
    quarter = next((rss for done, rss in probe.samples if done >= report.frames / 4), float("nan"))
    print(json.dumps({
        "frames": report.frames,
        "run_s": round(report.seconds, 3),
        "wall_s": round(wall, 3),
        "tracks": report.tracks,
        "baseline_mb": round(baseline, 1),
        "rss_25_mb": round(quarter, 1),
        "rss_end_mb": round(probe.samples[-1][1], 1) if probe.samples else None,
        "peak_run_mb": round(probe.peak_run, 1),
        "peak_mb": round(peak_rss_mb(), 1),
        "store_mb": round(os.path.getsize(Path(spec["out"]) / "video.results" / "frames.jsonl") / 2**20, 2),
    }))


def measure_rss(video: Path, mode: str, threads: int, work: Path, timeout: float) -> dict:
    out = work / f"rss-{mode}-{video.stem}"
    spec = {"video": str(video), "mode": mode, "preset": TINY_PRESET, "threads": threads, "out": str(out)}
    row = {"mode": mode, "video": video.name}
    try:
        proc = subprocess.run([sys.executable, os.path.abspath(__file__), "--child", json.dumps(spec)],
                              capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        row["error"] = f"timed out after {timeout:.0f} s"
        return row
    finally:
        shutil.rmtree(out, ignore_errors=True)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        row["error"] = f"exit {proc.returncode}: {' | '.join(tail)}"
        return row
    row.update(json.loads(lines[-1]))
    row["fps"] = round(row["frames"] / row["run_s"], 2) if row["run_s"] else None
    return row


def rss_ratios(rows: list[dict], short: int, long: int) -> list[dict]:
    out = []
    for mode in dict.fromkeys(r["mode"] for r in rows):
        by_len = {r.get("frames"): r for r in rows if r["mode"] == mode and "error" not in r}
        if short not in by_len or long not in by_len:
            continue
        a, b = by_len[short], by_len[long]
        out.append({
            "mode": mode,
            "peak": round(b["peak_mb"] / a["peak_mb"], 3),
            "peak_run": round(b["peak_run_mb"] / a["peak_run_mb"], 3),
            "growth": round((b["peak_mb"] - b["baseline_mb"]) / max(1e-6, a["peak_mb"] - a["baseline_mb"]), 2),
        })
    return out


# ----------------------------------------------------------------------------------------------
# the embedded model on the example clip, as `dvis segment` runs it
# ----------------------------------------------------------------------------------------------


def time_embedded(work: Path, repeats: int, render: bool) -> list[dict]:
    rows = []
    for mode, extra in EMBEDDED_MODES:
        fps, walls, frames = [], [], 0
        for n in range(repeats):
            out = work / "embedded"
            name = f"{mode}-{n}"
            cmd = [sys.executable, "-m", "dvis_cli", "segment", str(EXAMPLE), "--mode", mode, *extra, "--out", str(out),
                   "--name", name, "--progress", "none", *(["--render"] if render else [])]
            started = time.perf_counter()
            proc = subprocess.run(cmd, capture_output=True, text=True)
            wall = time.perf_counter() - started
            if proc.returncode != 0:
                raise RuntimeError(f"dvis segment --mode {mode} failed: {proc.stderr.strip()[-500:]}")
            summary = json.loads((out / name / "summary.json").read_text())
            fps.append(summary["fps"])
            walls.append(wall)
            frames = summary["frames"]
        rows.append({"mode": mode + (" " + " ".join(extra) if extra else ""), "frames": frames, "runs": repeats,
                     "fps_median": float(np.median(fps)), "fps_min": min(fps), "wall_s_median": float(np.median(walls))})
    return rows


def print_embedded(printer: Printer, rows: list[dict], render: bool) -> None:
    cols = ["mode", "frames", "runs", "frames/s (median)", "frames/s (slowest)", "command wall s (median)", "target"]
    body = [[r["mode"], str(r["frames"]), str(r["runs"]), _f(r["fps_median"]), _f(r["fps_min"]), _f(r["wall_s_median"], 2),
             f">= {EMBEDDED_TARGET_FPS:g} " + ("ok" if r["fps_min"] >= EMBEDDED_TARGET_FPS else "FAIL")] for r in rows]
    printer.table(f"dvis segment {EXAMPLE.name}{' --render' if render else ''}: embedded model, default threads", cols, body,
                  "frames/s: frames over the model run (summary.json: decode, model, RLE, store; not start-up or exports); "
                  "command wall: the whole `dvis segment` process")


# ----------------------------------------------------------------------------------------------
# output
# ----------------------------------------------------------------------------------------------


class Printer:
    def __init__(self, plain: bool) -> None:
        self.console = None
        if not plain:
            try:
                from rich.console import Console

                self.console = Console(width=max(160, shutil.get_terminal_size((160, 24)).columns))
            except ImportError:
                pass

    def line(self, text: str = "") -> None:
        if self.console is not None:
            self.console.print(text, highlight=False, markup=False)
        else:
            print(text, flush=True)

    def table(self, title: str, columns: list[str], rows: list[list[str]], note: str | None = None) -> None:
        if self.console is not None:
            from rich.table import Table

            table = Table(title=title, title_justify="left", caption=note, caption_justify="left")
            for i, col in enumerate(columns):
                table.add_column(col, justify="left" if i < 2 else "right")
            for row in rows:
                table.add_row(*row)
            self.console.print(table)
            return
        widths = [max(len(c), *(len(r[i]) for r in rows)) if rows else len(c) for i, c in enumerate(columns)]

        def fmt(cells):
            return "  ".join(c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths)))

        print(f"\n{title}")
        print(fmt(columns))
        print("  ".join("-" * w for w in widths))
        for row in rows:
            print(fmt(row))
        if note:
            print(note)
        sys.stdout.flush()


def _f(value, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def print_stages(printer: Printer, rows: list[dict], render: bool) -> None:
    stages = [s for s in STAGES if render or s != "render"]
    cols = ["model", "mode", "frames"] + stages + ["other", "total", "fps"]
    body = []
    for r in rows:
        ms = r["stage_ms"]
        show_zero = {"tracker": True, "refiner": r["mode"] == "offline", "spill": r["mode"] == "offline"}
        cells = [f"{r['model']} {r['size']}", r["mode"], str(r["frames"])]
        for s in stages:
            cells.append(_f(ms[s]) if ms[s] > 0 or show_zero.get(s, True) else "-")
        cells += [_f(ms["other"]), _f(r["total_ms"]), _f(r["fps"], 2)]
        body.append(cells)
    printer.table("Time per stage, ms/frame (warm-up excluded; exclusive times)", cols, body,
                  "post = mask upsampling + RLE + store append; export = YTVIS + COCO + CSV; "
                  "refiner includes the tracker's frame projection and the refiner's mask products")
    cols = ["model", "mode", "masks/frame", "upsample", "rle", "append", "spill MB/frame"]
    if render:
        cols += ["r.decode", "r.draw", "r.encode", "r.other"]
    body = []
    for r in rows:
        p = r["parts_ms"]
        cells = [f"{r['model']} {r['size']}", r["mode"], _f(r["masks_per_frame"])]
        cells += [_f(p.get(k, 0.0), 2) for k in POST_PARTS]
        cells.append(_f(r["spill_mb_per_frame"], 2) if r["mode"] == "offline" else "-")
        if render:
            cells += [_f(p.get(k, 0.0), 2) for k in RENDER_PARTS]
        body.append(cells)
    printer.table("Post-processing" + (" and render" if render else "") + " breakdown, ms/frame", cols, body,
                  "masks/frame: non-empty masks RLE-encoded per frame (random weights); spill: mask features "
                  "written to disk per frame in offline mode (float32), deleted when the video is done")


def print_rss(printer: Printer, rows: list[dict], ratios: list[dict], target: float) -> None:
    cols = ["mode", "frames", "run s", "fps", "baseline MB", "RSS@25% MB", "RSS@end MB", "peak run MB", "peak MB",
            "store MB"]
    body = []
    for r in rows:
        if "error" in r:
            body.append([r["mode"], r["video"], r["error"]] + [""] * (len(cols) - 3))
            continue
        body.append([r["mode"], str(r["frames"]), _f(r["run_s"], 2), _f(r["fps"]), _f(r["baseline_mb"]),
                     _f(r["rss_25_mb"]), _f(r["rss_end_mb"]), _f(r["peak_run_mb"]), _f(r["peak_mb"]),
                     _f(r["store_mb"], 2)])
    printer.table("Peak RSS against video length (tiny model, 160x96, fresh process per run)", cols, body,
                  "baseline = peak after imports and model build; peak run = peak when the model is done; "
                  "peak = after the exports too; store = frames.jsonl. RSS@25% is sampled at progress updates, "
                  "which offline mode gives only after the refiner (while it writes masks back)")
    if ratios:
        cols = ["mode", "peak long/short", "peak run long/short", "growth above baseline", "target"]
        body = []
        for r in ratios:
            verdict = f"<= {target} " + ("ok" if r["peak"] <= target else "FAIL") if r["mode"] == "online" else "none"
            body.append([r["mode"], f"{r['peak']:.3f}", f"{r['peak_run']:.3f}", f"{r['growth']:.2f}x", verdict])
        printer.table("Peak RSS ratio, long / short video", cols, body,
                      "growth above baseline: (peak - baseline) long / short; the target holds for the streaming "
                      "modes (online); offline keeps per-frame queries in memory and refines the whole video at once")


# ----------------------------------------------------------------------------------------------


def machine_info(threads: int) -> dict:
    from dvis_cli.ops import status

    choice = status.choose("cpu", torch.float32)
    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cpu": platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
        "threads": threads,
        "ms_deform_attn": f"{choice.path} ({choice.reason})",
        "loadavg_start": [round(x, 2) for x in os.getloadavg()],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a small version (under a minute)")
    parser.add_argument("--only", choices=("rss", "stages", "embedded"), help="run only one part")
    parser.add_argument("--json", type=Path, metavar="OUT", help="also write the results as JSON")
    parser.add_argument("--render", action="store_true", help="time the overlay render too")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads (default 1: steadier than several when other work shares the cores)")
    parser.add_argument("--plain", action="store_true", help="plain-text tables (default: Rich)")
    parser.add_argument("--workdir", type=Path, help="where videos and stores go (default: a temporary folder)")
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    parser.add_argument("--rss-target", type=float, default=1.1, help="peak(long)/peak(short) target")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child_main(json.loads(args.child))
        return 0

    torch.set_num_threads(args.threads)
    printer = Printer(args.plain)
    work = args.workdir or Path(tempfile.mkdtemp(prefix="dvis-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    results: dict = {"machine": machine_info(args.threads), "quick": args.quick}
    m = results["machine"]
    printer.line(f"dvis segment benchmark{' (quick)' if args.quick else ''}: python {m['python']}, torch {m['torch']}, "
                 f"{m['cores']} cores, {m['threads']} torch threads, CPU; ms_deform_attn: {m['ms_deform_attn']}")
    printer.line(f"load average at start: {m['loadavg_start']} (other processes may share the cores)")
    started = time.perf_counter()
    try:
        if args.only in (None, "stages"):
            r50_frames, tiny_frames = (3, 20) if args.quick else (30, 60)
            warm = 1 if args.quick else 3
            rows = []
            r50_video = make_clip(work / f"r50_{r50_frames}.mp4", r50_frames, (360, 640))
            tiny_video = make_clip(work / f"tiny_{tiny_frames}.mp4", tiny_frames, (96, 160))
            for label, preset, video in (("R50", R50_PRESET, r50_video), ("tiny", TINY_PRESET, tiny_video)):
                rows += time_stages(label, preset, video, ("online", "offline"), warm, args.render, work)
            results["stages"] = rows
            print_stages(printer, rows, args.render)
        if args.only in (None, "rss"):
            short, long = (50, 500) if args.quick else (200, 2000)
            modes = ("online",) if args.quick else ("online", "offline")
            videos = {n: make_long_video(work / f"loop_{n}.mp4", n) for n in (short, long)}
            rows = [measure_rss(videos[n], mode, args.threads, work, timeout=1800) for mode in modes for n in (short, long)]
            ratios = rss_ratios(rows, short, long)
            results["rss"] = rows
            results["rss_ratios"] = ratios
            print_rss(printer, rows, ratios, args.rss_target)
        if args.only in (None, "embedded"):
            rows = time_embedded(work, 1 if args.quick else 3, args.render)
            results["embedded"] = rows
            print_embedded(printer, rows, args.render)
    finally:
        if not args.keep and args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)
    results["machine"]["loadavg_end"] = [round(x, 2) for x in os.getloadavg()]
    results["seconds"] = round(time.perf_counter() - started, 1)
    printer.line(f"load average at end: {results['machine']['loadavg_end']}; took {results['seconds']} s")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
