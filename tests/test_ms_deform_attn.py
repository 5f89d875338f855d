"""Multi-scale deformable attention: the compiled kernel (dvis_cli._C) against the PyTorch reference.

The reference `ms_deform_attn_pytorch` defines the numbers; the compiled CPU kernel must give the
same forward and backward (float64 to rounding, float32 within 1e-5 relative), check its inputs,
and treat NaN / inf like the reference. With DVIS_REQUIRE_OPS=1 (CI) a missing kernel is a failure;
otherwise the kernel tests are skipped with the reason.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

import dvis_cli
from dvis_cli.ops import status
from dvis_cli.ops._ext import load_ext
from dvis_cli.ops.ms_deform_attn import MSDeformAttnInputError, ms_deform_attn, ms_deform_attn_pytorch

KERNEL_CHOICE = status.choose("cpu", torch.float32)
REQUIRE_OPS = os.environ.get("DVIS_REQUIRE_OPS", "").strip().lower() in {"1", "true", "yes", "on"}
needs_kernel = pytest.mark.skipif(
    not KERNEL_CHOICE.uses_kernel and not REQUIRE_OPS, reason=f"compiled op not in use: {KERNEL_CHOICE.reason}"
)


@pytest.fixture(autouse=True)
def _no_forced_fallback(monkeypatch):
    monkeypatch.delenv("DVIS_OPS_FALLBACK", raising=False)


def make_inputs(n, m, dh, shapes, lq, p, dtype=torch.float64, seed=0, spread=1.4):
    """Random inputs; locations cover [-(spread-1)/2, (spread+1)/2], so some fall outside the map."""
    g = torch.Generator().manual_seed(seed)
    shapes = torch.tensor(shapes, dtype=torch.int64)
    areas = shapes[:, 0] * shapes[:, 1]
    starts = torch.cat([areas.new_zeros(1), areas.cumsum(0)[:-1]])
    levels = len(shapes)
    value = torch.randn(n, int(areas.sum()), m, dh, generator=g, dtype=dtype)
    loc = torch.rand(n, lq, m, levels, p, 2, generator=g, dtype=dtype) * spread - (spread - 1) / 2
    loc = away_from_kinks(loc, shapes)
    attn = torch.rand(n, lq, m, levels, p, generator=g, dtype=dtype) + 0.05
    attn = attn / attn.sum(dim=(-1, -2), keepdim=True)
    return value, shapes, starts, loc, attn


def away_from_kinks(loc, shapes, margin=2e-3):
    """Move points off pixel-grid lines, where bilinear sampling has no derivative.

    A point within float32 rounding of a grid line can land in different cells in two correct
    implementations, which changes its location gradient by O(1); gradcheck has the same problem.
    """
    size = torch.stack([shapes[:, 1], shapes[:, 0]], dim=-1).to(loc.dtype)  # (L, 2) as (W, H)
    size = size.view(1, 1, 1, -1, 1, 2)
    pixel = loc * size - 0.5
    frac = pixel - pixel.floor()
    near = (frac < margin) | (frac > 1 - margin)
    return torch.where(near, loc + 3 * margin / size, loc)


def run(fn, value, shapes, starts, loc, attn, grad):
    leaves = [t.detach().clone().requires_grad_() for t in (value, loc, attn)]
    out = fn(leaves[0], shapes, starts, leaves[1], leaves[2])
    out.backward(grad)
    return out.detach(), leaves[0].grad, leaves[1].grad, leaves[2].grad


def rel_err(a, b):
    return ((a - b).abs().max() / b.abs().max().clamp_min(1e-30)).item()


# N, M, Dh, spatial shapes (H, W), Lq, P
CONFIGS = [
    (1, 1, 1, [(5, 7)], 9, 1),
    (2, 3, 30, [(7, 9), (3, 5)], 11, 3),
    (1, 8, 32, [(12, 20), (24, 40), (48, 80)], 240, 4),  # the R50 pixel decoder at 384x640, fewer queries
    (3, 2, 64, [(6, 5), (3, 3), (2, 1), (1, 1)], 13, 2),
    (2, 4, 17, [(1, 13), (11, 1), (4, 4)], 7, 5),
]


def test_compiled_kernel_is_used():
    if not KERNEL_CHOICE.uses_kernel:
        if REQUIRE_OPS:
            pytest.fail(f"DVIS_REQUIRE_OPS=1 but the compiled op is not in use: {KERNEL_CHOICE.reason}")
        pytest.skip(f"compiled op not in use: {KERNEL_CHOICE.reason}")
    ext = load_ext()
    assert ext.loaded
    if REQUIRE_OPS:  # CI: the module must be the one the install built, inside the package
        assert Path(ext.origin).parent == Path(dvis_cli.__file__).parent, ext.origin
    value, shapes, starts, loc, attn = make_inputs(1, 2, 4, [(3, 4)], 5, 2, dtype=torch.float32)
    out = ms_deform_attn(value.requires_grad_(), shapes, starts, loc, attn)
    assert type(out.grad_fn).__name__ == "_MSDeformAttnFunctionBackward"


def test_forced_fallback(monkeypatch):
    monkeypatch.setenv("DVIS_OPS_FALLBACK", "1")
    choice = status.choose("cpu", torch.float32)
    assert not choice.uses_kernel and "DVIS_OPS_FALLBACK" in choice.reason
    value, shapes, starts, loc, attn = make_inputs(1, 2, 4, [(3, 4)], 5, 2, dtype=torch.float32)
    out = ms_deform_attn(value.requires_grad_(), shapes, starts, loc, attn)
    assert type(out.grad_fn).__name__ != "_MSDeformAttnFunctionBackward"


@needs_kernel
def test_gradcheck_float64():
    value, shapes, starts, loc, attn = make_inputs(2, 2, 3, [(3, 4), (2, 3)], 3, 2, seed=1)
    inputs = tuple(t.requires_grad_() for t in (value, loc, attn))

    def fn(v, l, a):
        return ms_deform_attn(v, shapes, starts, l, a)

    assert torch.autograd.gradcheck(fn, inputs, eps=1e-6, atol=1e-7, rtol=1e-5)


@needs_kernel
@pytest.mark.parametrize("dh", [30, 32, 64])
def test_gradcheck_channel_counts(dh):
    value, shapes, starts, loc, attn = make_inputs(1, 1, dh, [(4, 3), (2, 2)], 2, 2, seed=dh)
    inputs = tuple(t.requires_grad_() for t in (value, loc, attn))
    assert torch.autograd.gradcheck(lambda v, l, a: ms_deform_attn(v, shapes, starts, l, a), inputs, eps=1e-6, atol=1e-7)


@needs_kernel
@pytest.mark.parametrize("dtype,tol", [(torch.float32, 1e-5), (torch.float64, 1e-12)])
@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: f"N{c[0]}M{c[1]}Dh{c[2]}L{len(c[3])}P{c[5]}")
def test_matches_reference(config, dtype, tol):
    n, m, dh, shapes, lq, p = config
    inputs = make_inputs(n, m, dh, shapes, lq, p, dtype=dtype, seed=len(shapes) * 7 + dh)
    grad = torch.randn(n, lq, m * dh, generator=torch.Generator().manual_seed(3), dtype=dtype)
    got = run(ms_deform_attn, *inputs, grad)
    want = run(ms_deform_attn_pytorch, *inputs, grad)
    for name, a, b in zip(("output", "grad value", "grad locations", "grad weights"), got, want):
        assert a.shape == b.shape and a.dtype == b.dtype
        assert rel_err(a, b) < tol, f"{name}: relative error {rel_err(a, b):.2e}"


@needs_kernel
def test_points_on_grid_lines_and_borders():
    """Forward only (no derivative there): exact pixel centres, edges and the map border."""
    value, shapes, starts, _, _ = make_inputs(1, 2, 5, [(4, 6), (3, 3)], 1, 1)
    ticks = torch.tensor([-1.0, -0.5, -0.25, 0.0, 1 / 12, 0.125, 0.5, 5 / 6, 1.0, 1.125, 1.5, 2.0], dtype=torch.float64)
    grid = torch.cartesian_prod(ticks, ticks)  # (144, 2)
    lq = grid.shape[0]
    loc = grid.view(1, lq, 1, 1, 1, 2).expand(1, lq, 2, 2, 1, 2).contiguous()
    attn = torch.full((1, lq, 2, 2, 1), 0.5, dtype=torch.float64)
    got = ms_deform_attn(value, shapes, starts, loc, attn)
    want = ms_deform_attn_pytorch(value, shapes, starts, loc, attn)
    assert rel_err(got, want) < 1e-12


@needs_kernel
def test_non_contiguous_inputs():
    value, shapes, starts, loc, attn = make_inputs(2, 3, 8, [(5, 6), (3, 2)], 7, 2, dtype=torch.float32)
    # The same numbers, laid out differently in memory.
    value_nc = value.transpose(0, 2).contiguous().transpose(0, 2)
    loc_nc = torch.cat([loc, loc], dim=-1)[..., :2]
    attn_nc = attn.transpose(1, 3).contiguous().transpose(1, 3)
    shapes_nc = torch.stack([shapes[:, 0], shapes[:, 1]], dim=1).t().contiguous().t()
    assert not any(t.is_contiguous() for t in (value_nc, loc_nc, attn_nc, shapes_nc))
    grad = torch.randn(7, 2, 24).transpose(0, 1)
    assert not grad.is_contiguous()
    got = run(ms_deform_attn, value_nc, shapes_nc, starts, loc_nc, attn_nc, grad)
    want = run(ms_deform_attn_pytorch, value, shapes, starts, loc, attn, grad.contiguous())
    for a, b in zip(got, want):
        assert rel_err(a, b) < 1e-5


@needs_kernel
def test_int32_level_tensors_are_accepted():
    value, shapes, starts, loc, attn = make_inputs(1, 2, 4, [(3, 4), (2, 2)], 5, 2)
    got = ms_deform_attn(value, shapes.int(), starts.int(), loc, attn)
    assert rel_err(got, ms_deform_attn_pytorch(value, shapes, starts, loc, attn)) < 1e-12


@needs_kernel
def test_empty_queries():
    value, shapes, starts, loc, attn = make_inputs(2, 2, 4, [(3, 4)], 0, 2)
    out = ms_deform_attn(value.requires_grad_(), shapes, starts, loc, attn)
    assert out.shape == (2, 0, 8)
    out.sum().backward()
    assert torch.count_nonzero(value.grad) == 0


def _nonfinite_case(kind):
    value, shapes, starts, loc, attn = make_inputs(1, 2, 6, [(4, 5), (2, 3)], 6, 2)
    if kind == "nan value":
        value[0, 3, 1, 2] = float("nan")  # level 0, row 0, column 3
        loc[0, :, 1, 0] = torch.tensor([0.65, 0.1], dtype=loc.dtype)  # pixel (2.75, -0.1): reads it
    elif kind == "inf value":
        value[0, 7, 0, :] = float("inf")  # level 0, row 1, column 2
        loc[0, :2, 0, 0] = 0.45  # pixel (1.75, 1.3): reads it
    elif kind == "nan weight (inside)":
        attn[0, 1, 0, 0, 1] = float("nan")
        loc[0, 1, 0, 0, 1] = 0.5
    elif kind == "nan weight (outside)":
        attn[0, 2, 1, 1, 0] = float("nan")
        loc[0, 2, 1, 1, 0] = 3.0
    elif kind == "nan location":
        loc[0, 3, 0, 1, 1, 0] = float("nan")
    elif kind == "inf location":
        loc[0, 4, 1, 0, 0, 1] = float("inf")
    elif kind == "-inf location":
        loc[0, 0, 0, 0, 0, 0] = -float("inf")
    elif kind == "nan grad":
        pass
    return value, shapes, starts, loc, attn


@needs_kernel
@pytest.mark.parametrize(
    "kind",
    ["nan value", "inf value", "nan weight (inside)", "nan weight (outside)", "nan location", "inf location",
     "-inf location", "nan grad"],
)
def test_non_finite_like_reference(kind):
    inputs = _nonfinite_case(kind)
    grad = torch.randn(1, 6, 12, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    if kind == "nan grad":
        grad[0, 2, 7] = float("nan")
    got = run(ms_deform_attn, *inputs, grad)
    want = run(ms_deform_attn_pytorch, *inputs, grad)
    out, g_value, g_loc, g_attn = got
    r_out, r_value, r_loc, r_attn = want
    assert not want[0].isfinite().all() or kind == "nan grad", "the case should poison the reference"
    for name, a, b in (("output", out, r_out), ("grad value", g_value, r_value), ("grad weights", g_attn, r_attn)):
        assert torch.equal(a.isnan(), b.isnan()), f"{name}: NaN pattern differs"
        assert torch.equal(a.isinf(), b.isinf()), f"{name}: inf pattern differs"
        finite = b.isfinite()
        assert rel_err(a[finite], b[finite]) < 1e-12, name
    # Location gradients: the same points are non-finite (the reference may leave one of the two
    # coordinates of such a point finite; the kernel makes both NaN).
    assert torch.equal(g_loc.isfinite().all(-1), r_loc.isfinite().all(-1)), "grad locations: bad points differ"
    finite = r_loc.isfinite().all(-1, keepdim=True).expand_as(r_loc)
    assert rel_err(g_loc[finite], r_loc[finite]) < 1e-12


BAD_INPUTS = {
    "value not 4-d": lambda v, s, i, l, a: (v[0], s, i, l, a),
    "heads differ": lambda v, s, i, l, a: (v, s, i, l[:, :, :1], a[:, :, :1]),
    "levels differ": lambda v, s, i, l, a: (v, s[:1], i[:1], l, a),
    "points differ": lambda v, s, i, l, a: (v, s, i, l, a[..., :1]),
    "batch differs": lambda v, s, i, l, a: (v, s, i, l[:1], a[:1]),
    "queries differ": lambda v, s, i, l, a: (v, s, i, l, a[:, :2]),
    "locations not (x, y)": lambda v, s, i, l, a: (v, s, i, l[..., :1], a),
    "shapes not [L, 2]": lambda v, s, i, l, a: (v, s[:, :1], i, l, a),
    "start index not [L]": lambda v, s, i, l, a: (v, s, i[:1], l, a),
    "location dtype": lambda v, s, i, l, a: (v, s, i, l.float(), a),
    "weight dtype": lambda v, s, i, l, a: (v, s, i, l, a.float()),
    "float shapes": lambda v, s, i, l, a: (v, s.double(), i, l, a),
    "integer value": lambda v, s, i, l, a: (v.long(), s, i, l, a),
}


@pytest.mark.parametrize("fallback", [False, True], ids=["dispatch", "forced-fallback"])
@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_inputs_raise_clear_errors(case, fallback, monkeypatch):
    if fallback:
        monkeypatch.setenv("DVIS_OPS_FALLBACK", "1")
    inputs = BAD_INPUTS[case](*make_inputs(2, 2, 4, [(3, 4), (2, 2)], 3, 2))
    with pytest.raises(MSDeformAttnInputError, match="ms_deform_attn: "):
        ms_deform_attn(*inputs)


@needs_kernel
@pytest.mark.parametrize(
    "case,pattern",
    [
        ("too few keys", "keys but value has"),
        ("too many keys", "more keys than value has"),
        ("bad start index", r"level_start_index\[1\]"),
        ("zero-size level", "must be positive"),
        ("negative size", "must be positive"),
    ],
)
def test_inconsistent_level_geometry_raises(case, pattern):
    value, shapes, starts, loc, attn = make_inputs(1, 2, 4, [(3, 4), (2, 2)], 3, 2)
    if case == "too few keys":
        value = torch.cat([value, value[:, :3]], dim=1)
    elif case == "too many keys":
        value = value[:, :-3]
    elif case == "bad start index":
        starts = starts + torch.tensor([0, 1])
    elif case == "zero-size level":
        shapes = torch.tensor([[3, 4], [0, 2]])
    else:
        shapes = torch.tensor([[3, 4], [-2, -2]])
    with pytest.raises(RuntimeError, match=pattern):
        ms_deform_attn(value, shapes, starts, loc, attn)


@needs_kernel
def test_extension_checks_its_own_inputs():
    """Called directly (no Python checks in front), the compiled op still refuses bad input."""
    ext = load_ext().module
    value, shapes, starts, loc, attn = make_inputs(1, 2, 4, [(3, 4)], 3, 2)
    with pytest.raises(RuntimeError, match="dtype"):
        ext.ms_deform_attn_forward(value, shapes, starts, loc.float(), attn)
    with pytest.raises(RuntimeError, match="int64"):
        ext.ms_deform_attn_forward(value, shapes.int(), starts, loc, attn)
    with pytest.raises(RuntimeError, match="sampling_locations"):
        ext.ms_deform_attn_forward(value, shapes, starts, loc[:, :, :1], attn)
    with pytest.raises(RuntimeError, match="no compiled kernel for dtype"):
        ext.ms_deform_attn_forward(value.half(), shapes, starts, loc.half(), attn.half())
    with pytest.raises(RuntimeError, match="grad_output"):
        ext.ms_deform_attn_backward(value, shapes, starts, loc, attn, torch.zeros(1, 3, 7, dtype=torch.float64))


def test_unsupported_dtype_falls_back_with_reason():
    value, shapes, starts, loc, attn = make_inputs(1, 2, 4, [(3, 4)], 3, 2, dtype=torch.bfloat16)
    choice = status.choose("cpu", torch.bfloat16)
    assert not choice.uses_kernel and choice.reason
    out = ms_deform_attn(value, shapes, starts, loc, attn)
    assert out.dtype == torch.bfloat16 and out.shape == (1, 3, 8)
    if load_ext().loaded:
        assert status.fallback_events()[("cpu", "bfloat16")] == choice.reason


def test_cuda_choice_without_cuda_kernel_says_why():
    choice = status.choose("cuda:0", torch.float32)
    ext = load_ext()
    if ext.loaded and ext.with_cuda:
        assert choice.uses_kernel
    else:
        assert not choice.uses_kernel and ("CUDA" in choice.reason or "unavailable" in choice.reason)
    assert not status.choose("meta", torch.float32).uses_kernel
