"""The temporal refiner (DVIS §3.3): six blocks of long-term temporal self-attention, short-term
temporal convolution, object self-attention, cross-attention to the frame's own queries and FFN;
the video-level class comes from a softmax-over-time weighted mean of the queries (eq. 5).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from dvis_cli.model.layers import MLP, CrossAttentionLayer, FFNLayer, SelfAttentionLayer


@dataclass
class RefinerOutput:
    pred_logits: Tensor  # (B, T, Q, K+1) video-level logits repeated for every frame
    pred_embds: Tensor  # (B, T, Q, C) decoder_norm of the last block
    activation_logits: Tensor  # (B, T, Q) temporal weights before the softmax over T
    pred_masks: Tensor | None  # (B, T, Q, H/4, W/4) when mask features were given
    aux_outputs: list[dict[str, Tensor]] = field(default_factory=list)


class ShortTermConv(nn.Sequential):
    """Conv1d(k=5) -> ReLU -> Conv1d(k=3) over time, 'same' length with replicate padding."""

    def __init__(self, dim: int, kernel_sizes: tuple[int, int] = (5, 3)) -> None:
        k1, k2 = kernel_sizes
        super().__init__(
            nn.Conv1d(dim, dim, k1, padding=k1 // 2, padding_mode="replicate"),
            nn.ReLU(inplace=True),
            nn.Conv1d(dim, dim, k2, padding=k2 // 2, padding_mode="replicate"),
        )


class TemporalRefiner(nn.Module):
    def __init__(
        self,
        num_classes: int,
        hidden_dim: int = 256,
        nheads: int = 8,
        dim_feedforward: int = 2048,
        num_layers: int = 6,
        mask_dim: int = 256,
        conv_kernel_sizes: tuple[int, int] = (5, 3),
    ) -> None:
        super().__init__()
        self.num_layers = num_layers
        self.transformer_time_self_attention_layers = nn.ModuleList(SelfAttentionLayer(hidden_dim, nheads) for _ in range(num_layers))
        self.conv_short_aggregate_layers = nn.ModuleList(ShortTermConv(hidden_dim, conv_kernel_sizes) for _ in range(num_layers))
        self.conv_norms = nn.ModuleList(nn.LayerNorm(hidden_dim) for _ in range(num_layers))
        self.transformer_obj_self_attention_layers = nn.ModuleList(SelfAttentionLayer(hidden_dim, nheads) for _ in range(num_layers))
        self.transformer_cross_attention_layers = nn.ModuleList(CrossAttentionLayer(hidden_dim, nheads) for _ in range(num_layers))
        self.transformer_ffn_layers = nn.ModuleList(FFNLayer(hidden_dim, dim_feedforward) for _ in range(num_layers))
        self.decoder_norm = nn.LayerNorm(hidden_dim)
        self.class_embed = nn.Linear(hidden_dim, num_classes + 1)
        self.mask_embed = MLP(hidden_dim, hidden_dim, mask_dim, 3)
        self.activation_proj = nn.Linear(hidden_dim, 1)
        for p in self.parameters():
            if p.dim() > 1:
                nn.init.xavier_uniform_(p)

    def block(self, i: int, x: Tensor, frame_memory: Tensor) -> Tensor:
        """x: (B, T, Q, C) instance tokens; frame_memory: (Q, B*T, C)."""
        b, t, q, c = x.shape
        # 1. long-term temporal self-attention: sequence T, batch B*Q
        y = self.transformer_time_self_attention_layers[i](x.permute(1, 0, 2, 3).reshape(t, b * q, c))
        # 2. short-term temporal conv on (B*Q, C, T), residual + LayerNorm over channels
        y = y.permute(1, 2, 0)
        y = self.conv_norms[i]((self.conv_short_aggregate_layers[i](y) + y).transpose(1, 2))  # (B*Q, T, C)
        # 3. object self-attention: sequence Q, batch B*T
        y = y.reshape(b, q, t, c).permute(1, 0, 2, 3).reshape(q, b * t, c)
        y = self.transformer_obj_self_attention_layers[i](y)
        # 4. cross-attention to the same frame's tracker-projected segmenter queries; 5. FFN
        y = self.transformer_ffn_layers[i](self.transformer_cross_attention_layers[i](y, frame_memory))
        return y.reshape(q, b, t, c).permute(1, 2, 0, 3)

    def classify(self, normed: Tensor) -> tuple[Tensor, Tensor]:
        """Temporal weighting (eq. 5): (B, T, Q, C) -> logits (B, T, Q, K+1), activation (B, T, Q)."""
        activation = self.activation_proj(normed)  # (B, T, Q, 1)
        weights = activation.softmax(dim=1)
        pooled = (normed * weights).sum(dim=1, keepdim=True)
        logits = self.class_embed(pooled).expand(-1, normed.shape[1], -1, -1)
        return logits, activation[..., 0]

    def predict_masks(self, normed: Tensor, mask_features: Tensor) -> Tensor:
        """normed (B, T, Q, C), mask_features (B, T, mask_dim, h, w) -> (B, T, Q, h, w)."""
        return torch.einsum("btqc,btchw->btqhw", self.mask_embed(normed), mask_features)

    def forward(
        self,
        instance_embeds: Tensor,  # (B, T, Q, C) the tracker's aligned queries (pred_embds)
        frame_embeds: Tensor,  # (B, T, Q, C) tracker.frame_forward(segmenter queries)
        mask_features: Tensor | None = None,  # (B, T, mask_dim, H/4, W/4)
        aux: bool = False,
    ) -> RefinerOutput:
        b, t, q, c = instance_embeds.shape
        memory = frame_embeds.permute(2, 0, 1, 3).reshape(q, b * t, c)
        x, layers = instance_embeds, []
        for i in range(self.num_layers):
            x = self.block(i, x, memory)
            layers.append(x)
        normed = self.decoder_norm(x)
        logits, activation = self.classify(normed)
        masks = self.predict_masks(normed, mask_features) if mask_features is not None else None
        aux_outputs = []
        if aux:
            for y in layers[:-1]:
                y_normed = self.decoder_norm(y)
                y_logits, _ = self.classify(y_normed)
                y_masks = self.predict_masks(y_normed, mask_features) if mask_features is not None else None
                aux_outputs.append({"pred_logits": y_logits, "pred_masks": y_masks})
        return RefinerOutput(logits, normed, activation, masks, aux_outputs)
