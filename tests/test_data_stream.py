"""Training clips and the deterministic batch stream."""
from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch

from dvis_cli.data.dataset import ClipDataset, TrainingStream, VideoSample, parse_data_spec
from dvis_cli.data.masks import decode_segmentation
from dvis_cli.data.synth import SynthConfig, write_dataset
from dvis_cli.data.transforms import AugmentConfig
from dvis_cli.data.ytvis import load_ytvis
from dvis_cli.errors import InputError

SMALL = AugmentConfig(min_sizes=(48, 64), max_size=200)


@pytest.fixture(scope="module")
def synth(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("synth") / "ds"
    write_dataset(out, SynthConfig(videos=3, frames=8, height=48, width=64, seed=1))
    return out


@pytest.fixture(scope="module")
def dataset(synth):
    return load_ytvis(synth)


def _same(a: VideoSample, b: VideoSample) -> bool:
    return (
        a.video == b.video and a.frame_indices == b.frame_indices
        and all(torch.equal(getattr(a, k), getattr(b, k)) for k in ("images", "labels", "masks", "present", "track_ids"))
    )


def test_sample_matches_annotations(dataset):
    clips = ClipDataset(dataset, 5, 2, AugmentConfig(min_sizes=(48,), flip=False))
    s = clips.sample(1, np.random.default_rng(0))
    video = dataset.videos[1]
    assert s.video == video.name and s.images.dtype == torch.float32 and s.images.shape == (5, 3, 48, 64)
    assert s.images.max() > 1 and s.images.max() <= 255
    assert s.masks.dtype == torch.bool and s.masks.shape[1:] == (5, 48, 64)
    n = s.labels.shape[0]
    assert s.present.shape == (n, 5) and s.track_ids.shape == (n,) and n > 0
    # identity augmentation: the masks are the decoded annotations of the sampled frames
    by_id = {inst.track_id: inst for inst in video.instances}
    visible = {i.track_id for i in video.instances if any(i.segmentations[f] is not None for f in s.frame_indices)}
    assert set(s.track_ids.tolist()) == visible
    contiguous = dataset.contiguous_ids()
    for k, tid in enumerate(s.track_ids.tolist()):
        inst = by_id[tid]
        assert s.labels[k] == contiguous[inst.category_id]
        for t, f in enumerate(s.frame_indices):
            want = decode_segmentation(inst.segmentations[f], 48, 64)
            assert np.array_equal(s.masks[k, t].numpy(), want)
            assert bool(s.present[k, t]) == bool(want.any())
    # the official label quirk: no-object where the instance is absent in the last frame
    official = s.official_labels(5)
    assert torch.equal(official[s.present[:, -1]], s.labels[s.present[:, -1]])
    assert (official[~s.present[:, -1]] == 5).all()


def test_sample_deterministic_and_flip_consistent(dataset):
    clips = ClipDataset(dataset, 3, 1, SMALL, reverse_prob=0.5)
    for seed in range(8):
        a = clips.sample(0, np.random.default_rng(seed))
        b = clips.sample(0, np.random.default_rng(seed))
        assert _same(a, b)
        # all frames share one size (clip-consistent resize)
        assert a.images.shape[0] == 3 and a.masks.shape[-2:] == a.images.shape[-2:]
    # a flip flips every frame and every mask together
    plain = ClipDataset(dataset, 3, 1, AugmentConfig(min_sizes=(48,), flip=False))
    flipped = ClipDataset(dataset, 3, 1, AugmentConfig(min_sizes=(48,), flip=True, flip_prob=1.0))
    for seed in range(4):
        p = plain.sample(2, np.random.default_rng(seed))
        f = flipped.sample(2, np.random.default_rng(seed))
        assert p.frame_indices == f.frame_indices and p.masks.shape[0] > 0
        assert torch.equal(f.images, p.images.flip(-1))
        assert torch.equal(f.masks, p.masks.flip(-1))
        assert torch.equal(f.track_ids, p.track_ids) and torch.equal(f.present, p.present)


def test_instances_absent_from_all_sampled_frames_are_dropped(dataset):
    clips = ClipDataset(dataset, 1, 0, SMALL)
    rng = np.random.default_rng(5)
    for _ in range(20):
        s = clips.sample(0, rng)
        assert s.present.all()  # one frame: every kept instance is in it
        video = dataset.videos[0]
        f = s.frame_indices[0]
        assert s.track_ids.tolist() == [i.track_id for i in video.instances if i.segmentations[f] is not None]


def test_batch_deterministic_and_rank_dependent(dataset):
    clips = ClipDataset(dataset, 3, 1, SMALL, reverse_prob=0.5)
    a = TrainingStream([clips], [1.0], batch_size=2, seed=11)
    b = TrainingStream([clips], [1.0], batch_size=2, seed=11)
    for i in (0, 5, 17):
        x, y = a.batch(i), b.batch(i)
        assert len(x) == 2 and all(_same(p, q) for p, q in zip(x, y))
    r1 = TrainingStream([clips], [1.0], batch_size=2, seed=11, rank=1, world_size=2)
    assert not all(_same(p, q) for p, q in zip(a.batch(3), r1.batch(3)))
    other_seed = TrainingStream([clips], [1.0], batch_size=2, seed=12)
    assert not all(_same(p, q) for i in range(3) for p, q in zip(a.batch(i), other_seed.batch(i)))


def test_epoch_covers_every_video_across_ranks(dataset):
    clips = ClipDataset(dataset, 1, 0, SMALL)
    streams = [TrainingStream([clips], [1.0], batch_size=1, seed=4, rank=r, world_size=3) for r in range(3)]
    for epoch in range(3):  # 3 videos, 3 ranks x 1 clip: one epoch per iteration
        seen = sorted(s.element(epoch, 0)[1] for s in streams)
        assert seen == [0, 1, 2]


@pytest.mark.parametrize("workers", [0, 2])
def test_iterate_equals_batch(dataset, workers):
    clips = ClipDataset(dataset, 3, 1, SMALL, reverse_prob=0.5)
    stream = TrainingStream([clips], [1.0], batch_size=2, seed=3, workers=workers)
    got = list(stream.iterate(4, 9))
    assert [i for i, _ in got] == [4, 5, 6, 7, 8]
    for i, batch in got:
        assert all(_same(p, q) for p, q in zip(batch, stream.batch(i)))
    # an open-ended stream keeps going
    it = stream.iterate(10)
    assert [next(it)[0] for _ in range(3)] == [10, 11, 12]
    it.close()


def test_ratio_mixing(dataset, synth, tmp_path):
    other = tmp_path / "other"
    write_dataset(other, SynthConfig(videos=2, frames=4, height=32, width=32, seed=9))
    first = ClipDataset(dataset, 1, 0, SMALL)
    second = ClipDataset(load_ytvis(other), 1, 0, SMALL)
    stream = TrainingStream([first, second], [3.0, 1.0], batch_size=4, seed=0)
    counts = Counter(stream.element(i, slot)[0] for i in range(1000) for slot in range(4))
    assert abs(counts[0] / 4000 - 0.75) < 0.03
    kinds = {s.dataset for i in range(6) for s in stream.batch(i)}
    assert kinds == {first.name, second.name}
    only_second = TrainingStream([first, second], [0.0, 1.0], batch_size=2, seed=0)
    assert all(only_second.element(i, s)[0] == 1 for i in range(200) for s in range(2))


def test_stream_arguments(dataset):
    clips = ClipDataset(dataset, 1, 0, SMALL)
    with pytest.raises(InputError):
        TrainingStream([clips], [1.0, 2.0], 1, 0)
    with pytest.raises(InputError):
        TrainingStream([clips], [0.0], 1, 0)
    with pytest.raises(InputError):
        TrainingStream([clips], [1.0], 1, 0, rank=2, world_size=2)


def test_parse_data_spec(tmp_path):
    assert parse_data_spec("data/ovis:0.5") == ("data/ovis", 0.5)
    assert parse_data_spec("data/ovis") == ("data/ovis", 1.0)
    assert parse_data_spec("a:b/c.json:2") == ("a:b/c.json", 2.0)
    odd = tmp_path / "x:y"
    odd.mkdir()
    assert parse_data_spec(str(odd)) == (str(odd), 1.0)
    with pytest.raises(InputError, match="must be a number"):
        parse_data_spec("data/ovis:half")
    with pytest.raises(InputError, match="positive"):
        parse_data_spec("data/ovis:0")
    with pytest.raises(InputError):
        parse_data_spec("")


def test_empty_video_skipped(synth, tmp_path):
    folder = tmp_path / "copy"
    import shutil

    shutil.copytree(synth, folder)
    path = folder / "annotations.json"
    data = json.loads(path.read_text())
    first = data["videos"][0]["id"]
    data["annotations"] = [a for a in data["annotations"] if a["video_id"] != first]
    path.write_text(json.dumps(data))
    ds = load_ytvis(folder)
    assert len(ClipDataset(ds, 1, 0, SMALL)) == 2
    assert len(ClipDataset(ds, 1, 0, SMALL, skip_empty=False)) == 3
