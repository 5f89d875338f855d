"""`dvis segment` as a library call: one video (or frame folder) -> a result store and exports."""
from __future__ import annotations

import json
import os
import resource
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from dvis_cli.atomic import write_text_atomic
from dvis_cli.errors import InputError
from dvis_cli.inference.predictor import SegmentOptions, StreamState, VideoPredictor
from dvis_cli.inference.results import ResultStore, ResultWriter, StoreMeta

EXPORTS = ("ytvis", "coco", "csv")


@dataclass
class FrameRange:
    start: str | int | None = None
    end: str | int | None = None
    stride: int = 1


@dataclass
class VideoReport:
    source: str
    stem: str
    frames: int
    seconds: float
    tracks: int
    outputs: dict[str, str] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    error: str | None = None  # the source broke mid-way: partial results were kept

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0


def peak_rss_mb() -> float:
    """This process's peak resident memory (VmHWM; ru_maxrss can carry a parent's peak over exec)."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _stem(spec: str, taken: set[str]) -> str:
    base = Path(spec.rstrip("/")).stem or "video"
    base = "".join(c if c.isalnum() or c in "-_." else "_" for c in base) or "video"
    stem, n = base, 2
    while stem in taken:
        stem, n = f"{base}_{n}", n + 1
    taken.add(stem)
    return stem


def _options_signature(options: SegmentOptions, frames: FrameRange, weights: str) -> str:
    return json.dumps({"options": asdict(options), "frames": asdict(frames), "weights": weights}, sort_keys=True, default=str)


def segment_video(
    predictor: VideoPredictor,
    source_spec,  # a path / glob, or a source already opened with dvis_cli.io.open_source
    run_folder: Path,
    stem: str,
    options: SegmentOptions,
    frames: FrameRange = FrameRange(),
    exports: tuple[str, ...] = EXPORTS,
    save_masks: str | None = None,
    render: dict | None = None,
    resume: bool = False,
    weights_name: str = "",
    progress=None,  # factory: (stem, total_frames) -> object with update(done, live) and close()
) -> VideoReport:
    from dvis_cli.io import open_source, select_frames

    source = open_source(source_spec) if isinstance(source_spec, (str, os.PathLike)) else source_spec
    source_spec = str(source.path)
    info = source.info
    if info.frame_count == 0:
        raise InputError(f"{source_spec}: the video has no frames")
    mode = predictor.check_options(options)
    store_dir = run_folder / f"{stem}.results"
    resume_path = store_dir / "resume.pt"
    signature = _options_signature(options, frames, weights_name)
    state = None
    start = frames.start
    if resume and (store_dir / "tracks.json").exists():
        store = ResultStore(store_dir)
        outputs = _export(store, run_folder, stem, exports, save_masks, render, source_spec)
        return VideoReport(source_spec, stem, store.num_frames(), 0.0, len(store.tracks), outputs, ["already complete: exports rewritten"])
    if resume and resume_path.exists():
        saved = torch.load(resume_path, map_location="cpu", weights_only=True)
        if saved.get("signature") != signature:
            raise InputError(f"{store_dir}: the run was started with other options or weights; resume it with the same ones")
        if mode == "offline":
            raise InputError("--resume continues online and semi-online runs; an offline run restarts")
        state = StreamState.from_dict(saved["state"], predictor.device)
        start = state.last_index + frames.stride
    meta = StoreMeta(
        source=str(source_spec),
        width=info.width,
        height=info.height,
        fps=float(info.fps) if info.fps else None,
        task=predictor.model.config.test.task,
        class_names=list(predictor.model.config.classes.names),
        dataset_ids=list(predictor.model.config.classes.dataset_ids),
        num_things=predictor.model.config.classes.num_things,
        mode=mode,
        weights=weights_name,
        extra={"video": info.to_dict()},
    )
    if meta.task == "vps" and getattr(source, "files", None):  # frame folders: VIPSeg PNGs keep the frame names
        meta.extra["frame_files"] = [os.path.basename(f) for f in source.files]
    writer = ResultWriter(store_dir, meta, resume_frames=state.frames_done if state else None)

    def checkpoint(s: StreamState) -> None:
        tmp = resume_path.with_name(".resume.pt.part")
        torch.save({"signature": signature, "state": s.to_dict()}, tmp)
        os.replace(tmp, resume_path)

    selection_total = len(select_frames(info, start, frames.end, frames.stride))
    bar = progress(stem, selection_total + (state.frames_done if state else 0)) if progress else None
    if bar is not None and state is not None:
        bar.update(state.frames_done, 0)
    t0 = time.perf_counter()
    error = None
    warnings: list[str] = _unused_filters(predictor, options)
    frame_iter = source.frames(start=start, end=frames.end, stride=frames.stride)
    try:
        result = predictor.run(
            _guard(frame_iter, errors := []),
            (info.height, info.width),
            writer,
            options,
            state=state,
            progress=(bar.update if bar is not None else None),
            checkpoint=checkpoint if mode in ("online", "minvis", "semi-online") else None,
        )
    finally:
        writer.close()
        if bar is not None:
            bar.close()
    seconds = time.perf_counter() - t0
    if errors:
        error = f"{errors[0]} — kept the {result.frames} frames before it"
        warnings.append(error)
    resume_path.unlink(missing_ok=True)
    store = ResultStore(store_dir)
    outputs = _export(store, run_folder, stem, exports, save_masks, render, source_spec)
    return VideoReport(source_spec, stem, result.frames, seconds, len(result.tracks), outputs, warnings, error)


def _unused_filters(predictor: VideoPredictor, options: SegmentOptions) -> list[str]:
    """A panoptic model labels every pixel (the official merge); the instance filters do not apply."""
    if predictor.model.config.test.task != "vps":
        return []
    given = {"--conf": options.conf, "--classes": options.classes, "--max-instances": options.max_instances, "--top-k": options.top_k}
    named = [name for name, value in given.items() if value]
    if not named:
        return []
    return [f"{', '.join(named)} not applied: they filter instance (VIS) results, and this panoptic model labels every pixel as the official merge does"]


def _guard(frames, errors: list):
    """Yield frames until the source breaks; record the break instead of raising mid-model."""
    from dvis_cli.io import DecodeError

    try:
        yield from frames
    except DecodeError as exc:
        errors.append(str(exc))


def _export(store: ResultStore, run_folder: Path, stem: str, exports, save_masks, render, source_spec) -> dict[str, str]:
    from dvis_cli import export

    outputs = {"results": str(store.folder)}
    if store.meta.task == "vps":  # VIPSeg PNGs + pred.json instead of the instance exports
        written = export.write_vipseg(store, run_folder, stem)
        outputs.update({k: str(v) for k, v in written.items()})
        if save_masks == "png":
            outputs["masks"] = str(written["pan_pred"])
        exports, save_masks = (), None
    if "ytvis" in exports:
        outputs["ytvis"] = str(export.write_ytvis(store, run_folder / f"{stem}.ytvis.json"))
    if "coco" in exports:
        outputs["coco"] = str(export.write_coco(store, run_folder / f"{stem}.coco.json"))
    if "csv" in exports:
        outputs["tracks"] = str(export.write_tracks_csv(store, run_folder / f"{stem}.tracks.csv"))
    if save_masks == "png":
        outputs["masks"] = str(export.write_id_pngs(store, run_folder / "masks" / stem))
    if render is not None:
        from dvis_cli.render import render_video

        outputs["render"] = str(render_video(store, source_spec, run_folder / f"{stem}.mp4", **render))
    return outputs


def write_summary(run_folder: Path, reports: list[VideoReport], settings: dict) -> Path:
    summary = {
        "videos": [asdict(r) | {"fps": round(r.fps, 3)} for r in reports],
        "frames": sum(r.frames for r in reports),
        "seconds": round(sum(r.seconds for r in reports), 3),
        "fps": round(sum(r.frames for r in reports) / max(sum(r.seconds for r in reports), 1e-9), 3),
        "peak_rss_mb": round(peak_rss_mb(), 1),
        "peak_vram_mb": round(torch.cuda.max_memory_allocated() / 2**20, 1) if torch.cuda.is_available() else None,
        "instances": sum(r.tracks for r in reports),
        "warnings": [w for r in reports for w in r.warnings],
        "settings": settings,
    }
    path = run_folder / "summary.json"
    write_text_atomic(path, json.dumps(summary, indent=2, default=str))
    return path
