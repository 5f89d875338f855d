"""Training clips and batches: what the training engine consumes.

`ClipDataset.sample(index, rng)` turns one video (or one COCO image as a pseudo video) into a
`VideoSample`: the official frame selection (`sampling`), one clip-consistent augmentation
(`transforms`) and the targets of every instance visible in at least one sampled frame after
augmentation (an instance cropped away in every frame is dropped, as the official target
preparation drops ids that are -1 in every frame).

`TrainingStream.batch(i)` is a pure function of (seed, i, rank): batch element `slot` draws from
`numpy.random.default_rng([seed, i, rank, slot])` which data set it comes from (by the ratios, the
CombinedDataLoader idea) and how its clip is sampled and augmented.  Which video it shows is the
element's global position ``(i * world_size + rank) * batch_size + slot`` looked up in a per-epoch
permutation of that data set, so a single data set is seen video by video, without repeats within
an epoch, across all processes.  Resuming at iteration i therefore needs no RNG state.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
import torch

from dvis_cli.errors import InputError
from dvis_cli.io.image_sequence import read_image

from .coco_pseudo import CocoPseudoVideos
from .masks import decode_segmentation
from .sampling import sample_frame_indices
from .transforms import AugmentConfig, ClipTransform, plan_clip_transform
from .vipseg import PanopticVideoDataset, read_panoptic_ids
from .ytvis import VideoDataset


@dataclass
class VideoSample:
    images: torch.Tensor  # (T, 3, H, W) float32 RGB in 0..255, not normalised, not padded
    labels: torch.Tensor  # (N,) long: each instance's contiguous class 0..K-1
    masks: torch.Tensor  # (N, T, H, W) bool, empty where the instance is absent
    present: torch.Tensor  # (N, T) bool
    track_ids: torch.Tensor  # (N,) long: the dataset's instance ids
    video: str  # video name
    frame_indices: list[int]
    dataset: str = ""  # where the clip comes from (the annotation file)

    @property
    def num_frames(self) -> int:
        return int(self.images.shape[0])

    @property
    def image_size(self) -> tuple[int, int]:
        return int(self.images.shape[-2]), int(self.images.shape[-1])

    def official_labels(self, num_classes: int) -> torch.Tensor:
        """The labels the official targets carry: the class seen in the LAST sampled frame, so an
        instance absent there gets the no-object class `num_classes` (a Mask2Former-VIS quirk)."""
        if self.labels.numel() == 0:
            return self.labels.clone()
        return torch.where(self.present[:, -1], self.labels, torch.full_like(self.labels, num_classes))


def _read_frame(path: str, height: int, width: int, video: str) -> np.ndarray:
    image = read_image(path)
    if image is None:
        raise InputError(f"cannot read image {path} (video '{video}')")
    if image.shape[:2] != (height, width):
        raise InputError(
            f"image {path} is {image.shape[1]}x{image.shape[0]} but the annotations of video '{video}' "
            f"say {width}x{height}"
        )
    return image


def _images_tensor(frames: list[np.ndarray]) -> torch.Tensor:
    stacked = np.stack(frames)  # (T, H, W, 3) uint8
    return torch.from_numpy(np.ascontiguousarray(stacked.transpose(0, 3, 1, 2))).float()


def _targets(
    per_instance: list[tuple[int, int, list[np.ndarray]]], num_frames: int, size: tuple[int, int]
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(labels, masks, present, track_ids) from (track id, class, per-frame masks), dropping
    instances empty in every frame."""
    kept = []
    for track_id, label, masks in per_instance:
        stack = np.stack(masks)
        present = stack.reshape(num_frames, -1).any(axis=1)
        if present.any():
            kept.append((track_id, label, stack, present))
    h, w = size
    if not kept:
        return (
            torch.zeros(0, dtype=torch.long),
            torch.zeros((0, num_frames, h, w), dtype=torch.bool),
            torch.zeros((0, num_frames), dtype=torch.bool),
            torch.zeros(0, dtype=torch.long),
        )
    labels = torch.tensor([k[1] for k in kept], dtype=torch.long)
    masks = torch.from_numpy(np.stack([k[2] for k in kept]))
    present = torch.from_numpy(np.stack([k[3] for k in kept]))
    track_ids = torch.tensor([k[0] for k in kept], dtype=torch.long)
    return labels, masks, present, track_ids


