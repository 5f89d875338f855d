"""Progress reporting for long work: one Rich bar per video, or plain / json lines, or nothing."""
from __future__ import annotations

import json
import sys
import time

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from dvis_cli.cli.common import console_err

STYLES = ("rich", "plain", "json", "none")


class _Rate:
    """Units per second since the first update: a first update right away (a resumed run's
    iterations or frames) is the baseline; otherwise count from the start, so work reported in
    bursts (offline) is not over-counted."""

    def __init__(self) -> None:
        self.start = time.perf_counter()
        self.first: tuple[float, int] | None = None

    def __call__(self, done: int) -> float:
        now = time.perf_counter()
        if self.first is None:
            self.first = (now, done) if now - self.start < 0.2 else (self.start, 0)
        t0, d0 = self.first
        return (done - d0) / (now - t0) if now > t0 and done > d0 else 0.0


class _RichBar:
    def __init__(self, label: str, total: int, unit: str) -> None:
        self.progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rate]}"),
            TextColumn("{task.fields[extra]}"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=console_err,
            transient=False,
        )
        self.unit = unit
        self.rate = _Rate()
        self.task = self.progress.add_task(label, total=total or None, rate="", extra="")
        self.progress.start()

    def update(self, done: int, extra: str | int = "") -> None:
        rate = self.rate(done)
        label = f"live {extra}" if isinstance(extra, int) else str(extra)
        self.progress.update(self.task, completed=done, rate=f"{rate:.1f} {self.unit}/s", extra=label)

    def close(self) -> None:
        self.progress.stop()


class _LineBar:
    """plain: a line about every 10 % (never one per frame); json: one object about every second."""

    def __init__(self, label: str, total: int, unit: str, as_json: bool) -> None:
        self.label, self.total, self.unit, self.as_json = label, total, unit, as_json
        self.rate = _Rate()
        self.last_time = 0.0
        self.last_step = -1
        self.done = 0

    def update(self, done: int, extra: str | int = "") -> None:
        self.done = done
        rate = self.rate(done)
        if self.as_json:
            now = time.perf_counter() - self.rate.start
            if now - self.last_time >= 1.0 or done == self.total:
                self.last_time = now
                print(json.dumps({"video": self.label, "done": done, "total": self.total, "rate": round(rate, 2), "live": extra}), file=sys.stderr, flush=True)
            return
        step = int(10 * done / self.total) if self.total else 0
        if step != self.last_step:
            self.last_step = step
            print(f"{self.label}: {done}/{self.total} {self.unit} ({rate:.1f}/s)", file=sys.stderr, flush=True)

    def close(self) -> None:
        pass


class _NoBar:
    def update(self, done: int, extra: str | int = "") -> None:
        pass

    def close(self) -> None:
        pass


def progress_factory(style: str, unit: str = "frames"):
    if style not in STYLES:
        from dvis_cli.errors import InputError

        raise InputError(f"unknown progress style {style!r}; use {', '.join(STYLES)}")

    def make(label: str, total: int):
        if style == "rich":
            return _RichBar(label, total, unit)
        if style in ("plain", "json"):
            return _LineBar(label, total, unit, style == "json")
        return _NoBar()

    return make
