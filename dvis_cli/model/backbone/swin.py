"""Swin Transformer backbone with Mask2Former's ``D2SwinTransformer`` state-dict layout.

Liu et al., "Swin Transformer: Hierarchical Vision Transformer using Shifted Windows" (ICCV 2021),
in the variant used for dense prediction (the one Mask2Former, MinVIS and DVIS wrap as
``D2SwinTransformer``):

* inputs of any size: the image is zero-padded right/bottom to a multiple of the patch size, every
  block pads its (normalised) tokens to a multiple of the window, and every patch merging pads to
  an even size; padded tokens take part in attention unmasked, exactly as in the reference;
* odd-indexed blocks shift the windows by ``window_size // 2`` whatever the feature size;
* each stage's output (before its patch merging) goes through an extra LayerNorm ``norm{i}`` and is
  returned as an NCHW map: ``res2``..``res5`` at strides 4/8/16/32.

State-dict keys (no ``backbone.`` prefix) match the official checkpoints one to one::

    patch_embed.proj.{weight,bias}           patch_embed.norm.{weight,bias}
    layers.{i}.blocks.{j}.norm1.*            layers.{i}.blocks.{j}.attn.relative_position_bias_table
    layers.{i}.blocks.{j}.attn.relative_position_index   (int64, persistent buffer)
    layers.{i}.blocks.{j}.attn.qkv.*         layers.{i}.blocks.{j}.attn.proj.*
    layers.{i}.blocks.{j}.norm2.*            layers.{i}.blocks.{j}.mlp.fc{1,2}.*
    layers.{i}.downsample.norm.*             layers.{i}.downsample.reduction.weight   (i < 3)
    norm{0..3}.{weight,bias}

Shapes in comments: B images, C channels, H x W tokens, ``ws`` the window side, ``Hp x Wp`` the
window-padded grid, ``nW`` windows per image, ``N = ws * ws`` tokens per window.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
import torch.utils.checkpoint
from torch import Tensor, nn

__all__ = [
    "SWIN_PRESETS",
    "DropPath",
    "PatchEmbed",
    "PatchMerging",
    "SwinBlock",
    "SwinConfig",
    "SwinStage",
    "SwinTransformer",
    "WindowAttention",
    "build_swin",
    "relative_position_index",
    "shifted_window_mask",
    "swin_base",
    "swin_large",
    "swin_small",
    "swin_tiny",
    "window_partition",
    "window_reverse",
]

#: Additive attention logit for token pairs that a shifted window joins but that were not
#: neighbours in the image (the reference uses -100, not -inf; kept for identical numerics).
MASKED_LOGIT = -100.0


# --------------------------------------------------------------------------------------------------
# Window helpers
# --------------------------------------------------------------------------------------------------


def window_partition(x: Tensor, window_size: int) -> Tensor:
    """Cut a token grid into non-overlapping windows.

    [B, Hp, Wp, C] -> [B * nW, ws * ws, C], windows in row-major order per image.
    Hp and Wp must be multiples of ``window_size``.
    """
    b, h, w, c = x.shape
    ws = window_size
    x = x.view(b, h // ws, ws, w // ws, ws, c)  # [B, Hp/ws, ws, Wp/ws, ws, C]
    x = x.permute(0, 1, 3, 2, 4, 5)  # [B, Hp/ws, Wp/ws, ws, ws, C]
    return x.reshape(-1, ws * ws, c)  # [B * nW, N, C]


def window_reverse(windows: Tensor, window_size: int, height: int, width: int) -> Tensor:
    """Inverse of :func:`window_partition`: [B * nW, ws * ws, C] -> [B, Hp, Wp, C]."""
    ws = window_size
    c = windows.shape[-1]
    x = windows.view(-1, height // ws, width // ws, ws, ws, c)  # [B, Hp/ws, Wp/ws, ws, ws, C]
    x = x.permute(0, 1, 3, 2, 4, 5)  # [B, Hp/ws, ws, Wp/ws, ws, C]
    return x.reshape(-1, height, width, c)


def relative_position_index(window_size: int) -> Tensor:
    """Index into the relative-position bias table for every (query, key) pair of a window.

    For tokens at (y_q, x_q) and (y_k, x_k) inside a ``ws x ws`` window the offset
    (y_q - y_k, x_q - x_k) lies in [-(ws-1), ws-1]^2; it is shifted to be non-negative and
    flattened row-major over a (2ws-1) x (2ws-1) table. Returns int64 [N, N].
    """
    ws = window_size
    ys, xs = torch.meshgrid(torch.arange(ws), torch.arange(ws), indexing="ij")
    coords = torch.stack([ys.flatten(), xs.flatten()])  # [2, N]
    offsets = coords[:, :, None] - coords[:, None, :]  # [2, N, N]: query minus key
    offsets = offsets + (ws - 1)  # each component in [0, 2ws-2]
    return offsets[0] * (2 * ws - 1) + offsets[1]  # [N, N]


def shifted_window_mask(
    height: int, width: int, window_size: int, shift_size: int, device: torch.device | None = None
) -> Tensor:
    """Additive mask that keeps a shifted window from mixing regions that were not adjacent.

    After the cyclic shift, the last row/column band of windows holds tokens wrapped around from
    the opposite border. The padded, shifted grid [Hp, Wp] is split into 3 x 3 regions along the
    cuts at ``-window_size`` and ``-shift_size``; pairs of tokens in different regions get
    :data:`MASKED_LOGIT`. Padded tokens are *not* masked (as in the reference).
    Returns float [nW, N, N].
    """
    ws, s = window_size, shift_size
    region = torch.zeros(1, height, width, 1, device=device)  # [1, Hp, Wp, 1]
    bands = (slice(0, -ws), slice(-ws, -s), slice(-s, None))
    label = 0
    for rows in bands:
        for cols in bands:
            region[:, rows, cols, :] = label
            label += 1
    region_windows = window_partition(region, ws).squeeze(-1)  # [nW, N]
    differs = region_windows[:, None, :] != region_windows[:, :, None]  # [nW, N, N]
    return torch.zeros(differs.shape, device=device).masked_fill(differs, MASKED_LOGIT)


# --------------------------------------------------------------------------------------------------
# Components
# --------------------------------------------------------------------------------------------------


class DropPath(nn.Module):
    """Stochastic depth: drop the whole residual branch per sample with probability ``p``.

    Kept samples are scaled by 1 / (1 - p); identity at evaluation time or when ``p == 0``.
    """

    def __init__(self, p: float = 0.0) -> None:
        super().__init__()
        self.p = float(p)

    def forward(self, x: Tensor) -> Tensor:
        if self.p == 0.0 or not self.training:
            return x
        keep = 1.0 - self.p
        shape = (x.shape[0],) + (1,) * (x.dim() - 1)  # one draw per sample
        mask = x.new_empty(shape).bernoulli_(keep)
        return x * mask / keep

    def extra_repr(self) -> str:
        return f"p={self.p}"


class PatchEmbed(nn.Module):
    """Non-overlapping ``patch_size`` x ``patch_size`` patches -> ``embed_dim`` tokens + LayerNorm.

    The image is zero-padded on the right/bottom to a multiple of the patch size first.
    """

    def __init__(self, patch_size: int = 4, in_chans: int = 3, embed_dim: int = 96) -> None:
        super().__init__()
        self.patch_size = patch_size
        self.proj = nn.Conv2d(in_chans, embed_dim, kernel_size=patch_size, stride=patch_size)
        self.norm = nn.LayerNorm(embed_dim)

    def forward(self, x: Tensor) -> tuple[Tensor, int, int]:
        """[B, 3, H_img, W_img] -> tokens [B, H * W, C] with H = ceil(H_img / p), W likewise."""
        p = self.patch_size
        pad_h, pad_w = -x.shape[2] % p, -x.shape[3] % p
        if pad_h or pad_w:
            x = F.pad(x, (0, pad_w, 0, pad_h))
        x = self.proj(x)  # [B, C, H, W]
        h, w = x.shape[2], x.shape[3]
        x = x.flatten(2).transpose(1, 2)  # [B, H * W, C]
        return self.norm(x), h, w


class WindowAttention(nn.Module):
    """Multi-head self-attention inside one window, with a learned relative position bias.

    logits = (q * d^-0.5) k^T + bias[relative_position_index] (+ shifted-window mask)
    """

    def __init__(self, dim: int, window_size: int, num_heads: int, qkv_bias: bool = True) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"dim {dim} is not divisible by num_heads {num_heads}")
        self.dim = dim
        self.window_size = window_size
        self.num_heads = num_heads
        self.scale = (dim // num_heads) ** -0.5
        # One learned bias per head for each of the (2ws-1)^2 possible relative offsets.
        self.relative_position_bias_table = nn.Parameter(
            torch.zeros((2 * window_size - 1) ** 2, num_heads)
        )
        # Persistent: the official checkpoints carry it, so strict loading expects it.
        self.register_buffer("relative_position_index", relative_position_index(window_size))
        self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)
        nn.init.trunc_normal_(self.relative_position_bias_table, std=0.02)

    def relative_position_bias(self) -> Tensor:
        """[heads, N, N] bias gathered from the table."""
        n = self.window_size * self.window_size
        bias = self.relative_position_bias_table[self.relative_position_index.view(-1)]
        return bias.view(n, n, self.num_heads).permute(2, 0, 1).contiguous()

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        """x: [B * nW, N, C]; mask: [nW, N, N] additive or None. Returns [B * nW, N, C]."""
        bw, n, c = x.shape
        heads = self.num_heads
        qkv = self.qkv(x).view(bw, n, 3, heads, c // heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)  # each [B * nW, heads, N, d]

        bias = self.relative_position_bias().to(q.dtype)  # [heads, N, N]
        if mask is None:
            # softmax(q k^T * d^-0.5 + bias) v
            out = F.scaled_dot_product_attention(
                q, k, v, attn_mask=bias.unsqueeze(0), scale=self.scale
            )
        else:
            # Same, with the shifted-window mask of each window added. Group the windows of one
            # image with the heads, [B, nW * heads, N, d], so that one [nW * heads, N, N] bias
            # broadcasts over the images instead of being copied for each.
            nw = mask.shape[0]
            bias = (mask.to(q.dtype)[:, None] + bias[None]).reshape(1, nw * heads, n, n)
            q, k, v = (t.reshape(bw // nw, nw * heads, n, c // heads) for t in (q, k, v))
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias, scale=self.scale)
            out = out.view(bw, heads, n, c // heads)  # [B * nW, heads, N, d]
        out = out.transpose(1, 2).reshape(bw, n, c)  # [B * nW, N, C]
        return self.proj(out)

    def extra_repr(self) -> str:
        return f"dim={self.dim}, window_size={self.window_size}, num_heads={self.num_heads}"


class Mlp(nn.Module):
    """Position-wise feed-forward: fc1 (C -> hidden), GELU, fc2 (hidden -> C)."""

    def __init__(self, dim: int, hidden_dim: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden_dim)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden_dim, dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(self.act(self.fc1(x)))


class SwinBlock(nn.Module):
    """One Swin block: (shifted) window attention and an MLP, each pre-norm with a residual.

    x = x + DropPath(crop(unshift(W-MSA(shift(pad(norm1(x)))))))
    x = x + DropPath(MLP(norm2(x)))
    """

    def __init__(
        self,
        dim: int,
        num_heads: int,
        window_size: int = 7,
        shift_size: int = 0,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
        drop_path: float = 0.0,
    ) -> None:
        super().__init__()
        if not 0 <= shift_size < window_size:
            raise ValueError(f"shift_size {shift_size} must be in [0, window_size={window_size})")
        self.window_size = window_size
        self.shift_size = shift_size
        self.norm1 = nn.LayerNorm(dim)
        self.attn = WindowAttention(dim, window_size, num_heads, qkv_bias=qkv_bias)
        self.drop_path = DropPath(drop_path)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x: Tensor, height: int, width: int, attn_mask: Tensor | None) -> Tensor:
        """x: [B, H * W, C]; attn_mask: [nW, N, N] for the padded grid (used when shifted)."""
        b, _, c = x.shape
        ws, s = self.window_size, self.shift_size

        y = self.norm1(x).view(b, height, width, c)  # [B, H, W, C]
        # Pad after the norm, so padded tokens are exact zeros (their keys are the qkv bias).
        pad_h, pad_w = -height % ws, -width % ws
        if pad_h or pad_w:
            y = F.pad(y, (0, 0, 0, pad_w, 0, pad_h))
        hp, wp = height + pad_h, width + pad_w  # [B, Hp, Wp, C]

        if s > 0:
            y = torch.roll(y, shifts=(-s, -s), dims=(1, 2))
        windows = window_partition(y, ws)  # [B * nW, N, C]
        windows = self.attn(windows, mask=attn_mask if s > 0 else None)
        y = window_reverse(windows, ws, hp, wp)  # [B, Hp, Wp, C]
        if s > 0:
            y = torch.roll(y, shifts=(s, s), dims=(1, 2))
        y = y[:, :height, :width, :].reshape(b, height * width, c)

        x = x + self.drop_path(y)
        return x + self.drop_path(self.mlp(self.norm2(x)))


class PatchMerging(nn.Module):
    """2x2 neighbourhood -> one token: concat (4C), LayerNorm(4C), Linear(4C -> 2C, no bias).

    Odd sizes are zero-padded to even first. Concatenation order (as in the checkpoints):
    [x(0::2, 0::2), x(1::2, 0::2), x(0::2, 1::2), x(1::2, 1::2)] in (row, column).
    """

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(4 * dim)
        self.reduction = nn.Linear(4 * dim, 2 * dim, bias=False)

    def forward(self, x: Tensor, height: int, width: int) -> tuple[Tensor, int, int]:
        """[B, H * W, C] -> [B, ceil(H/2) * ceil(W/2), 2C]."""
        b, _, c = x.shape
        x = x.view(b, height, width, c)
        if height % 2 or width % 2:
            x = F.pad(x, (0, 0, 0, width % 2, 0, height % 2))
        x = torch.cat(
            [x[:, 0::2, 0::2], x[:, 1::2, 0::2], x[:, 0::2, 1::2], x[:, 1::2, 1::2]], dim=-1
        )  # [B, H/2, W/2, 4C]
        h2, w2 = x.shape[1], x.shape[2]
        x = x.view(b, h2 * w2, 4 * c)
        return self.reduction(self.norm(x)), h2, w2


class SwinStage(nn.Module):
    """``depth`` blocks alternating regular / shifted windows, then an optional PatchMerging.

    Registered as ``layers.{i}`` (key names ``blocks.{j}`` and ``downsample``).
    """

    def __init__(
        self,
        dim: int,
        depth: int,
        num_heads: int,
        window_size: int = 7,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
        drop_path: tuple[float, ...] | float = 0.0,
        downsample: bool = False,
        use_checkpoint: bool = False,
    ) -> None:
        super().__init__()
        rates = tuple(drop_path) if isinstance(drop_path, (tuple, list)) else (drop_path,) * depth
        if len(rates) != depth:
            raise ValueError(f"{len(rates)} drop-path rates for {depth} blocks")
        self.window_size = window_size
        self.shift_size = window_size // 2
        self.use_checkpoint = use_checkpoint
        self.blocks = nn.ModuleList(
            SwinBlock(
                dim,
                num_heads,
                window_size=window_size,
                shift_size=0 if j % 2 == 0 else self.shift_size,
                mlp_ratio=mlp_ratio,
                qkv_bias=qkv_bias,
                drop_path=rates[j],
            )
            for j in range(depth)
        )
        self.downsample = PatchMerging(dim) if downsample else None

    def forward(self, x: Tensor, height: int, width: int) -> tuple[Tensor, Tensor, int, int]:
        """[B, H * W, C] -> (stage output [B, H * W, C], next input [B, H' * W', C'], H', W').

        Without a downsample the next input is the stage output and (H', W') = (H, W).
        """
        ws = self.window_size
        hp, wp = height + (-height % ws), width + (-width % ws)
        mask = shifted_window_mask(hp, wp, ws, self.shift_size, device=x.device)  # [nW, N, N]
        for block in self.blocks:
            if self.use_checkpoint and self.training and torch.is_grad_enabled():
                x = torch.utils.checkpoint.checkpoint(
                    block, x, height, width, mask, use_reentrant=False
                )
            else:
                x = block(x, height, width, mask)
        if self.downsample is None:
            return x, x, height, width
        x_down, h2, w2 = self.downsample(x, height, width)
        return x, x_down, h2, w2


# --------------------------------------------------------------------------------------------------
# Backbone
# --------------------------------------------------------------------------------------------------


class SwinTransformer(nn.Module):
    """Hierarchical Swin backbone returning ``{"res2", "res3", "res4", "res5"}`` NCHW features.

    Stage i has ``embed_dim * 2**i`` channels at stride ``patch_size * 2**i``. Drop-path rates rise
    linearly from 0 to ``drop_path_rate`` over all blocks. No absolute position embedding.
    """

    out_features: tuple[str, ...] = ("res2", "res3", "res4", "res5")
    #: The segmenter pads batches to a multiple of this (``D2SwinTransformer.size_divisibility``).
    size_divisibility: int = 32

    def __init__(
        self,
        embed_dim: int,
        depths: tuple[int, ...],
        num_heads: tuple[int, ...],
        window_size: int = 7,
        patch_size: int = 4,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
        drop_path_rate: float = 0.0,
        in_chans: int = 3,
        use_checkpoint: bool = False,
    ) -> None:
        super().__init__()
        if len(depths) != len(num_heads):
            raise ValueError(f"depths {depths} and num_heads {num_heads} differ in length")
        if len(depths) != len(self.out_features):
            raise ValueError(f"expected {len(self.out_features)} stages, got {len(depths)}")
        num_stages = len(depths)
        dims = [embed_dim * 2**i for i in range(num_stages)]
        self.embed_dim = embed_dim
        self.depths = tuple(depths)
        self.num_heads = tuple(num_heads)
        self.window_size = window_size
        self.patch_size = patch_size
        self.out_channels: dict[str, int] = dict(zip(self.out_features, dims))
        self.out_strides: dict[str, int] = {
            name: patch_size * 2**i for i, name in enumerate(self.out_features)
        }

        self.patch_embed = PatchEmbed(patch_size, in_chans, embed_dim)
        rates = torch.linspace(0, drop_path_rate, sum(depths), device="cpu").tolist()
        self.layers = nn.ModuleList()
        for i in range(num_stages):
            first = sum(depths[:i])
            self.layers.append(
                SwinStage(
                    dims[i],
                    depths[i],
                    num_heads[i],
                    window_size=window_size,
                    mlp_ratio=mlp_ratio,
                    qkv_bias=qkv_bias,
                    drop_path=tuple(rates[first : first + depths[i]]),
                    downsample=i < num_stages - 1,
                    use_checkpoint=use_checkpoint,
                )
            )
        # Output norms norm0..norm3 (not in ImageNet checkpoints; trained with the segmenter).
        for i, dim in enumerate(dims):
            self.add_module(f"norm{i}", nn.LayerNorm(dim))
        self.apply(_init_weights)

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        """[B, 3, H_img, W_img] -> {res2: [B, C, ceil(H_img/4), .], ..., res5: [B, 8C, ., .]}."""
        if x.dim() != 4:
            raise ValueError(f"expected a [B, C, H, W] image batch, got shape {tuple(x.shape)}")
        x, h, w = self.patch_embed(x)  # [B, H * W, C]
        outputs: dict[str, Tensor] = {}
        for i, (name, stage) in enumerate(zip(self.out_features, self.layers)):
            out, x, h_next, w_next = stage(x, h, w)
            out = getattr(self, f"norm{i}")(out)  # [B, H * W, C_i]
            outputs[name] = out.view(-1, h, w, out.shape[-1]).permute(0, 3, 1, 2).contiguous()
            h, w = h_next, w_next
        return outputs

    def output_shape(self) -> dict[str, tuple[int, int]]:
        """{name: (channels, stride)} for each returned feature map."""
        return {n: (self.out_channels[n], self.out_strides[n]) for n in self.out_features}


def _init_weights(module: nn.Module) -> None:
    """Reference initialisation: truncated normal (std 0.02) linears, unit LayerNorms."""
    if isinstance(module, nn.Linear):
        nn.init.trunc_normal_(module.weight, std=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)


# --------------------------------------------------------------------------------------------------
# Presets
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SwinConfig:
    """Hyper-parameters of one Swin variant (the ``MODEL.SWIN.*`` keys of the Mask2Former YAMLs)."""

    embed_dim: int
    depths: tuple[int, ...]
    num_heads: tuple[int, ...]
    window_size: int = 7
    patch_size: int = 4
    mlp_ratio: float = 4.0
    qkv_bias: bool = True
    drop_path_rate: float = 0.3

    def build(self, **overrides: object) -> SwinTransformer:
        """A freshly initialised backbone; ``overrides`` replace fields or add
        ``use_checkpoint`` / ``in_chans``."""
        return SwinTransformer(**{**asdict(self), **overrides})  # type: ignore[arg-type]


#: Mask2Former's Swin backbones (DROP_PATH_RATE 0.3 in all of its Swin configs; only the
#: training forward uses it). Swin-B is the 384 / window-12 variant, as is Swin-L.
SWIN_PRESETS: dict[str, SwinConfig] = {
    "swin_tiny": SwinConfig(96, (2, 2, 6, 2), (3, 6, 12, 24), window_size=7),
    "swin_small": SwinConfig(96, (2, 2, 18, 2), (3, 6, 12, 24), window_size=7),
    "swin_base": SwinConfig(128, (2, 2, 18, 2), (4, 8, 16, 32), window_size=12),
    "swin_large": SwinConfig(192, (2, 2, 18, 2), (6, 12, 24, 48), window_size=12),
}


def build_swin(name: str, **overrides: object) -> SwinTransformer:
    """Build a preset by name (``swin_tiny``, ``swin_small``, ``swin_base``, ``swin_large``)."""
    try:
        config = SWIN_PRESETS[name]
    except KeyError:
        choices = ", ".join(sorted(SWIN_PRESETS))
        raise ValueError(f"unknown Swin preset {name!r}; choose from {choices}") from None
    return config.build(**overrides)


def swin_tiny(**overrides: object) -> SwinTransformer:
    """Swin-T: C 96, depths 2-2-6-2, heads 3-6-12-24, window 7 (27.5 M parameters)."""
    return build_swin("swin_tiny", **overrides)


def swin_small(**overrides: object) -> SwinTransformer:
    """Swin-S: C 96, depths 2-2-18-2, heads 3-6-12-24, window 7 (48.8 M parameters)."""
    return build_swin("swin_small", **overrides)


def swin_base(**overrides: object) -> SwinTransformer:
    """Swin-B (384): C 128, depths 2-2-18-2, heads 4-8-16-32, window 12 (86.9 M parameters)."""
    return build_swin("swin_base", **overrides)


def swin_large(**overrides: object) -> SwinTransformer:
    """Swin-L (384): C 192, depths 2-2-18-2, heads 6-12-24-48, window 12 (195.2 M parameters).

    The backbone of the Swin-L MinVIS / DVIS checkpoints.
    """
    return build_swin("swin_large", **overrides)
