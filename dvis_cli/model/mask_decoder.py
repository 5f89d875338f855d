"""Mask2Former's masked-attention transformer decoder, run on every frame independently.

Learnable queries attend, layer by layer, to one pixel-decoder level at a time (round robin over
strides 32, 16, 8), restricted to the foreground of the mask predicted by the previous layer.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dvis_cli.model.layers import MLP, CrossAttentionLayer, FFNLayer, SelfAttentionLayer, sine_position_embedding


@dataclass
class DecoderOutput:
    pred_logits: Tensor  # (N, Q, K+1) last prediction
    pred_masks: Tensor  # (N, Q, H/4, W/4) mask logits of the last prediction
    pred_embds: Tensor  # (N, Q, C) decoder_norm of the final queries (what the tracker consumes)
    aux_outputs: list[dict[str, Tensor]]  # the earlier predictions (training: deep supervision)


class MaskedTransformerDecoder(nn.Module):
    def __init__(
        self,
        num_classes: int,
        num_queries: int = 100,
        hidden_dim: int = 256,
        nheads: int = 8,
        dim_feedforward: int = 2048,
        num_layers: int = 9,
        mask_dim: int = 256,
        num_feature_levels: int = 3,
    ) -> None:
        super().__init__()
        self.num_heads = nheads
        self.num_layers = num_layers
        self.num_feature_levels = num_feature_levels
        self.transformer_self_attention_layers = nn.ModuleList(SelfAttentionLayer(hidden_dim, nheads) for _ in range(num_layers))
        self.transformer_cross_attention_layers = nn.ModuleList(CrossAttentionLayer(hidden_dim, nheads) for _ in range(num_layers))
        self.transformer_ffn_layers = nn.ModuleList(FFNLayer(hidden_dim, dim_feedforward) for _ in range(num_layers))
        self.decoder_norm = nn.LayerNorm(hidden_dim)
        self.query_feat = nn.Embedding(num_queries, hidden_dim)  # learnable content
        self.query_embed = nn.Embedding(num_queries, hidden_dim)  # learnable positional embedding
        self.level_embed = nn.Embedding(num_feature_levels, hidden_dim)
        self.class_embed = nn.Linear(hidden_dim, num_classes + 1)
        self.mask_embed = MLP(hidden_dim, hidden_dim, mask_dim, 3)
        for p in self.parameters():
            if p.dim() > 1:
                nn.init.xavier_uniform_(p)

    def prediction_heads(
        self, output: Tensor, mask_features: Tensor, attn_size: tuple[int, int] | None, with_class: bool = True
    ) -> tuple[Tensor | None, Tensor, Tensor | None]:
        """Class logits, mask logits and the attention mask for the next layer (True = blocked)."""
        decoded = self.decoder_norm(output).transpose(0, 1)  # (N, Q, C)
        logits = self.class_embed(decoded) if with_class else None
        masks = torch.einsum("bqc,bchw->bqhw", self.mask_embed(decoded), mask_features)
        attn_mask = None
        if attn_size is not None:
            resized = F.interpolate(masks, size=attn_size, mode="bilinear", align_corners=False)
            attn_mask = resized.sigmoid().flatten(2).unsqueeze(1).repeat(1, self.num_heads, 1, 1).flatten(0, 1) < 0.5
            attn_mask = attn_mask.detach()
        return logits, masks, attn_mask

    def forward(self, features: list[Tensor], mask_features: Tensor, aux: bool = False) -> DecoderOutput:
        # features: [stride 32, 16, 8] maps (N, C, h_l, w_l); mask_features: (N, mask_dim, H/4, W/4)
        src, pos, sizes = [], [], []
        for i, x in enumerate(features):
            sizes.append(tuple(x.shape[-2:]))
            pe = sine_position_embedding(x.shape[-2], x.shape[-1], self.query_feat.weight.shape[1] // 2, device=x.device)
            pos.append(pe.flatten(1).permute(1, 0)[:, None, :].to(x.dtype).expand(-1, x.shape[0], -1))  # (HW, N, C)
            src.append((x.flatten(2) + self.level_embed.weight[i][None, :, None]).permute(2, 0, 1))
        n = src[0].shape[1]
        query_pos = self.query_embed.weight.unsqueeze(1).repeat(1, n, 1)  # (Q, N, C)
        output = self.query_feat.weight.unsqueeze(1).repeat(1, n, 1)
        aux_outputs = []
        logits, masks, attn_mask = self.prediction_heads(output, mask_features, sizes[0], with_class=aux)
        for i in range(self.num_layers):
            if aux:
                aux_outputs.append({"pred_logits": logits, "pred_masks": masks})
            level = i % self.num_feature_levels
            # A query whose predicted mask is empty may attend everywhere.
            attn_mask[torch.where(attn_mask.sum(-1) == attn_mask.shape[-1])] = False
            output = self.transformer_cross_attention_layers[i](
                output, src[level], attn_mask=attn_mask, pos=pos[level], query_pos=query_pos
            )
            output = self.transformer_self_attention_layers[i](output, query_pos=query_pos)
            output = self.transformer_ffn_layers[i](output)
            last = i == self.num_layers - 1
            logits, masks, attn_mask = self.prediction_heads(
                output, mask_features, None if last else sizes[(i + 1) % self.num_feature_levels], with_class=aux or last
            )
        if self.num_layers == 0:
            logits, masks, _ = self.prediction_heads(output, mask_features, None)
        embds = self.decoder_norm(output).transpose(0, 1)
        return DecoderOutput(logits, masks, embds, aux_outputs)
