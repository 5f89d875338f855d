"""The training engine: one stage of DVIS, on one process or many (torchrun / DDP).

Exact resume: the data stream and the loss's random points are functions of (seed, iteration,
sample), so a checkpoint needs only weights, optimizer, scheduler, scaler and the iteration (the
matching phase follows from it). Checkpoints are written atomically; `last.pt` is never corrupt.
"""
from __future__ import annotations

import json
import os
import random
import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.distributed as dist

from dvis_cli.checkpoint.load import LoadedWeights, read_any
from dvis_cli.checkpoint.store import save_weights
from dvis_cli.config import DVISConfig, get_preset, tiny_config, with_arch
from dvis_cli.errors import CheckpointError, InputError
from dvis_cli.model.build import build_dvis
from dvis_cli.model.dvis import DVIS
from dvis_cli.training.config import TrainConfig, to_toml
from dvis_cli.training.matcher import VideoTargets
from dvis_cli.training.optim import build_optimizer, warmup_multistep
from dvis_cli.training.point_sampling import seeded_generators
from dvis_cli.training.stages import EVAL_MODE, STAGE_ARCH, build_criterion, freeze_for_stage, stage_losses, trainable_module

PREVIOUS = {"tracker": "segmenter", "refiner": "tracker"}


def dist_info() -> tuple[int, int, int]:
    """(rank, world size, local rank) from the torchrun environment."""
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)), int(os.environ.get("LOCAL_RANK", 0))


def stage_folder(run: Path, stage: str) -> Path:
    return run / stage


def stage_weights(run: Path, stage: str, which: str = "last") -> Path:
    return stage_folder(run, stage) / "weights" / f"{which}.safetensors"


