"""Small layers shared by the segmenter, the referring tracker and the temporal refiner.

All transformer layers are post-norm with dropout 0, sequence-first (L, N, C), and keep the
official attribute names (`self_attn`, `multihead_attn`, `norm`, `linear1`, ...) so official
checkpoints load by name.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def _with_pos(x: Tensor, pos: Tensor | None) -> Tensor:
    return x if pos is None else x + pos


class SelfAttentionLayer(nn.Module):
    """LayerNorm(x + MHA(q=x+pos, k=x+pos, v=x))."""

    def __init__(self, d_model: int, nhead: int) -> None:
        super().__init__()
        self.self_attn = nn.MultiheadAttention(d_model, nhead, dropout=0.0)
        self.norm = nn.LayerNorm(d_model)

    def forward(self, tgt: Tensor, query_pos: Tensor | None = None) -> Tensor:  # (L, N, C)
        q = k = _with_pos(tgt, query_pos)
        return self.norm(tgt + self.self_attn(q, k, value=tgt, need_weights=False)[0])


class CrossAttentionLayer(nn.Module):
    """LayerNorm(tgt + MHA(q=tgt+query_pos, k=memory+pos, v=memory))."""

    def __init__(self, d_model: int, nhead: int) -> None:
        super().__init__()
        self.multihead_attn = nn.MultiheadAttention(d_model, nhead, dropout=0.0)
        self.norm = nn.LayerNorm(d_model)

    def forward(
        self,
        tgt: Tensor,  # (Lq, N, C)
        memory: Tensor,  # (Lk, N, C)
        attn_mask: Tensor | None = None,  # (N*heads, Lq, Lk) bool, True = blocked
        pos: Tensor | None = None,
        query_pos: Tensor | None = None,
    ) -> Tensor:
        out = self.multihead_attn(
            _with_pos(tgt, query_pos), _with_pos(memory, pos), value=memory, attn_mask=attn_mask, need_weights=False
        )[0]
        return self.norm(tgt + out)


class ReferringCrossAttentionLayer(nn.Module):
    """Referring cross-attention (paper eq. 2): RCA(ID, Q, K, V) = LayerNorm(ID + MHA(Q, K, V)).

    The residual branch carries the identification ID (the matched segmenter query, or the previous
    layer's output) while the attention query is the tracker's reference from the previous frame.
    """

    def __init__(self, d_model: int, nhead: int) -> None:
        super().__init__()
        self.multihead_attn = nn.MultiheadAttention(d_model, nhead, dropout=0.0)
        self.norm = nn.LayerNorm(d_model)

    def forward(self, identification: Tensor, query: Tensor, memory: Tensor) -> Tensor:  # (L, N, C)
        out = self.multihead_attn(query, memory, value=memory, need_weights=False)[0]
        return self.norm(identification + out)


class FFNLayer(nn.Module):
    """LayerNorm(x + Linear2(ReLU(Linear1(x))))."""

    def __init__(self, d_model: int, dim_feedforward: int) -> None:
        super().__init__()
        self.linear1 = nn.Linear(d_model, dim_feedforward)
        self.linear2 = nn.Linear(dim_feedforward, d_model)
        self.norm = nn.LayerNorm(d_model)

    def forward(self, x: Tensor) -> Tensor:
        return self.norm(x + self.linear2(F.relu(self.linear1(x))))


class MLP(nn.Module):
    """Linear layers with ReLU between them (none after the last)."""

    def __init__(self, input_dim: int, hidden_dim: int, output_dim: int, num_layers: int) -> None:
        super().__init__()
        dims = [input_dim] + [hidden_dim] * (num_layers - 1)
        outs = [hidden_dim] * (num_layers - 1) + [output_dim]
        self.layers = nn.ModuleList(nn.Linear(i, o) for i, o in zip(dims, outs))

    def forward(self, x: Tensor) -> Tensor:
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i < len(self.layers) - 1:
                x = F.relu(x)
        return x


class Conv2d(nn.Conv2d):
    """A convolution with an optional norm (a child module named `norm`) and activation.

    detectron2's layout: the norm is a child of the conv, so its keys are `<conv>.norm.*`.
    """

    def __init__(self, *args, norm: nn.Module | None = None, activation: bool = False, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.norm = norm
        self.activation = activation

    def forward(self, x: Tensor) -> Tensor:
        x = super().forward(x)
        if self.norm is not None:
            x = self.norm(x)
        return F.relu(x) if self.activation else x


def sine_position_embedding(
    height: int, width: int, num_pos_feats: int = 128, temperature: float = 10000.0, device=None
) -> Tensor:  # (num_pos_feats * 2, H, W): y-channels first, then x-channels
    """DETR's normalised sine embedding with an all-valid mask (scale 2*pi, eps 1e-6), in fp32."""
    ones = torch.ones(1, height, width, dtype=torch.float32, device=device)
    y_embed = ones.cumsum(1)
    x_embed = ones.cumsum(2)
    eps, scale = 1e-6, 2 * math.pi
    y_embed = y_embed / (y_embed[:, -1:, :] + eps) * scale
    x_embed = x_embed / (x_embed[:, :, -1:] + eps) * scale
    dim_t = torch.arange(num_pos_feats, dtype=torch.float32, device=device)
    dim_t = temperature ** (2 * torch.div(dim_t, 2, rounding_mode="floor") / num_pos_feats)
    pos_x = x_embed[:, :, :, None] / dim_t
    pos_y = y_embed[:, :, :, None] / dim_t
    pos_x = torch.stack((pos_x[:, :, :, 0::2].sin(), pos_x[:, :, :, 1::2].cos()), dim=4).flatten(3)
    pos_y = torch.stack((pos_y[:, :, :, 0::2].sin(), pos_y[:, :, :, 1::2].cos()), dim=4).flatten(3)
    return torch.cat((pos_y, pos_x), dim=3).permute(0, 3, 1, 2)[0]
