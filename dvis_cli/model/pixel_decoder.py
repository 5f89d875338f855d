"""Mask2Former's pixel decoder: a multi-scale deformable-attention encoder over the three coarsest
backbone levels, then an FPN step down to stride 4 and a 1x1 conv giving the mask features.

Runs in fp32 even under autocast (the official `forward_features` is autocast-disabled).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dvis_cli.model.layers import Conv2d, sine_position_embedding
from dvis_cli.ops.ms_deform_attn import ms_deform_attn


class MSDeformAttn(nn.Module):
    """Multi-scale deformable attention (Deformable DETR): each query samples `n_points` locations
    per head and level around its reference point and mixes them with softmaxed weights."""

    def __init__(self, d_model: int = 256, n_levels: int = 3, n_heads: int = 8, n_points: int = 4) -> None:
        super().__init__()
        self.d_model, self.n_levels, self.n_heads, self.n_points = d_model, n_levels, n_heads, n_points
        self.sampling_offsets = nn.Linear(d_model, n_heads * n_levels * n_points * 2)
        self.attention_weights = nn.Linear(d_model, n_heads * n_levels * n_points)
        self.value_proj = nn.Linear(d_model, d_model)
        self.output_proj = nn.Linear(d_model, d_model)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.zeros_(self.sampling_offsets.weight)
        angles = torch.arange(self.n_heads, dtype=torch.float32) * (2.0 * math.pi / self.n_heads)
        grid = torch.stack([angles.cos(), angles.sin()], -1)
        grid = (grid / grid.abs().max(-1, keepdim=True)[0]).view(self.n_heads, 1, 1, 2)
        grid = grid.repeat(1, self.n_levels, self.n_points, 1)
        grid = grid * torch.arange(1, self.n_points + 1, dtype=torch.float32).view(1, 1, -1, 1)
        with torch.no_grad():
            self.sampling_offsets.bias.copy_(grid.view(-1))
        nn.init.zeros_(self.attention_weights.weight)
        nn.init.zeros_(self.attention_weights.bias)
        for lin in (self.value_proj, self.output_proj):
            nn.init.xavier_uniform_(lin.weight)
            nn.init.zeros_(lin.bias)

    def forward(
        self,
        query: Tensor,  # (N, Lq, C)
        reference_points: Tensor,  # (N, Lq, n_levels, 2), (x, y) in [0, 1]
        value_in: Tensor,  # (N, S, C)
        spatial_shapes: Tensor,  # (n_levels, 2) int64 (H, W)
        level_start_index: Tensor,  # (n_levels,)
    ) -> Tensor:  # (N, Lq, C)
        n, lq, _ = query.shape
        value = self.value_proj(value_in).view(n, value_in.shape[1], self.n_heads, self.d_model // self.n_heads)
        offsets = self.sampling_offsets(query).view(n, lq, self.n_heads, self.n_levels, self.n_points, 2)
        weights = self.attention_weights(query).view(n, lq, self.n_heads, self.n_levels * self.n_points)
        weights = F.softmax(weights, -1).view(n, lq, self.n_heads, self.n_levels, self.n_points)
        normalizer = torch.stack([spatial_shapes[..., 1], spatial_shapes[..., 0]], -1)  # (W, H)
        locations = reference_points[:, :, None, :, None, :] + offsets / normalizer[None, None, None, :, None, :]
        out = ms_deform_attn(value, spatial_shapes, level_start_index, locations, weights)
        return self.output_proj(out)


class DeformableEncoderLayer(nn.Module):
    """Post-norm: x = norm1(x + MSDeformAttn(x + pos)); x = norm2(x + FFN(x))."""

    def __init__(self, d_model: int, d_ffn: int, n_levels: int, n_heads: int, n_points: int) -> None:
        super().__init__()
        self.self_attn = MSDeformAttn(d_model, n_levels, n_heads, n_points)
        self.norm1 = nn.LayerNorm(d_model)
        self.linear1 = nn.Linear(d_model, d_ffn)
        self.linear2 = nn.Linear(d_ffn, d_model)
        self.norm2 = nn.LayerNorm(d_model)

    def forward(self, src: Tensor, pos: Tensor, reference_points: Tensor, spatial_shapes: Tensor, level_start: Tensor) -> Tensor:
        src = self.norm1(src + self.self_attn(src + pos, reference_points, src, spatial_shapes, level_start))
        return self.norm2(src + self.linear2(F.relu(self.linear1(src))))


class DeformableEncoder(nn.Module):
    def __init__(self, num_layers: int, **layer_kwargs) -> None:
        super().__init__()
        self.layers = nn.ModuleList(DeformableEncoderLayer(**layer_kwargs) for _ in range(num_layers))

    @staticmethod
    def reference_points(spatial_shapes: list[tuple[int, int]], n_levels: int, device) -> Tensor:
        """Pixel centres of every level, normalised to [0, 1]: (1, S, n_levels, 2) in (x, y)."""
        points = []
        for h, w in spatial_shapes:
            ref_y, ref_x = torch.meshgrid(
                torch.linspace(0.5, h - 0.5, h, dtype=torch.float32, device=device),
                torch.linspace(0.5, w - 0.5, w, dtype=torch.float32, device=device),
                indexing="ij",
            )
            points.append(torch.stack((ref_x.reshape(-1) / w, ref_y.reshape(-1) / h), -1))
        return torch.cat(points, 0)[None, :, None, :].expand(1, -1, n_levels, 2)

    def forward(self, src: Tensor, pos: Tensor, spatial_shapes: Tensor, level_start: Tensor) -> Tensor:
        shapes = [(int(h), int(w)) for h, w in spatial_shapes.tolist()]
        ref = self.reference_points(shapes, len(shapes), src.device).expand(src.shape[0], -1, -1, -1)
        for layer in self.layers:
            src = layer(src, pos, ref, spatial_shapes, level_start)
        return src


class DeformableTransformerEncoderOnly(nn.Module):
    """Flattens the levels (coarsest first), adds level embeddings to the sine positions, encodes."""

    def __init__(self, d_model: int, n_heads: int, num_layers: int, d_ffn: int, n_levels: int, n_points: int) -> None:
        super().__init__()
        self.level_embed = nn.Parameter(torch.empty(n_levels, d_model))
        self.encoder = DeformableEncoder(
            num_layers, d_model=d_model, d_ffn=d_ffn, n_levels=n_levels, n_heads=n_heads, n_points=n_points
        )
        nn.init.normal_(self.level_embed)

    def forward(self, srcs: list[Tensor], pos_embeds: list[Tensor]) -> tuple[Tensor, Tensor, Tensor]:
        flat, flat_pos, shapes = [], [], []
        for lvl, (src, pos) in enumerate(zip(srcs, pos_embeds)):
            shapes.append(src.shape[-2:])
            flat.append(src.flatten(2).transpose(1, 2))  # (N, HW, C)
            flat_pos.append(pos.flatten(2).transpose(1, 2) + self.level_embed[lvl].view(1, 1, -1))
        spatial_shapes = torch.as_tensor(shapes, dtype=torch.long, device=srcs[0].device)
        level_start = torch.cat((spatial_shapes.new_zeros(1), spatial_shapes.prod(1).cumsum(0)[:-1]))
        memory = self.encoder(torch.cat(flat, 1), torch.cat(flat_pos, 1), spatial_shapes, level_start)
        return memory, spatial_shapes, level_start


class MSDeformAttnPixelDecoder(nn.Module):
    """Backbone features {res2..res5} -> (mask_features at stride 4, [stride 32, 16, 8] maps)."""

    def __init__(
        self,
        in_channels: dict[str, int],  # e.g. {"res2": 256, "res3": 512, "res4": 1024, "res5": 2048}
        in_strides: dict[str, int],
        conv_dim: int = 256,
        mask_dim: int = 256,
        num_groups: int = 32,
        encoder_layers: int = 6,
        encoder_ffn_dim: int = 1024,
        encoder_heads: int = 8,
        encoder_points: int = 4,
        transformer_in_features: tuple[str, ...] = ("res3", "res4", "res5"),
        common_stride: int = 4,
    ) -> None:
        super().__init__()
        self.in_features = sorted(in_channels, key=lambda k: in_strides[k])  # fine to coarse
        self.transformer_in_features = sorted(transformer_in_features, key=lambda k: in_strides[k])
        n_levels = len(self.transformer_in_features)
        # input_proj[0] is the coarsest level (res5).
        self.input_proj = nn.ModuleList(
            nn.Sequential(nn.Conv2d(in_channels[f], conv_dim, 1), nn.GroupNorm(num_groups, conv_dim))
            for f in self.transformer_in_features[::-1]
        )
        self.transformer = DeformableTransformerEncoderOnly(
            conv_dim, encoder_heads, encoder_layers, encoder_ffn_dim, n_levels, encoder_points
        )
        self.mask_features = nn.Conv2d(conv_dim, mask_dim, 1)
        min_stride = min(in_strides[f] for f in self.transformer_in_features)
        self.num_fpn_levels = int(math.log2(min_stride) - math.log2(common_stride))
        self.fpn_features = self.in_features[: self.num_fpn_levels][::-1]
        for idx, f in enumerate(self.fpn_features):
            self.add_module(
                f"adapter_{idx + 1}", Conv2d(in_channels[f], conv_dim, 1, bias=False, norm=nn.GroupNorm(num_groups, conv_dim))
            )
            self.add_module(
                f"layer_{idx + 1}",
                Conv2d(conv_dim, conv_dim, 3, padding=1, bias=False, norm=nn.GroupNorm(num_groups, conv_dim), activation=True),
            )
        self.num_feature_levels = n_levels
        self.conv_dim = conv_dim
        self._init_weights()

    def _init_weights(self) -> None:
        for proj in self.input_proj:
            nn.init.xavier_uniform_(proj[0].weight, gain=1)
            nn.init.zeros_(proj[0].bias)
        nn.init.kaiming_uniform_(self.mask_features.weight, a=1)
        nn.init.zeros_(self.mask_features.bias)
        for idx in range(len(self.fpn_features)):
            for name in (f"adapter_{idx + 1}", f"layer_{idx + 1}"):
                nn.init.kaiming_uniform_(getattr(self, name).weight, a=1)

    @torch.autocast("cuda", enabled=False)
    @torch.autocast("cpu", enabled=False)
    def forward(self, features: dict[str, Tensor]) -> tuple[Tensor, list[Tensor]]:
        srcs, pos = [], []
        for idx, f in enumerate(self.transformer_in_features[::-1]):
            x = features[f].float()
            srcs.append(self.input_proj[idx](x))
            pe = sine_position_embedding(x.shape[-2], x.shape[-1], self.conv_dim // 2, device=x.device)
            pos.append(pe[None].expand(x.shape[0], -1, -1, -1))
        memory, spatial_shapes, level_start = self.transformer(srcs, pos)
        n = memory.shape[0]
        sizes = spatial_shapes.prod(1).tolist()
        out = [
            z.transpose(1, 2).reshape(n, -1, int(h), int(w))
            for z, (h, w) in zip(memory.split(sizes, dim=1), spatial_shapes.tolist())
        ]
        for idx, f in enumerate(self.fpn_features):
            lateral = getattr(self, f"adapter_{idx + 1}")(features[f].float())
            y = lateral + F.interpolate(out[-1], size=lateral.shape[-2:], mode="bilinear", align_corners=False)
            out.append(getattr(self, f"layer_{idx + 1}")(y))
        multi_scale = out[: self.num_feature_levels]  # [stride 32, 16, 8]
        return self.mask_features(out[-1]), multi_scale
