"""Swin backbone: checkpoint layout (Mask2Former's D2SwinTransformer), shapes, and the maths of
(shifted) window attention checked against a brute-force reference written here from the paper."""

from __future__ import annotations

import io
import math

import pytest
import torch
import torch.nn.functional as F

from dvis_cli.model.backbone.swin import (
    SWIN_PRESETS,
    PatchEmbed,
    PatchMerging,
    SwinStage,
    SwinTransformer,
    build_swin,
    relative_position_index,
    shifted_window_mask,
    swin_large,
)

TINY = dict(embed_dim=16, depths=(2, 2, 2, 2), num_heads=(1, 2, 2, 4), window_size=7)


def tiny_swin(**overrides: object) -> SwinTransformer:
    torch.manual_seed(0)
    return SwinTransformer(**{**TINY, **overrides}).eval()  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------------------
# Checkpoint layout (spec: mask2former.md §4.2)
# --------------------------------------------------------------------------------------------------


def expected_swin_l_layout() -> dict[str, tuple[int, ...]]:
    """The Swin-L backbone table of §4.2, without the ``backbone.`` prefix."""
    dims, heads, depths = (192, 384, 768, 1536), (6, 12, 24, 48), (2, 2, 18, 2)
    keys: dict[str, tuple[int, ...]] = {
        "patch_embed.proj.weight": (192, 3, 4, 4),
        "patch_embed.proj.bias": (192,),
        "patch_embed.norm.weight": (192,),
        "patch_embed.norm.bias": (192,),
    }
    for i, (d, h, depth) in enumerate(zip(dims, heads, depths)):
        for m in range(depth):
            p = f"layers.{i}.blocks.{m}."
            keys.update(
                {
                    p + "norm1.weight": (d,),
                    p + "norm1.bias": (d,),
                    p + "attn.relative_position_bias_table": (529, h),
                    p + "attn.relative_position_index": (144, 144),
                    p + "attn.qkv.weight": (3 * d, d),
                    p + "attn.qkv.bias": (3 * d,),
                    p + "attn.proj.weight": (d, d),
                    p + "attn.proj.bias": (d,),
                    p + "norm2.weight": (d,),
                    p + "norm2.bias": (d,),
                    p + "mlp.fc1.weight": (4 * d, d),
                    p + "mlp.fc1.bias": (4 * d,),
                    p + "mlp.fc2.weight": (d, 4 * d),
                    p + "mlp.fc2.bias": (d,),
                }
            )
        if i < 3:
            keys[f"layers.{i}.downsample.reduction.weight"] = (2 * d, 4 * d)
            keys[f"layers.{i}.downsample.norm.weight"] = (4 * d,)
            keys[f"layers.{i}.downsample.norm.bias"] = (4 * d,)
        keys[f"norm{i}.weight"] = (d,)
        keys[f"norm{i}.bias"] = (d,)
    return keys


@pytest.fixture(scope="module")
def swin_l_meta() -> SwinTransformer:
    with torch.device("meta"):  # shapes only: no 780 MB allocation, no initialisation cost
        return swin_large()


def test_swin_l_state_dict_matches_d2_layout(swin_l_meta: SwinTransformer) -> None:
    sd = swin_l_meta.state_dict()
    got = {k: tuple(v.shape) for k, v in sd.items()}
    assert got == expected_swin_l_layout()
    assert len(sd) == 357  # §4.2 / dvis-official.md: "Swin-L backbone 357 tensors"
    # Spot checks quoted in the spec.
    assert got["layers.2.blocks.17.attn.qkv.weight"] == (2304, 768)
    assert got["layers.2.blocks.17.attn.relative_position_bias_table"] == (529, 24)
    assert got["layers.2.blocks.17.attn.relative_position_index"] == (144, 144)
    assert got["layers.0.downsample.reduction.weight"] == (384, 768)
    assert got["norm3.weight"] == (1536,)
    assert "layers.0.downsample.reduction.bias" not in got
    assert "layers.3.downsample.norm.weight" not in got
    # The index is an int64 *persistent* buffer (it is in the official checkpoints).
    index_keys = [k for k in sd if k.endswith("relative_position_index")]
    assert len(index_keys) == 24
    assert all(sd[k].dtype == torch.int64 for k in index_keys)
    buffers = dict(swin_l_meta.named_buffers())
    assert set(buffers) == set(index_keys)


