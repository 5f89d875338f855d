"""Clip-consistent augmentation: images and masks move together, every frame alike."""
from __future__ import annotations

import numpy as np
import pytest

from dvis_cli.data.transforms import AugmentConfig, ClipTransform, plan_clip_transform, resized_shape, rotation_angles


def _scene(h=60, w=80):
    mask = np.zeros((h, w), bool)
    mask[10:30, 5:25] = True  # off-centre so a flip shows
    image = np.zeros((h, w, 3), np.uint8)
    image[mask] = (250, 10, 10)
    image[~mask] = (10, 10, 250)
    return image, mask


def test_resized_shape():
    assert resized_shape(480, 640, 360, 1333) == (360, 480)
    assert resized_shape(640, 480, 360, 1333) == (480, 360)
    assert resized_shape(100, 1000, 480, 1333) == (133, 1333)  # the long edge is capped
    assert resized_shape(48, 64, 240, 1333) == (240, 320)


def test_image_and_mask_transform_together():
    image, mask = _scene()
    cfg = AugmentConfig(min_sizes=(90, 120), max_size=400, crop=True, crop_range=(40, 60), crop_min_sizes=(70,), crop_prob=1.0)
    for seed in range(20):
        tf = plan_clip_transform(60, 80, cfg, np.random.default_rng(seed))
        assert tf.crop_box is not None
        out_img = tf.apply_image(image)
        out_mask = tf.apply_mask(mask)
        assert out_img.shape[:2] == out_mask.shape == tf.output_shape
        red = out_img[..., 0] > 127
        assert (red == out_mask).mean() > 0.97


def test_flip_flips_image_and_mask():
    image, mask = _scene()
    plain = ClipTransform(60, 80, None, None, (90, 120), False)
    flipped = ClipTransform(60, 80, None, None, (90, 120), True)
    assert np.array_equal(flipped.apply_image(image), plain.apply_image(image)[:, ::-1])
    assert np.array_equal(flipped.apply_mask(mask), plain.apply_mask(mask)[:, ::-1])
    # the object sits on the left before the flip and on the right after it
    cols = np.nonzero(flipped.apply_mask(mask).any(axis=0))[0]
    assert cols.min() > 60


def test_same_transform_for_every_frame():
    image, mask = _scene()
    tf = plan_clip_transform(60, 80, AugmentConfig(crop=True, crop_range=(30, 50)), np.random.default_rng(3), num_frames=5)
    outs = [tf.apply_image(image, t) for t in range(5)]
    assert all(np.array_equal(outs[0], o) for o in outs)


def test_flip_probability_and_choice_of_sizes():
    cfg = AugmentConfig(min_sizes=(240, 360, 480))
    tfs = [plan_clip_transform(48, 64, cfg, np.random.default_rng(s)) for s in range(400)]
    assert 150 < sum(t.flip for t in tfs) < 250
    assert {t.output_shape for t in tfs} == {(240, 320), (360, 480), (480, 640)}
    assert not any(t.flip for t in (plan_clip_transform(48, 64, AugmentConfig(flip=False), np.random.default_rng(s)) for s in range(50)))
    # crop branch is taken about half of the time, sizes within range
    cfg = AugmentConfig(crop=True)
    tfs = [plan_clip_transform(480, 640, cfg, np.random.default_rng(s)) for s in range(400)]
    cropped = [t for t in tfs if t.crop_box is not None]
    assert 150 < len(cropped) < 250
    for t in cropped:
        h, w = t.crop_resize
        assert min(h, w) in (400, 500, 600)
        y0, x0, ch, cw = t.crop_box
        assert 384 <= ch <= min(600, h) and 384 <= cw <= min(600, w)
        assert y0 + ch <= h and x0 + cw <= w


def test_rotation_angles_monotonic():
    for seed in range(50):
        a = rotation_angles(7, np.random.default_rng(seed))
        d = np.diff(a)
        assert (d >= 0).all() or (d <= 0).all()
        assert np.abs(a).max() <= 15


def test_bad_config():
    with pytest.raises(ValueError):
        AugmentConfig(crop=True, crop_range=(600, 384)).validate()
    with pytest.raises(ValueError):
        AugmentConfig(crop_type="relative").validate()