class ClipDataset:
    """Training clips of `num_frames` frames from a video data set or COCO pseudo videos."""

    def __init__(
        self,
        source: VideoDataset | CocoPseudoVideos | PanopticVideoDataset,
        num_frames: int,
        frame_range: int,
        augment: AugmentConfig,
        reverse_prob: float = 0.0,
        skip_empty: bool = True,
    ):
        if num_frames < 1:
            raise ValueError(f"num_frames must be at least 1, got {num_frames}")
        if frame_range < 0:
            raise ValueError(f"frame_range must be non-negative, got {frame_range}")
        augment.validate()
        self.source = source
        self.num_frames = num_frames
        self.frame_range = frame_range
        self.augment = augment
        self.reverse_prob = reverse_prob
        self.contiguous = source.contiguous_ids()
        self.name = str(getattr(source, "source", None) or type(source).__name__)
        if isinstance(source, VideoDataset):
            self._items = [
                i for i, v in enumerate(source.videos)
                if not skip_empty or any(s is not None for inst in v.instances for s in inst.segmentations)
            ]
        elif isinstance(source, CocoPseudoVideos):
            self._items = list(range(len(source.images)))
        elif isinstance(source, PanopticVideoDataset):
            self._items = [i for i, v in enumerate(source.videos) if not skip_empty or any(v.segments)]
        else:
            raise TypeError(f"cannot make clips of {type(source).__name__}")
        if not self._items:
            raise InputError(f"{self.name}: no video with an annotated instance to train on")

    def __len__(self) -> int:
        return len(self._items)

    def class_set(self):
        return self.source.class_set()

    def sample(self, index: int, rng: np.random.Generator) -> VideoSample:
        """The clip of item `index`; a pure function of (index, the state of `rng`)."""
        item = self._items[index]
        if isinstance(self.source, VideoDataset):
            return self._video_clip(item, rng)
        if isinstance(self.source, PanopticVideoDataset):
            return self._panoptic_clip(item, rng)
        return self._pseudo_clip(item, rng)

    def _video_clip(self, item: int, rng: np.random.Generator) -> VideoSample:
        video = self.source.videos[item]
        indices = sample_frame_indices(video.length, self.num_frames, self.frame_range, rng, self.reverse_prob)
        tf = plan_clip_transform(video.height, video.width, self.augment, rng, len(indices))
        frames = {}
        for f in dict.fromkeys(indices):
            frames[f] = tf.apply_image(_read_frame(video.file_paths[f], video.height, video.width, video.name))
        images = _images_tensor([frames[f] for f in indices])

        empty = np.zeros(tf.output_shape, dtype=bool)
        per_instance = []
        for inst in video.instances:
            if all(inst.segmentations[f] is None for f in indices):
                continue
            cache: dict[int, np.ndarray] = {}
            masks = []
            for t, f in enumerate(indices):
                seg = inst.segmentations[f]
                if seg is None:
                    masks.append(empty)
                    continue
                if f not in cache:
                    try:
                        decoded = decode_segmentation(seg, video.height, video.width)
                    except ValueError as err:
                        raise InputError(f"{self.name}: instance {inst.track_id} of video '{video.name}', frame {f}: {err}") from None
                    cache[f] = tf.apply_mask(decoded)
                masks.append(cache[f])
            per_instance.append((inst.track_id, self.contiguous[inst.category_id], masks))
        labels, masks, present, track_ids = _targets(per_instance, len(indices), tf.output_shape)
        return VideoSample(images, labels, masks, present, track_ids, video.name, indices, self.name)

    def _pseudo_clip(self, item: int, rng: np.random.Generator) -> VideoSample:
        record = self.source.images[item]
        lo, hi = self.source.length_range
        virtual_length = int(rng.integers(lo, hi + 1))
        indices = sample_frame_indices(virtual_length, self.num_frames, self.frame_range, rng, self.reverse_prob)
        num = len(indices)
        tf: ClipTransform = plan_clip_transform(
            record.height, record.width, self.augment, rng, num, rotation=self.source.max_rotation
        )
        image = _read_frame(record.file_path, record.height, record.width, record.name)
        images = _images_tensor([tf.apply_image(image, t) for t in range(num)])
        per_instance = []
        for inst in record.instances:
            try:
                decoded = decode_segmentation(inst.segmentation, record.height, record.width)
            except ValueError as err:
                raise InputError(f"{self.name}: annotation {inst.track_id} of image '{record.name}': {err}") from None
            masks = [tf.apply_mask(decoded, t) for t in range(num)]
            per_instance.append((inst.track_id, self.contiguous[inst.category_id], masks))
        labels, masks, present, track_ids = _targets(per_instance, num, tf.output_shape)
        return VideoSample(images, labels, masks, present, track_ids, record.name, indices, self.name)


    def _panoptic_clip(self, item: int, rng: np.random.Generator) -> VideoSample:
        video = self.source.videos[item]
        indices = sample_frame_indices(video.length, self.num_frames, self.frame_range, rng, self.reverse_prob)
        tf = plan_clip_transform(video.height, video.width, self.augment, rng, len(indices))
        frames, ids = {}, {}
        for f in dict.fromkeys(indices):
            frames[f] = tf.apply_image(_read_frame(video.file_paths[f], video.height, video.width, video.name))
            pan = read_panoptic_ids(video.panoptic_paths[f])
            if pan.shape != (video.height, video.width):
                raise InputError(
                    f"panoptic PNG {video.panoptic_paths[f]} is {pan.shape[1]}x{pan.shape[0]}, "
                    f"the frames of video '{video.name}' are {video.width}x{video.height}"
                )
            ids[f] = tf.apply_labels(pan)
        images = _images_tensor([frames[f] for f in indices])
        # segments in first-seen order over the sampled frames (the official mapper's dict order)
        classes: dict[int, int] = {}
        for f in indices:
            for seg in video.segments[f]:
                classes.setdefault(seg.id, seg.category_id)
        per_instance = [
            (sid, self.contiguous[cat], [ids[f] == sid for f in indices]) for sid, cat in classes.items()
        ]
        labels, masks, present, track_ids = _targets(per_instance, len(indices), tf.output_shape)
        return VideoSample(images, labels, masks, present, track_ids, video.name, indices, self.name)