def swin_param_count(embed_dim: int, depths, num_heads, window_size: int, patch: int = 4) -> int:
    """Closed form, component by component (weights + biases):

    patch_embed   conv 3*p*p*C + C, LayerNorm 2C
    block (dim d) norm1 2d + table (2ws-1)^2*h + qkv 3d^2+3d + proj d^2+d + norm2 2d
                  + fc1 4d^2+4d + fc2 4d^2+d                   = 12 d^2 + 13 d + (2ws-1)^2 h
    merging (d)   LayerNorm 8d + reduction 8d^2 (no bias)      (stages 0..2)
    norm{i}       2 d_i                                        (all four stages)
    """
    total = 3 * patch * patch * embed_dim + embed_dim + 2 * embed_dim
    for i, (depth, h) in enumerate(zip(depths, num_heads)):
        d = embed_dim * 2**i
        total += depth * (12 * d * d + 13 * d + (2 * window_size - 1) ** 2 * h)
        if i < len(depths) - 1:
            total += 8 * d + 8 * d * d
        total += 2 * d
    return total


def test_swin_l_parameter_count(swin_l_meta: SwinTransformer) -> None:
    n = sum(p.numel() for p in swin_l_meta.parameters())
    # 195,201,204 = §4.2's "backbone 195.2 M". Breakdown: patch_embed 9,792; stage 0 (2 blocks of
    # d=192) 895,692 + merging 296,448; stage 1 (d=384) 3,565,836 + 1,182,720; stage 2 (18 blocks of
    # d=768) 127,801,368 + 4,724,736; stage 3 (d=1536) 56,718,888; norm0..3 5,760.
    assert n == 195_201_204
    assert n == swin_param_count(192, (2, 2, 18, 2), (6, 12, 24, 48), 12)
    # The buffers (24 x 144 x 144 indices) are not parameters.
    assert sum(b.numel() for b in swin_l_meta.buffers()) == 24 * 144 * 144


@pytest.mark.parametrize(
    ("name", "count"),
    [
        ("swin_tiny", 27_520_698),
        ("swin_small", 48_838_602),
        ("swin_base", 86_880_376),
        ("swin_large", 195_201_204),
    ],
)
def test_preset_parameter_counts(name: str, count: int) -> None:
    cfg = SWIN_PRESETS[name]
    with torch.device("meta"):
        model = build_swin(name)
    assert sum(p.numel() for p in model.parameters()) == count
    assert count == swin_param_count(cfg.embed_dim, cfg.depths, cfg.num_heads, cfg.window_size)
    c = cfg.embed_dim
    assert model.out_channels == {"res2": c, "res3": 2 * c, "res4": 4 * c, "res5": 8 * c}
    assert model.out_strides == {"res2": 4, "res3": 8, "res4": 16, "res5": 32}


def test_unknown_preset() -> None:
    with pytest.raises(ValueError, match="swin_large"):
        build_swin("swin_huge")


# --------------------------------------------------------------------------------------------------
# Shapes and padding
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("height", "width"), [(100, 130), (97, 61), (32, 32), (5, 3)])
def test_output_shapes_and_strides_any_size(height: int, width: int) -> None:
    model = tiny_swin()
    with torch.no_grad():
        out = model(torch.randn(2, 3, height, width))
    assert list(out) == ["res2", "res3", "res4", "res5"]
    for name, feat in out.items():
        stride = model.out_strides[name]
        expected = (2, model.out_channels[name], math.ceil(height / stride), math.ceil(width / stride))
        assert tuple(feat.shape) == expected, name
        assert feat.is_contiguous()
        assert torch.isfinite(feat).all()


def test_odd_size_exercises_padding_at_every_stage() -> None:
    # 100 x 130: patch pad (130 -> 132), window pad in every stage (25x33, 13x17, 7x9, 4x5 vs 7),
    # and odd-size merging pads at stages 0 and 1.
    model = tiny_swin()
    with torch.no_grad():
        out = model(torch.randn(1, 3, 100, 130))
    sizes = [tuple(f.shape[-2:]) for f in out.values()]
    assert sizes == [(25, 33), (13, 17), (7, 9), (4, 5)]


def test_patch_embed_pads_right_bottom_with_zeros() -> None:
    torch.manual_seed(0)
    embed = PatchEmbed(patch_size=4, in_chans=3, embed_dim=8)
    x = torch.randn(1, 3, 101, 130)
    tokens, h, w = embed(x)
    assert (h, w) == (26, 33)
    padded = torch.zeros(1, 3, 104, 132)
    padded[:, :, :101, :130] = x
    ref = F.conv2d(padded, embed.proj.weight, embed.proj.bias, stride=4)
    ref = F.layer_norm(ref.flatten(2).transpose(1, 2), (8,), embed.norm.weight, embed.norm.bias)
    torch.testing.assert_close(tokens, ref)


