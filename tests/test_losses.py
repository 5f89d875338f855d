"""Matchers and losses of the training stages: point sampling, Hungarian / consistent matching,
SetCriterion (per-frame and video supervision, deep supervision, batch independence)."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from dvis_cli.training import (
    ConsistentMatcher,
    HungarianMatcher,
    SetCriterion,
    VideoTargets,
    frames_as_images,
    matching_phase,
    point_bce_loss,
    point_dice_loss,
    point_sample,
    seeded_generators,
    uncertain_point_coords,
)

K = 4  # classes


# ---------------------------------------------------------------- helpers


def rect_masks(rects, t: int, size: int) -> torch.Tensor:
    """rects: per object a list over frames of (y0, y1, x0, x1) or None -> (N, T, size, size) bool."""
    masks = torch.zeros(len(rects), t, size, size, dtype=torch.bool)
    for n, frames in enumerate(rects):
        for f, r in enumerate(frames):
            if r is not None:
                y0, y1, x0, x1 = r
                masks[n, f, y0:y1, x0:x1] = True
    return masks


def targets_from_rects(labels, rects, size: int = 32) -> VideoTargets:
    t = len(rects[0])
    masks = rect_masks(rects, t, size)
    present = torch.tensor([[r is not None for r in frames] for frames in rects])
    return VideoTargets(torch.tensor(labels, dtype=torch.int64), masks, present)


def down4(masks: torch.Tensor) -> torch.Tensor:
    """Input-resolution bool masks -> 1/4-resolution float (exact for 4-px aligned rectangles)."""
    small = F.avg_pool2d(masks.float().flatten(0, -3).unsqueeze(1), 4).squeeze(1)
    return small.reshape(*masks.shape[:-2], *small.shape[-2:])


def random_targets(seed: int, n: int, t: int, size: int = 32) -> VideoTargets:
    g = torch.Generator().manual_seed(seed)
    rects = []
    for _ in range(n):
        frames = []
        for _f in range(t):
            y0, x0 = (int(v) for v in torch.randint(0, size // 2, (2,), generator=g))
            hh, ww = (int(v) for v in torch.randint(4, size // 2, (2,), generator=g))
            frames.append((y0, y0 + hh, x0, x0 + ww) if torch.rand(1, generator=g) < 0.75 else None)
        if all(f is None for f in frames):
            frames[0] = (0, 8, 0, 8)
        rects.append(frames)
    labels = torch.randint(0, K, (n,), generator=g).tolist()
    return targets_from_rects(labels, rects, size)


def random_outputs(seed: int, b: int, t: int, q: int, h: int = 8, num_aux: int = 2, video: bool = False):
    g = torch.Generator().manual_seed(seed)

    def layer():
        logits = torch.randn(b, 1 if video else t, q, K + 1, generator=g)
        if video:
            logits = logits.expand(b, t, q, K + 1).clone()
        return {
            "pred_logits": logits.requires_grad_(),
            "pred_masks": (3 * torch.randn(b, t, q, h, h, generator=g)).requires_grad_(),
        }

    out = layer()
    out["aux_outputs"] = [layer() for _ in range(num_aux)]
    return out


def slice_batch(outputs, b: int):
    def one(layer):
        return {k: v[b : b + 1] for k, v in layer.items() if k != "aux_outputs"}

    out = one(outputs)
    out["aux_outputs"] = [one(a) for a in outputs.get("aux_outputs", [])]
    return out


def bilinear(img: torch.Tensor, x: float, y: float) -> float:
    """Reference grid_sample (align_corners=False, zero padding) of a 2-D image at (x, y) in [0,1]."""
    h, w = img.shape
    px, py = x * w - 0.5, y * h - 0.5
    x0, y0 = math.floor(px), math.floor(py)
    fx, fy = px - x0, py - y0
    total = 0.0
    for yy, wy in ((y0, 1 - fy), (y0 + 1, fy)):
        for xx, wx in ((x0, 1 - fx), (x0 + 1, fx)):
            if 0 <= yy < h and 0 <= xx < w:
                total += wy * wx * float(img[yy, xx])
    return total


# ---------------------------------------------------------------- point sampling


def test_point_sample_is_bilinear_with_zero_padding():
    g = torch.Generator().manual_seed(0)
    img = torch.randn(2, 3, 5, 7, generator=g)
    coords = torch.rand(2, 11, 2, generator=g) * 1.2 - 0.1  # some points in the zero border
    got = point_sample(img, coords)
    assert got.shape == (2, 3, 11)
    for n in range(2):
        for c in range(3):
            for p in range(11):
                ref = bilinear(img[n, c], float(coords[n, p, 0]), float(coords[n, p, 1]))
                assert got[n, c, p].item() == pytest.approx(ref, abs=1e-5)
    # pixel centres read the pixel itself, x first
    centre = torch.tensor([[[(2 + 0.5) / 7, (1 + 0.5) / 5]]])
    assert point_sample(img[:1], centre)[0, :, 0].tolist() == pytest.approx(img[0, :, 1, 2].tolist())


def test_sample_masks_in_chunks_equals_one_call(monkeypatch):
    from dvis_cli.training import point_sampling

    g = torch.Generator().manual_seed(2)
    masks = torch.rand(5, 2, 9, 9, generator=g) > 0.5
    shared = torch.rand(1, 13, 2, generator=g)
    own = torch.rand(5, 13, 2, generator=g)
    whole_shared = point_sample(masks.float(), shared.expand(5, -1, -1))
    whole_own = point_sample(masks.float(), own)
    monkeypatch.setattr(point_sampling, "_CHUNK_ELEMENTS", 2 * 2 * 81)  # two masks at a time
    assert torch.equal(point_sampling.sample_masks(masks, shared), whole_shared)
    assert torch.equal(point_sampling.sample_masks(masks, own), whole_own)
    assert point_sampling.sample_masks(masks[:0], shared).shape == (0, 2, 13)


def test_uncertain_points_are_the_most_uncertain_candidates():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(3, 1, 16, 16, generator=g) * 5
    coords = uncertain_point_coords(logits, 40, 3.0, 0.75, torch.Generator().manual_seed(1))
    assert coords.shape == (3, 40, 2)
    assert ((coords >= 0) & (coords < 1)).all()
    # the same generator draws the 120 candidates first, then the 10 fresh uniform points
    replay = torch.Generator().manual_seed(1)
    candidates = torch.rand(3, 120, 2, generator=replay)
    fresh = torch.rand(3, 10, 2, generator=replay)
    uncertainty = -point_sample(logits, candidates)[:, 0].abs()
    for n in range(3):
        top = candidates[n, uncertainty[n].argsort(descending=True)[:30]]
        assert torch.equal(coords[n, :30].sort(0).values, top.sort(0).values)
    assert torch.equal(coords[:, 30:], fresh)
    again = uncertain_point_coords(logits, 40, 3.0, 0.75, torch.Generator().manual_seed(1))
    assert torch.equal(coords, again)
    assert uncertain_point_coords(logits, 40, 3.0, 0.0).shape == (3, 40, 2)


# ---------------------------------------------------------------- matchers


def _permuted_perfect(perm, targets: VideoTargets, q: int, t: int):
    g = torch.Generator().manual_seed(3)
    pred_masks = torch.randn(q, t, 8, 8, generator=g) - 4.0
    pred_logits = torch.randn(q, K + 1, generator=g)
    small = down4(targets.masks)  # (N, T, 8, 8)
    for obj, query in enumerate(perm):
        pred_masks[query] = 20.0 * (2 * small[obj] - 1)
        pred_logits[query, targets.labels[obj]] += 5.0
    return pred_logits, pred_masks


@pytest.mark.parametrize("flatten_time", [False, True])
def test_hungarian_finds_the_permuted_perfect_queries(flatten_time):
    targets = targets_from_rects(
        [1, 3, 1],
        [
            [(0, 8, 0, 8), (4, 12, 0, 8)],
            [(16, 32, 16, 32), (16, 28, 16, 28)],
            [(0, 12, 20, 32), None],
        ],
    )
    perm = [4, 0, 2]
    pred_logits, pred_masks = _permuted_perfect(perm, targets, q=6, t=2)
    matcher = HungarianMatcher(num_points=500, flatten_time=flatten_time)
    q_idx, t_idx = matcher.match(pred_logits, pred_masks, targets, torch.Generator().manual_seed(0))
    assert q_idx.dtype == t_idx.dtype == torch.int64
    assert dict(zip(t_idx.tolist(), q_idx.tolist())) == {0: 4, 1: 0, 2: 2}
    assert q_idx.tolist() == sorted(q_idx.tolist())
    # also through the batched call, (B, T, Q, ...) layout
    outputs = {
        "pred_logits": pred_logits[None, None].expand(1, 2, -1, -1),
        "pred_masks": pred_masks.transpose(0, 1)[None],
    }
    (bq, bt), = matcher(outputs, [targets], torch.Generator().manual_seed(0))
    assert torch.equal(bq, q_idx) and torch.equal(bt, t_idx)


def test_cost_matrix_equals_brute_force():
    g = torch.Generator().manual_seed(5)
    q, n, t, p = 3, 2, 2, 6
    pred_logits = torch.randn(q, K + 1, generator=g)
    pred_masks = torch.randn(q, t, 4, 4, generator=g) * 2
    tgt_masks = torch.rand(n, t, 8, 8, generator=g) > 0.5
    labels = torch.tensor([2, 0])
    coords = torch.rand(1, p, 2, generator=g)
    matcher = HungarianMatcher(cost_class=2.0, cost_mask=5.0, cost_dice=5.0)
    cost = matcher.cost_matrix(pred_logits, pred_masks, labels, tgt_masks, coords)
    assert cost.shape == (q, n) and cost.dtype == torch.float32

    prob = torch.softmax(pred_logits.double(), -1)
    for i in range(q):
        for j in range(n):
            xs = [bilinear(pred_masks[i, f], *coords[0, k].tolist()) for f in range(t) for k in range(p)]
            ts = [bilinear(tgt_masks[j, f].float(), *coords[0, k].tolist()) for f in range(t) for k in range(p)]
            bce = sum(math.log1p(math.exp(-x)) * y + math.log1p(math.exp(x)) * (1 - y) for x, y in zip(xs, ts))
            bce /= len(xs)
            sig = [1 / (1 + math.exp(-x)) for x in xs]
            dice = 1 - (2 * sum(s * y for s, y in zip(sig, ts)) + 1) / (sum(sig) + sum(ts) + 1)
            ref = 5 * bce + 2 * (-float(prob[i, labels[j]])) + 5 * dice
            assert cost[i, j].item() == pytest.approx(ref, abs=1e-4)


def test_flatten_time_equals_t_channel_form_on_corresponding_points():
    """The stacked (T·h)×w image read at (x, (t + y)/T) is frame t read at (x, y), as long as y keeps
    half a pixel (of the coarser prediction) away from the frame seams: there the stacked form reads
    the neighbouring frame where the T-channel form reads zero padding. Both forms read T·P values;
    with random points the flattened form also lets the number per frame vary (multinomial)."""
    g = torch.Generator().manual_seed(7)
    q, n, t, h, size, p = 4, 3, 3, 8, 32, 50
    pred_logits = torch.randn(q, K + 1, generator=g)
    pred_masks = torch.randn(q, t, h, h, generator=g) * 3
    tgt = random_targets(1, n, t, size)
    local = torch.rand(1, p, 2, generator=g)
    local[..., 1] = 0.5 / h + local[..., 1] * (1 - 1.0 / h)  # away from the seams
    stacked = torch.cat([torch.stack([local[0, :, 0], (f + local[0, :, 1]) / t], -1) for f in range(t)])[None]
    args = (pred_logits, pred_masks, tgt.labels, tgt.masks)
    channel = HungarianMatcher(num_points=p).cost_matrix(*args, local)
    flat = HungarianMatcher(num_points=p, flatten_time=True).cost_matrix(*args, stacked)
    torch.testing.assert_close(flat, channel, rtol=1e-5, atol=1e-5)

    # with their own random points the two forms estimate the same cost
    big_c = HungarianMatcher(num_points=6000)
    big_f = HungarianMatcher(num_points=6000, flatten_time=True)
    cc = big_c.cost_matrix(*args, big_c.sample_points(t, "cpu", torch.Generator().manual_seed(1)))
    cf = big_f.cost_matrix(*args, big_f.sample_points(t, "cpu", torch.Generator().manual_seed(2)))
    assert cf.shape == cc.shape == (q, n)
    assert (cc - cf).abs().max() < 0.25  # 5·BCE + 5·dice Monte-Carlo error


def test_consistent_matcher_uses_first_frames_and_never_reuses_a_query():
    # A present in 0..2, C first at frame 1, B only at frame 2
    a = (0, 8, 0, 8)
    b = (16, 32, 16, 32)
    c = (0, 12, 20, 32)
    targets = targets_from_rects([0, 1, 2], [[a, a, a], [None, None, b], [None, c, c]])
    q, t = 5, 3
    small = down4(targets.masks)
    pred_masks = torch.full((q, t, 8, 8), -10.0)
    pred_logits = torch.zeros(q, t, K + 1)
    pred_masks[0, 0] = 20 * (2 * small[0, 0] - 1)  # query 0 is A at frame 0 ...
    pred_masks[0, 2] = 20 * (2 * small[1, 2] - 1)  # ... and looks exactly like B at frame 2
    pred_masks[1, 2] = 20 * (2 * small[0, 2] - 1)  # query 1 is a perfect A only at frame 2: ignored
    pred_masks[3, 1] = 20 * (2 * small[2, 1] - 1)  # query 3 is C at its first frame
    pred_masks[4, 2] = 5 * (2 * small[1, 2] - 1)  # query 4: a weaker B at frame 2
    pred_logits[0, 0, 0] = pred_logits[3, 1, 2] = pred_logits[4, 2, 1] = pred_logits[0, 2, 1] = 5.0
    matcher = ConsistentMatcher(num_points=400)
    q_idx, t_idx = matcher.match(pred_logits, pred_masks, targets, torch.Generator().manual_seed(0))
    assert dict(zip(t_idx.tolist(), q_idx.tolist())) == {0: 0, 2: 3, 1: 4}
    assert len(set(q_idx.tolist())) == len(q_idx)

    # many objects, few queries: each query used at most once, leftovers unmatched
    many = random_targets(4, 9, 4)
    g = torch.Generator().manual_seed(0)
    qi, ti = matcher.match(torch.randn(6, 4, K + 1, generator=g), torch.randn(6, 4, 8, 8, generator=g), many, g)
    assert len(qi) == 6 and len(set(qi.tolist())) == 6 and len(set(ti.tolist())) == 6
    first = many.first_frames()
    # objects are served in order of first appearance
    assert first[ti].max() <= first[[i for i in range(9) if i not in ti.tolist()]].min()


def test_consistent_matcher_batched_matches_each_video():
    out = random_outputs(0, 2, 3, 6, num_aux=0)
    tg = [random_targets(1, 3, 3), random_targets(2, 4, 3)]
    matcher = ConsistentMatcher(num_points=200)
    res = matcher(out, tg, seeded_generators([5, 6]))
    for b in range(2):
        logits, masks = out["pred_logits"][b].transpose(0, 1), out["pred_masks"][b].transpose(0, 1)
        single = matcher.match(logits, masks, tg[b], seeded_generators([5 + b])[0])
        assert torch.equal(res[b][0], single[0]) and torch.equal(res[b][1], single[1])
        assert len(res[b][0]) == len(tg[b])  # the second video is matched too


# ---------------------------------------------------------------- criterion


def test_empty_weight_buffer_and_weighted_ce():
    crit = SetCriterion(K, HungarianMatcher(num_points=50), eos_coef=0.1, num_points=50, per_frame=True)
    assert "empty_weight" in crit.state_dict()
    assert crit.empty_weight.tolist() == pytest.approx([1.0] * K + [0.1])
    out = random_outputs(0, 2, 3, 5, num_aux=0)
    tg = [random_targets(1, 2, 3), random_targets(2, 3, 3)]
    idx = crit.match(out, tg, seeded_generators([0, 1]))
    classes = crit.class_targets(out, tg, idx)  # (B, T, Q)
    assert classes.shape == (2, 3, 5)
    for b in range(2):  # per-frame: the object's class where present, K where absent
        for q, i in zip(*idx[b]):
            for f in range(3):
                assert classes[b, f, q] == (tg[b].labels[i] if tg[b].present[i, f] else K)
    logp = torch.log_softmax(out["pred_logits"].detach(), -1)
    w = crit.empty_weight[classes]
    # each video's weighted mean, then the mean over videos (one video per GPU, as the official recipe)
    nll = -(logp.gather(-1, classes[..., None])[..., 0] * w)
    manual = torch.stack([nll[b].sum() / w[b].sum() for b in range(2)]).mean()
    got = crit.loss_labels(out, tg, idx)
    assert got.item() == pytest.approx(manual.item(), rel=1e-5)

    # eq. 4 literally: per-frame weighted means summed over frames
    crit_sum = SetCriterion(K, HungarianMatcher(num_points=50), num_points=50, per_frame=True, frame_reduction="sum")
    per_video = [
        sum(nll[b, f].sum() / w[b, f].sum() for f in range(3)) for b in range(2)
    ]
    assert crit_sum.loss_labels(out, tg, idx).item() == pytest.approx((sum(per_video) / 2).item(), rel=1e-5)
    assert crit_sum.num_masks(tg) == 5 and crit.num_masks(tg) == 15


def test_video_class_targets_and_last_frame_quirk():
    tg = [targets_from_rects([2, 3], [[(0, 8, 0, 8), (0, 8, 0, 8)], [(8, 16, 8, 16), None]])]
    out = random_outputs(0, 1, 2, 4, num_aux=0, video=True)
    idx = [(torch.tensor([1, 3]), torch.tensor([0, 1]))]
    right = SetCriterion(K, HungarianMatcher(num_points=50), num_points=50, per_frame=False)
    quirk = SetCriterion(
        K, HungarianMatcher(num_points=50), num_points=50, per_frame=False, last_frame_label_quirk=True
    )
    assert right.class_targets(out, right.prepare_targets(tg), idx).tolist() == [[K, 2, K, 3]]
    assert quirk.class_targets(out, quirk.prepare_targets(tg), idx).tolist() == [[K, 2, K, K]]
    assert right.num_masks(tg) == 2  # video supervision: objects, not object-frames
    logp = torch.log_softmax(out["pred_logits"][0, 0].detach(), -1)
    manual = -(logp[0, K] * 0.1 + logp[1, 2] + logp[2, K] * 0.1 + logp[3, 3]) / 2.2
    assert right.loss_labels(out, tg, idx).item() == pytest.approx(manual.item(), rel=1e-5)


def test_point_losses_on_perfect_and_inverted_predictions():
    labels = (torch.rand(3, 100, generator=torch.Generator().manual_seed(0)) > 0.5).float()
    perfect = 30 * (2 * labels - 1)
    assert point_bce_loss(perfect, labels).max() < 1e-10
    assert point_dice_loss(perfect, labels).max() < 1e-6
    assert point_bce_loss(-perfect, labels).min() > 29.9
    # inverted: Σpt = 0 and Σp + Σt = P, so dice = 1 - 1/(P + 1)
    assert torch.allclose(point_dice_loss(-perfect, labels), torch.full((3,), 1 - 1 / 101), atol=1e-6)
    assert point_dice_loss(torch.full((1, 10), -30.0), torch.zeros(1, 10)).item() == pytest.approx(0.0, abs=1e-6)

    # through the criterion (uniform points; only the half-pixel bands at edges are imperfect)
    rects = [[(0, 16, 0, 16), (8, 24, 0, 16)], [(16, 32, 8, 32), None], [None, (0, 16, 16, 32)]]
    tg = [targets_from_rects([0, 1, 3], rects)]
    small = down4(tg[0].masks)  # (N, T, 8, 8)
    idx = [(torch.tensor([2, 0, 1]), torch.tensor([0, 1, 2]))]
    masks = torch.full((1, 2, 4, 8, 8), -20.0)
    for q, i in zip(*idx[0]):
        masks[0, :, q] = 20 * (2 * small[i] - 1)
    logits = torch.zeros(1, 2, 4, K + 1)
    crit = SetCriterion(K, ConsistentMatcher(num_points=400), num_points=2000, importance_ratio=0.0, per_frame=True)
    good = crit.unweighted_losses({"pred_logits": logits, "pred_masks": masks}, tg, idx, torch.Generator().manual_seed(0))
    bad = crit.unweighted_losses({"pred_logits": logits, "pred_masks": -masks}, tg, idx, torch.Generator().manual_seed(0))
    assert good["loss_dice"] < 0.1 < 0.8 < bad["loss_dice"]
    assert good["loss_mask"] < 0.1 * bad["loss_mask"]


def test_deep_supervision_keys_weights_and_given_indices():
    out = random_outputs(0, 1, 3, 5, num_aux=3)
    tg = [random_targets(1, 3, 3)]
    crit = SetCriterion(K, ConsistentMatcher(num_points=50), num_points=50, per_frame=True)
    raw = crit.unweighted_losses(out, tg, generator=torch.Generator().manual_seed(0))
    weighted = crit(out, tg, generator=torch.Generator().manual_seed(0))
    names = ["loss_ce", "loss_mask", "loss_dice"]
    assert set(weighted) == {n + s for n in names for s in ["", "_0", "_1", "_2"]}
    for key, value in weighted.items():
        base = key if key in names else key.rsplit("_", 1)[0]
        weight = {"loss_ce": 2, "loss_mask": 5, "loss_dice": 5}[base]
        assert value.item() == pytest.approx(raw[key].item() * weight, rel=1e-6)
    only = {"loss_ce": 1.0, "loss_mask_1": 3.0}  # aux layers take their base name's weight; the rest are dropped
    partial = SetCriterion(K, ConsistentMatcher(num_points=50), weight_dict=only, num_points=50)
    assert set(partial(out, tg)) == {"loss_ce", "loss_ce_0", "loss_ce_1", "loss_ce_2", "loss_mask_1"}

    class NoMatching:
        def __call__(self, *args, **kwargs):
            raise AssertionError("indices were given: no layer may be re-matched")

    fixed = SetCriterion(K, NoMatching(), num_points=50, per_frame=True)  # type: ignore[arg-type]
    idx = crit.match(out, tg, torch.Generator().manual_seed(1))
    losses = fixed(out, tg, indices=idx, generator=torch.Generator().manual_seed(0))
    assert len(losses) == 12


@pytest.mark.parametrize("per_frame", [True, False])
def test_gradients_reach_logits_and_masks(per_frame):
    out = random_outputs(0, 2, 2, 5, num_aux=1, video=not per_frame)
    tg = [random_targets(1, 2, 2), random_targets(2, 3, 2)]
    matcher = ConsistentMatcher(num_points=50) if per_frame else HungarianMatcher(num_points=50, flatten_time=True)
    crit = SetCriterion(K, matcher, num_points=50, per_frame=per_frame)
    total = sum(crit(out, tg, generator=seeded_generators([0, 1])).values())
    total.backward()
    for layer in [out, *out["aux_outputs"]]:
        for key in ("pred_logits", "pred_masks"):
            grad = layer[key].grad
            assert grad is not None and torch.isfinite(grad).all() and grad.abs().sum() > 0


def test_no_objects_gives_finite_losses_with_a_graph():
    out = random_outputs(0, 1, 2, 4, num_aux=1)
    empty = VideoTargets(
        torch.zeros(0, dtype=torch.int64), torch.zeros(0, 2, 32, 32, dtype=torch.bool), torch.zeros(0, 2, dtype=torch.bool)
    )
    crit = SetCriterion(K, ConsistentMatcher(num_points=50), num_points=50)
    losses = crit(out, [empty])
    assert all(torch.isfinite(v) for v in losses.values())
    sum(losses.values()).backward()
    assert out["pred_masks"].grad is not None


@pytest.mark.parametrize("per_frame", [True, False])
def test_batch_of_two_equals_two_batches_of_one(per_frame):
    t, q = 3, 6
    out = random_outputs(0, 2, t, q, num_aux=2, video=not per_frame)
    tg = [random_targets(1, 2, t), random_targets(2, 4, t)]
    matcher = ConsistentMatcher(num_points=100) if per_frame else HungarianMatcher(num_points=100, flatten_time=True)
    crit = SetCriterion(K, matcher, num_points=100, per_frame=per_frame)
    seeds = [11, 22]
    both = crit.unweighted_losses(out, tg, generator=seeded_generators(seeds))
    singles = [
        crit.unweighted_losses(slice_batch(out, b), [tg[b]], generator=seeded_generators([seeds[b]])) for b in range(2)
    ]
    n = [crit.num_masks([x]) for x in tg]
    # CE: the mean of the videos' own weighted means; mask losses: normalised by all objects
    for key, value in both.items():
        parts = [s[key] for s in singles]
        weights = [1.0, 1.0] if key.startswith("loss_ce") else n
        combined = (weights[0] * parts[0] + weights[1] * parts[1]) / (weights[0] + weights[1])
        assert value.item() == pytest.approx(combined.item(), rel=1e-5), key
    # and the batched matching is each video's own matching
    idx = crit.match(out, tg, seeded_generators(seeds))
    for b in range(2):
        (qs, ts), = crit.match(slice_batch(out, b), [tg[b]], seeded_generators([seeds[b]]))
        assert torch.equal(idx[b][0], qs) and torch.equal(idx[b][1], ts)


def test_determinism_with_a_fixed_generator():
    out = random_outputs(0, 2, 2, 5, num_aux=1)
    tg = [random_targets(1, 2, 2), random_targets(2, 3, 2)]
    crit = SetCriterion(K, ConsistentMatcher(num_points=64), num_points=64)
    first = crit(out, tg, generator=torch.Generator().manual_seed(3))
    second = crit(out, tg, generator=torch.Generator().manual_seed(3))
    other = crit(out, tg, generator=torch.Generator().manual_seed(4))
    assert all(torch.equal(first[k], second[k]) for k in first)
    assert any(not torch.equal(first[k], other[k]) for k in first if "mask" in k or "dice" in k)


def test_frames_as_images_keeps_only_present_objects():
    out = random_outputs(0, 2, 3, 5, num_aux=1)
    tg = [random_targets(1, 3, 3), random_targets(2, 2, 3)]
    out1, tg1 = frames_as_images(out, tg)
    assert out1["pred_masks"].shape == (6, 1, 5, 8, 8)
    assert out1["aux_outputs"][0]["pred_logits"].shape == (6, 1, 5, K + 1)
    assert len(tg1) == 6
    for b in range(2):
        for f in range(3):
            item = tg1[b * 3 + f]
            assert len(item) == int(tg[b].present[:, f].sum()) and item.present.all()
            assert torch.equal(item.masks[:, 0], tg[b].masks[tg[b].present[:, f], f])
    crit = SetCriterion(K, HungarianMatcher(num_points=50), num_points=50, per_frame=True)
    assert set(crit(out1, tg1)) >= {"loss_ce", "loss_dice_0"}


def test_matching_phase():
    assert matching_phase(0, 100) == "predecessor"
    assert matching_phase(49, 100) == "predecessor"
    assert matching_phase(50, 100) == "own"
    assert matching_phase(50, 101) == "own"
    assert matching_phase(49, 101) == "predecessor"


def test_half_precision_predictions_under_autocast():
    out = random_outputs(0, 1, 2, 5, num_aux=0)
    tg = [random_targets(1, 3, 2)]
    half = {k: v.detach().bfloat16().requires_grad_() for k, v in out.items() if k != "aux_outputs"}
    crit = SetCriterion(K, ConsistentMatcher(num_points=64), num_points=64)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        idx = crit.match(half, tg, torch.Generator().manual_seed(0))
        losses = crit(half, tg, generator=torch.Generator().manual_seed(0))
    ref = crit.match({k: v.float() for k, v in half.items()}, tg, torch.Generator().manual_seed(0))
    assert all(torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) for a, b in zip(idx, ref))
    assert all(v.dtype == torch.float32 and torch.isfinite(v) for v in losses.values())
    sum(losses.values()).backward()
    assert half["pred_masks"].grad is not None and half["pred_logits"].grad is not None