def parse_data_spec(spec: str) -> tuple[str, float]:
    """'path/to/ds:0.5' -> ('path/to/ds', 0.5); a spec without ':ratio' has ratio 1."""
    text = str(spec).strip()
    if not text:
        raise InputError("empty --data value")
    head, sep, tail = text.rpartition(":")
    if not sep:
        return text, 1.0
    try:
        ratio = float(tail)
    except ValueError:
        if Path(text).exists():
            return text, 1.0
        raise InputError(f"--data {text!r}: the ratio after ':' must be a number, got {tail!r}") from None
    if not head:
        raise InputError(f"--data {text!r} names no data set before ':'")
    if not math.isfinite(ratio) or ratio <= 0:
        raise InputError(f"--data {text!r}: the ratio must be a positive number, got {tail}")
    return head, ratio


# ---------------------------------------------------------------------------------------------
# batches
# ---------------------------------------------------------------------------------------------

_PERMUTATION_TAG = 0x9E3779B9  # separates the permutation streams from the per-element streams


class TrainingStream:
    """Batches for iteration i, deterministic from (seed, i, rank): exact resume needs no RNG state.

    `batch_size` is the number of clips per process and iteration (the official IMS_PER_BATCH
    divided by the number of processes).
    """

    def __init__(
        self,
        datasets: list[ClipDataset],
        ratios: list[float],
        batch_size: int,
        seed: int,
        rank: int = 0,
        world_size: int = 1,
        workers: int = 0,
    ):
        if not datasets:
            raise InputError("no training data set given")
        if len(ratios) != len(datasets):
            raise InputError(f"{len(datasets)} data sets but {len(ratios)} ratios")
        if any(not math.isfinite(r) or r < 0 for r in ratios) or sum(ratios) <= 0:
            raise InputError(f"data set ratios must be non-negative with a positive sum, got {list(ratios)}")
        if batch_size < 1:
            raise InputError(f"batch size must be at least 1, got {batch_size}")
        if world_size < 1 or not 0 <= rank < world_size:
            raise InputError(f"rank {rank} is not in a world of {world_size} processes")
        if seed < 0:
            raise InputError(f"seed must be non-negative, got {seed}")
        if workers < 0:
            raise InputError(f"workers must be non-negative, got {workers}")
        self.datasets = list(datasets)
        total = float(sum(ratios))
        self.ratios = [float(r) / total for r in ratios]
        self._cumulative = np.cumsum(self.ratios)
        self.batch_size = batch_size
        self.seed = seed
        self.rank = rank
        self.world_size = world_size
        self.workers = workers
        self._permutations: dict[tuple[int, int], np.ndarray] = {}

    def _choose_dataset(self, rng: np.random.Generator) -> int:
        u = rng.random()
        d = int(np.searchsorted(self._cumulative, u, side="right"))
        d = min(d, len(self.datasets) - 1)
        while self.ratios[d] == 0:  # float round-off at the top end
            d -= 1
        return d

    def _permutation(self, dataset: int, epoch: int) -> np.ndarray:
        key = (dataset, epoch)
        perm = self._permutations.get(key)
        if perm is None:
            rng = np.random.default_rng([self.seed, _PERMUTATION_TAG, dataset, epoch])
            perm = rng.permutation(len(self.datasets[dataset]))
            if len(self._permutations) >= 16:
                self._permutations.pop(next(iter(self._permutations)))
            self._permutations[key] = perm
        return perm

    def element(self, iteration: int, slot: int) -> tuple[int, int, np.random.Generator]:
        """(data set, item index, generator) of batch element `slot` of `iteration` on this rank."""
        # Keyed by the element's place in the global batch, not by (rank, slot): N processes with
        # batch b draw exactly the clips one process with batch N*b draws.
        rng = np.random.default_rng([self.seed, iteration, self.rank * self.batch_size + slot])
        d = self._choose_dataset(rng)
        n = len(self.datasets[d])
        position = (iteration * self.world_size + self.rank) * self.batch_size + slot
        index = int(self._permutation(d, position // n)[position % n])
        return d, index, rng

    def batch(self, iteration: int) -> list[VideoSample]:
        """This process's batch for `iteration`."""
        if iteration < 0:
            raise ValueError(f"iteration must be non-negative, got {iteration}")
        out = []
        for slot in range(self.batch_size):
            d, index, rng = self.element(iteration, slot)
            out.append(self.datasets[d].sample(index, rng))
        return out

    def iterate(self, start_iteration: int, end_iteration: int | None = None) -> Iterator[tuple[int, list[VideoSample]]]:
        """(i, batch(i)) for i = start, start + 1, ... (up to `end_iteration`, excluded, if given).

        With `workers` > 0 the batches are built ahead in DataLoader worker processes; the content
        and order are the same as calling `batch(i)`.
        """
        if self.workers == 0:
            i = start_iteration
            while end_iteration is None or i < end_iteration:
                yield i, self.batch(i)
                i += 1
            return
        loader = torch.utils.data.DataLoader(
            _BatchIterable(self, start_iteration, end_iteration),
            batch_size=None,
            num_workers=self.workers,
            collate_fn=_as_is,
            prefetch_factor=2,
        )
        # (No worker set-up: DataLoader already runs torch single-threaded there, and calling
        # cv2.setNumThreads in a worker forked after the parent used OpenCV's pool hangs it.)
        yield from loader


def _as_is(item):
    return item


class _BatchIterable(torch.utils.data.IterableDataset):
    """Iterations start, start + 1, ... dealt round-robin to the DataLoader workers, which the
    DataLoader reads back in the same round-robin order."""

    def __init__(self, stream: TrainingStream, start: int, end: int | None):
        super().__init__()
        self.stream = stream
        self.start = start
        self.end = end

    def __iter__(self):
        info = torch.utils.data.get_worker_info()
        worker, workers = (0, 1) if info is None else (info.id, info.num_workers)
        i = self.start + worker
        while self.end is None or i < self.end:
            yield i, self.stream.batch(i)
            i += workers