def test_patch_merging_order_and_padding() -> None:
    torch.manual_seed(0)
    merge = PatchMerging(dim=2)
    height, width = 3, 5
    x = torch.randn(1, height * width, 2)
    out, h2, w2 = merge(x, height, width)
    assert (h2, w2) == (2, 3)
    grid = torch.zeros(4, 6, 2)
    grid[:height, :width] = x.view(height, width, 2)
    # Token (r, c) of the output gathers rows 2r, 2r+1 and columns 2c, 2c+1 in the order
    # (2r, 2c), (2r+1, 2c), (2r, 2c+1), (2r+1, 2c+1).
    rows = []
    for r in range(2):
        for c in range(3):
            rows.append(
                torch.cat(
                    [grid[2 * r, 2 * c], grid[2 * r + 1, 2 * c], grid[2 * r, 2 * c + 1],
                     grid[2 * r + 1, 2 * c + 1]]
                )
            )
    cat = torch.stack(rows)[None]  # [1, 6, 8]
    ref = F.linear(F.layer_norm(cat, (8,), merge.norm.weight, merge.norm.bias), merge.reduction.weight)
    torch.testing.assert_close(out, ref)
    assert merge.reduction.bias is None


# --------------------------------------------------------------------------------------------------
# Relative positions and (shifted) window attention against a brute-force reference
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("ws", [1, 3, 7, 12])
def test_relative_position_index_standard_definition(ws: int) -> None:
    index = relative_position_index(ws)
    assert index.dtype == torch.int64
    assert index.shape == (ws * ws, ws * ws)
    for q in range(ws * ws):
        yq, xq = divmod(q, ws)
        for k in range(ws * ws):
            yk, xk = divmod(k, ws)
            assert index[q, k] == (yq - yk + ws - 1) * (2 * ws - 1) + (xq - xk + ws - 1)
    assert int(index.max()) == (2 * ws - 1) ** 2 - 1
    stage = SwinStage(dim=4, depth=1, num_heads=2, window_size=ws)
    assert torch.equal(stage.blocks[0].attn.relative_position_index, index)


def band(r: int, length: int, ws: int, shift: int) -> int:
    """Which of the three strips [0, L-ws), [L-ws, L-shift), [L-shift, L) a coordinate is in."""
    if r < length - ws:
        return 0
    if r < length - shift:
        return 1
    return 2