# ------------------------------------------------------------------------------------------ data
def build_stream(cfg: TrainConfig, rank: int, world: int):
    from dvis_cli.data.dataset import ClipDataset, TrainingStream, parse_data_spec
    from dvis_cli.data.transforms import AugmentConfig
    from dvis_cli.data.source import load_training_source

    augment = AugmentConfig(min_sizes=tuple(cfg.min_sizes), max_size=cfg.max_size, crop=cfg.crop, flip=cfg.flip)
    datasets, ratios = [], []
    for spec in cfg.data:
        path, ratio = parse_data_spec(spec)
        videos = load_training_source(path)
        datasets.append(
            ClipDataset(videos, cfg.stage_value("num_frames"), cfg.stage_value("frame_range"), augment, cfg.stage_value("reverse_prob"))
        )
        ratios.append(ratio)
    names = [d.class_set().names for d in datasets]
    if any(n != names[0] for n in names):
        raise InputError("the --data sets have different classes; mixed data sets must share one category list")
    if cfg.batch % world:
        raise InputError(f"--batch {cfg.batch} is not divisible by the {world} processes")
    stream = TrainingStream(datasets, ratios, cfg.batch // world, cfg.seed, rank, world, cfg.workers)
    return stream, datasets[0].class_set()


def collate(samples, model: DVIS, device) -> tuple[torch.Tensor, list[VideoTargets], int, int]:
    """Normalise and pad every clip to one size; targets padded the same way."""
    frames = samples[0].num_frames
    clips = [model.normalize(s.images.to(device)) for s in samples]
    hp = max(c.shape[-2] for c in clips)
    wp = max(c.shape[-1] for c in clips)
    images, targets = [], []
    for clip, s in zip(clips, samples):
        images.append(torch.nn.functional.pad(clip, (0, wp - clip.shape[-1], 0, hp - clip.shape[-2])))
        masks = s.masks.to(device)
        masks = torch.nn.functional.pad(masks, (0, wp - masks.shape[-1], 0, hp - masks.shape[-2]))
        targets.append(VideoTargets(s.labels.to(device), masks, s.present.to(device)))
    return torch.cat(images), targets, len(samples), frames


# ----------------------------------------------------------------------------------------- model
def initial_model(cfg: TrainConfig, classes, run: Path) -> tuple[DVIS, str]:
    """The model this stage starts from, and a note on where its weights came from."""
    arch = STAGE_ARCH[cfg.stage]
    source = cfg.from_weights
    if source is None and cfg.stage in PREVIOUS:
        default = stage_weights(run, PREVIOUS[cfg.stage])
        if not default.exists():
            raise InputError(
                f"the {cfg.stage} stage starts from a trained {PREVIOUS[cfg.stage]}: pass --from WEIGHTS "
                f"(none found at {default})"
            )
        source = str(default)
    if source is None:
        config = get_preset(cfg.preset) if cfg.preset else tiny_config(arch, classes)
        if config.num_classes != classes.num_classes:
            config = replace(config, classes=classes)
        config = with_arch(replace(config, classes=classes), arch)
        return build_dvis(config), f"scratch ({config.name})"
    if cfg.stage == "segmenter":
        return segmenter_start(cfg, classes, source)
    loaded = read_any(source)
    stages = loaded.config.stages
    need = {"segmenter": (), "tracker": ("segmenter",), "refiner": ("segmenter", "tracker")}[cfg.stage]
    missing = [s for s in need if s not in stages]
    if missing:
        raise CheckpointError(f"--from {source}: the {cfg.stage} stage needs trained {' and '.join(missing)} weights; this file holds {', '.join(stages)}")
    if tuple(loaded.config.classes.names) != tuple(classes.names):
        raise InputError(
            f"classes differ: the data has {classes.num_classes} ({', '.join(classes.names[:5])}…), "
            f"the weights {loaded.config.num_classes} ({', '.join(loaded.config.classes.names[:5])}…)"
        )
    config = with_arch(loaded.config, arch)
    model = build_dvis(config)
    own = model.state_dict()
    keep = {k: v for k, v in loaded.state_dict.items() if k in own}
    bad = [k for k, v in keep.items() if own[k].shape != v.shape]
    if bad:
        raise CheckpointError(f"--from {source}: {len(bad)} tensors do not fit the model, e.g. {bad[0]}")
    lacking = [k for k in own if k not in keep and not k.startswith(cfg.stage + ".") and not k.endswith("relative_position_index")]
    if lacking:
        raise CheckpointError(f"--from {source}: lacks {len(lacking)} tensors of the frozen stages, e.g. {lacking[0]}")
    model.load_state_dict(keep, strict=False)
    fresh = not any(k.startswith(cfg.stage + ".") for k in keep)
    if cfg.init_heads and fresh and cfg.stage in PREVIOUS:
        copy_heads(model, cfg.stage)
    return model, f"{source} ({loaded.config.name})"


BACKBONE_PREFIXES = ("stem.", "res2.", "res3.", "res4.", "res5.", "patch_embed.", "layers.")


def segmenter_start(cfg: TrainConfig, classes, source: str) -> tuple[DVIS, str]:
    """A segmenter from a checkpoint of any class set: a dvis / DVIS / MinVIS / COCO Mask2Former file
    (the class head is re-initialised when the classes differ, as detectron2's loader skips it), or a
    bare backbone (torchvision-converted R-50 .pkl, Swin .pkl): the backbone only."""
    from dvis_cli.checkpoint.official import official_to_ours, read_state_dict
    from dvis_cli.checkpoint.store import read_weights

    path = Path(source)
    if path.suffix.lower() == ".safetensors":
        ours, saved, _ = read_weights(path)
        base = saved
    else:
        raw = read_state_dict(path)
        if all(k.startswith(BACKBONE_PREFIXES) or k.startswith("fc.") or k.startswith("stem.fc") or k.startswith(("norm.", "head."))
               for k in raw):
            return _backbone_start(cfg, classes, raw, source)
        ours, _ = official_to_ours(raw)
        base = None
    config = base if base is not None else _architecture_of(ours, cfg)
    config = with_arch(replace(config, classes=classes), "minvis")
    model = build_dvis(config)
    own = model.state_dict()
    keep = {k: v for k, v in ours.items() if k in own and own[k].shape == v.shape}
    skipped = sorted(k for k in ours if k.startswith("segmenter.") and k not in keep)
    if any("class_embed" not in k for k in skipped):
        bad = next(k for k in skipped if "class_embed" not in k)
        raise CheckpointError(f"--from {source}: {bad} does not fit the model (another architecture or query count?)")
    lacking = [k for k in own if k not in keep and "class_embed" not in k and not k.endswith("relative_position_index")]
    if lacking:
        raise CheckpointError(f"--from {source}: lacks {len(lacking)} segmenter tensors, e.g. {lacking[0]}")
    model.load_state_dict(keep, strict=False)
    note = " (class head re-initialised for the data's classes)" if skipped else ""
    return model, f"{source}{note}"


def _architecture_of(ours: dict, cfg: TrainConfig) -> DVISConfig:
    """The segmenter architecture of an official state dict, whatever its classes."""
    from dvis_cli.checkpoint.official import detect_config

    if cfg.preset:
        return get_preset(cfg.preset)
    probe = dict(ours)
    k = probe["segmenter.decoder.class_embed.weight"].shape[0] - 1
    if k not in (25, 40, 124):  # e.g. COCO's 80: take the architecture of a known preset
        probe["segmenter.decoder.class_embed.weight"] = probe["segmenter.decoder.class_embed.weight"].new_zeros(26, probe["segmenter.decoder.class_embed.weight"].shape[1])
        probe["segmenter.decoder.class_embed.bias"] = probe["segmenter.decoder.class_embed.bias"].new_zeros(26)
    return detect_config(probe)


def _backbone_start(cfg: TrainConfig, classes, raw: dict, source: str) -> tuple[DVIS, str]:
    config = get_preset(cfg.preset) if cfg.preset else None
    if config is None:
        config = get_preset("minvis_swinl_ovis" if any(k.startswith("patch_embed.") for k in raw) else "minvis_r50_ovis")
    model = build_dvis(with_arch(replace(config, classes=classes), "minvis"))
    backbone = model.segmenter.backbone
    own = backbone.state_dict()
    keep = {k: v for k, v in raw.items() if k in own and own[k].shape == v.shape}
    lacking = [k for k in own if k not in keep and not k.endswith("relative_position_index") and not k.startswith("norm")]
    if lacking:
        raise CheckpointError(f"--from {source}: a backbone checkpoint that lacks {len(lacking)} tensors, e.g. {lacking[0]}")
    backbone.load_state_dict(keep, strict=False)
    return model, f"{source} (backbone only)"


HEADS = ("decoder_norm", "class_embed", "mask_embed")


def with_test_size(config: DVISConfig, size: int) -> DVISConfig:
    """The config with another default shorter side for inference (and for validation)."""
    return replace(config, input=replace(config.input, min_size_test=size))


def copy_heads(model: DVIS, stage: str) -> None:
    """The tracker's heads from the segmenter's decoder, the refiner's from the tracker."""
    source = model.segmenter.decoder if stage == "tracker" else model.tracker
    target = model.tracker if stage == "tracker" else model.refiner
    for name in HEADS:
        getattr(target, name).load_state_dict(getattr(source, name).state_dict())


# -------------------------------------------------------------------------------------- trainer
class Trainer:
    def __init__(self, cfg: TrainConfig, run: Path, log: Callable[[str], None] = print) -> None:
        cfg.validate()
        cfg.backbone_lr_multiplier = cfg.backbone_lr()  # recorded in config.toml as it is used
        self.cfg, self.run, self.log = cfg, run, log
        self.rank, self.world, self.local_rank = dist_info()
        from dvis_cli.inference.device import resolve_device

        self.device = resolve_device(cfg.device if self.world == 1 or cfg.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu"))
        if self.device.type == "cuda" and self.world > 1:
            self.device = torch.device("cuda", self.local_rank)
        if self.world > 1 and not dist.is_initialized():
            dist.init_process_group("nccl" if self.device.type == "cuda" else "gloo")
        self.folder = stage_folder(run, cfg.stage)
        self.stream, classes = build_stream(cfg, self.rank, self.world)
        self.model, self.origin = initial_model(cfg, classes, run)
        if cfg.test_size:
            self.model.config = with_test_size(self.model.config, cfg.test_size)
        self.model.to(self.device)
        freeze_for_stage(self.model, cfg.stage)
        self.module = trainable_module(self.model, cfg.stage)
        self.trained = self.module
        if self.world > 1:
            self.trained = torch.nn.parallel.DistributedDataParallel(
                self.module, device_ids=[self.device.index] if self.device.type == "cuda" else None
            )
        self.criterion = build_criterion(cfg.stage, classes.num_classes, cfg.num_points).to(self.device)
        self.optimizer = build_optimizer(self.module, cfg.lr, cfg.weight_decay, cfg.backbone_lr_multiplier)
        self.scheduler = warmup_multistep(self.optimizer, cfg.iters, cfg.steps, cfg.gamma, cfg.warmup_iters, cfg.warmup_factor)
        self.amp_dtype = {"none": None, "fp16": torch.float16, "bf16": torch.bfloat16}[cfg.amp]
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.amp_dtype == torch.float16)
        self.iteration = 0
        self.best_ap = -1.0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    # ---------------------------------------------------------------------------- checkpoints
    def state(self) -> dict:
        return {
            "iteration": self.iteration,
            "model": self.module.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "best_ap": self.best_ap,
            "torch_rng": torch.get_rng_state(),
            "config": json.dumps(asdict(self.cfg)),
        }

    def save_checkpoint(self) -> None:
        if not self.is_main:
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.folder / "last.pt"
        tmp = path.with_name(".last.pt.part")
        torch.save(self.state(), tmp)
        os.replace(tmp, path)
        self.export_weights("last")

    def export_weights(self, which: str) -> Path:
        path = stage_weights(self.run, self.cfg.stage, which)
        path.parent.mkdir(parents=True, exist_ok=True)
        return save_weights(path, self.model.state_dict(), self.model.config, {"stage": self.cfg.stage, "iteration": self.iteration})

    def resume(self) -> bool:
        path = self.folder / "last.pt"
        if not path.exists():
            return False
        state = torch.load(path, map_location=self.device, weights_only=True)
        self.module.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])
        self.iteration = int(state["iteration"])
        self.best_ap = float(state["best_ap"])
        torch.set_rng_state(state["torch_rng"].cpu())
        return True

    # ------------------------------------------------------------------------------- training
    def step(self, samples) -> dict[str, float]:
        images, targets, b, t = collate(samples, self.model, self.device)
        base = (self.iteration * self.world + self.rank) * len(samples)
        gens = seeded_generators([self.cfg.seed * 1_000_003 + base + j for j in range(len(samples))], self.device)
        autocast = torch.autocast(self.device.type, dtype=self.amp_dtype) if self.amp_dtype else torch.autocast(self.device.type, enabled=False)
        with autocast:
            losses = stage_losses(self.cfg.stage, self.model, self.trained, images, targets, b, t, self.criterion, self.iteration, self.cfg.iters, gens)
        total = sum(losses.values())
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(total).backward()
        self.scaler.unscale_(self.optimizer)
        if self.cfg.clip_grad > 0:
            torch.nn.utils.clip_grad_norm_(self.module.parameters(), self.cfg.clip_grad)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()
        out = {"loss": float(total.detach())}
        for key in ("loss_ce", "loss_mask", "loss_dice"):
            if key in losses:
                out[key] = float(losses[key].detach())
        return out

    def write_metrics(self, record: dict) -> None:
        if not self.is_main:
            return
        with open(self.folder / "metrics.jsonl", "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")
        board = self._tensorboard()
        if board is not None:
            flat = {**{k: v for k, v in record.items() if k != "eval"}, **{f"eval/{k}": v for k, v in (record.get("eval") or {}).items()}}
            for key, value in flat.items():
                if key != "iteration" and isinstance(value, (int, float)) and value is not None:
                    board.add_scalar(key, value, record["iteration"])
            board.flush()

    def _tensorboard(self):
        """A SummaryWriter in the stage folder when TensorBoard is installed (optional)."""
        if not hasattr(self, "_board"):
            try:
                from torch.utils.tensorboard import SummaryWriter

                self._board = SummaryWriter(str(self.folder / "tensorboard"))
            except Exception:  # noqa: BLE001 - tensorboard not installed: metrics.jsonl only
                self._board = None
        return self._board

    def train(self, progress=None) -> dict:
        cfg = self.cfg
        if self.is_main:
            self.folder.mkdir(parents=True, exist_ok=True)
            (self.folder / "config.toml").write_text(to_toml(cfg))
        self.model.train(False)
        freeze_for_stage(self.model, cfg.stage)
        start = self.iteration
        t0 = time.perf_counter()
        last_eval = None
        try:
            for it, samples in self.stream.iterate(start, cfg.iters):
                self.iteration = it
                record = self.step(samples)
                self.iteration = it + 1
                if progress:
                    progress(self.iteration, record)
                if self.iteration % cfg.log_every == 0 or self.iteration == cfg.iters:
                    rate = (self.iteration - start) / (time.perf_counter() - t0)
                    self.write_metrics({"iteration": self.iteration, "lr": self.optimizer.param_groups[0]["lr"], "it_per_s": round(rate, 3), **record})
                if cfg.checkpoint_every and self.iteration % cfg.checkpoint_every == 0 and self.iteration < cfg.iters:
                    self.save_checkpoint()
                if cfg.val and cfg.eval_every and self.iteration % cfg.eval_every == 0 and self.iteration < cfg.iters:
                    last_eval = self.evaluate()
        except KeyboardInterrupt:
            self.save_checkpoint()
            raise
        self.save_checkpoint()
        if cfg.val:
            last_eval = self.evaluate()
        return {"iterations": self.iteration, "seconds": time.perf_counter() - t0, "eval": last_eval, "origin": self.origin}

    def evaluate(self) -> dict | None:
        """Validation AP of this stage's mode on the --val set; keeps `best` weights."""
        if not self.is_main:
            if self.world > 1:
                dist.barrier()
            return None
        from dvis_cli.training.validate import validate

        self.module.eval()
        metrics = validate(self.model, self.cfg.val, EVAL_MODE[self.cfg.stage], self.cfg.eval_videos)
        freeze_for_stage(self.model, self.cfg.stage)
        self.write_metrics({"iteration": self.iteration, "eval": metrics})
        if metrics["AP"] > self.best_ap:
            self.best_ap = metrics["AP"]
            self.export_weights("best")
        if self.world > 1:
            dist.barrier()
        return metrics


def set_seed(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