def naive_swin_block(block, x: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """One Swin block on ONE image [H*W, C], written with explicit loops and no roll/partition.

    The cyclic shift is expressed as coordinates: the token at padded position (i, j) sits at
    ((i - s) mod Hp, (j - s) mod Wp) after ``roll(-s)``; it attends to the tokens of the same
    ws x ws window there, with bias table[(dy + ws-1)(2ws-1) + dx + ws-1, head] for the in-window
    offset (dy, dx) = query - key, and -100 between tokens from different strips of the shifted
    grid. Padded tokens are zeros after norm1 and are attended to like any other token.
    """
    ws, s = block.window_size, block.shift_size
    attn = block.attn
    c = x.shape[-1]
    heads = attn.num_heads
    d = c // heads
    hp, wp = math.ceil(height / ws) * ws, math.ceil(width / ws) * ws

    normed = F.layer_norm(x, (c,), block.norm1.weight, block.norm1.bias)
    grid = torch.zeros(hp, wp, c, dtype=x.dtype)
    grid[:height, :width] = normed.view(height, width, c)
    tokens = grid.view(hp * wp, c)
    w_qkv, b_qkv = attn.qkv.weight, attn.qkv.bias
    q_all = tokens @ w_qkv[:c].T + b_qkv[:c]
    k_all = tokens @ w_qkv[c : 2 * c].T + b_qkv[c : 2 * c]
    v_all = tokens @ w_qkv[2 * c :].T + b_qkv[2 * c :]

    def place(t: int) -> tuple[tuple[int, int], tuple[int, int], tuple[int, int]]:
        i, j = divmod(t, wp)
        ri, rj = (i - s) % hp, (j - s) % wp
        region = (band(ri, hp, ws, s), band(rj, wp, ws, s)) if s else (0, 0)
        return (ri // ws, rj // ws), (ri % ws, rj % ws), region

    places = [place(t) for t in range(hp * wp)]
    out = torch.zeros(hp * wp, c, dtype=x.dtype)
    for t in range(hp * wp):
        win_t, (yq, xq), region_t = places[t]
        keys = [u for u in range(hp * wp) if places[u][0] == win_t]
        assert len(keys) == ws * ws
        for h in range(heads):
            sl = slice(h * d, (h + 1) * d)
            logits = []
            for u in keys:
                _, (yk, xk), region_u = places[u]
                logit = torch.dot(q_all[t, sl], k_all[u, sl]) * d**-0.5
                logit = logit + attn.relative_position_bias_table[
                    (yq - yk + ws - 1) * (2 * ws - 1) + (xq - xk + ws - 1), h
                ]
                if region_u != region_t:
                    logit = logit - 100.0
                logits.append(logit)
            weights = torch.softmax(torch.stack(logits), dim=0)
            out[t, sl] = sum(wgt * v_all[u, sl] for wgt, u in zip(weights, keys))
    out = out @ attn.proj.weight.T + attn.proj.bias
    y = out.view(hp, wp, c)[:height, :width].reshape(height * width, c)

    x = x + y
    z = F.layer_norm(x, (c,), block.norm2.weight, block.norm2.bias)
    z = F.gelu(z @ block.mlp.fc1.weight.T + block.mlp.fc1.bias)
    return x + z @ block.mlp.fc2.weight.T + block.mlp.fc2.bias


@pytest.mark.parametrize(
    ("ws", "height", "width"),
    [
        (7, 5, 6),  # window >= feature size: one padded window, shift 3, mask in both axes
        (3, 5, 4),  # several windows, padding to 6 x 6, shift 1
        (4, 8, 4),  # no padding, shift 2
    ],
)
def test_window_attention_matches_brute_force(ws: int, height: int, width: int) -> None:
    torch.manual_seed(0)
    stage = SwinStage(dim=4, depth=2, num_heads=2, window_size=ws).double().eval()
    assert stage.blocks[0].shift_size == 0 and stage.blocks[1].shift_size == ws // 2
    with torch.no_grad():
        for p in stage.parameters():  # non-trivial norms and biases
            p.add_(0.3 * torch.randn_like(p))
        x = torch.randn(2, height * width, 4, dtype=torch.float64)
        out, nxt, h2, w2 = stage(x, height, width)
        assert nxt is out and (h2, w2) == (height, width)
        for b in range(2):
            ref = x[b]
            for block in stage.blocks:
                ref = naive_swin_block(block, ref, height, width)
            torch.testing.assert_close(out[b], ref, rtol=1e-10, atol=1e-10)


def test_shift_actually_changes_the_result() -> None:
    """Guards the reference: with the mask and the shift the output differs from plain windows."""
    torch.manual_seed(0)
    stage = SwinStage(dim=4, depth=2, num_heads=2, window_size=3).double().eval()
    x = torch.randn(1, 36, 4, dtype=torch.float64)
    with torch.no_grad():
        shifted = stage.blocks[1](x, 6, 6, shifted_window_mask(6, 6, 3, 1).double())
        stage.blocks[1].shift_size = 0
        plain = stage.blocks[1](x, 6, 6, None)
    assert not torch.allclose(shifted, plain)


# --------------------------------------------------------------------------------------------------
# State dict, training mode
# --------------------------------------------------------------------------------------------------


def test_state_dict_round_trip_strict() -> None:
    model = tiny_swin()
    buf = io.BytesIO()
    torch.save(model.state_dict(), buf)
    buf.seek(0)
    state = torch.load(buf, weights_only=True)
    torch.manual_seed(123)
    other = SwinTransformer(**TINY).eval()  # type: ignore[arg-type]
    result = other.load_state_dict(state, strict=True)
    assert not result.missing_keys and not result.unexpected_keys
    assert list(other.state_dict()) == list(model.state_dict())
    x = torch.randn(1, 3, 70, 45)
    with torch.no_grad():
        a, b = model(x), other(x)
    for name in a:
        assert torch.equal(a[name], b[name])


def test_drop_path_only_in_training_and_checkpointing_is_exact() -> None:
    torch.manual_seed(0)
    model = tiny_swin(drop_path_rate=0.5)
    x = torch.randn(2, 3, 40, 56)
    with torch.no_grad():
        eval_out = model(x)["res5"]
        model.train()
        torch.manual_seed(1)
        train_a = model(x)["res5"]
    assert not torch.allclose(eval_out, train_a)
    # Drop-path rates rise linearly from 0 over the 8 blocks.
    rates = [blk.drop_path.p for stage in model.layers for blk in stage.blocks]
    assert rates[0] == 0.0 and rates[-1] == pytest.approx(0.5)

    # Gradient checkpointing gives the same values and gradients (no drop-path: deterministic).
    plain = tiny_swin().train()
    ckpt = tiny_swin(use_checkpoint=True).train()
    ckpt.load_state_dict(plain.state_dict())
    grads = []
    for m in (plain, ckpt):
        m.zero_grad()
        out = m(x)
        sum((f * f).mean() for f in out.values()).backward()
        grads.append(m.layers[1].blocks[1].attn.relative_position_bias_table.grad.clone())
    torch.testing.assert_close(grads[0], grads[1])
