"""The referring tracker (DVIS §3.2): per frame, the segmenter's queries are Hungarian-matched to
the previous frame's, then denoised by six Referring Cross-Attention -> self-attention -> FFN
layers whose attention query is the tracker's own output for the previous frame.

State is explicit (`TrackerState`), so a video can be fed window by window.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment
from torch import Tensor, nn

from dvis_cli.model.layers import MLP, FFNLayer, ReferringCrossAttentionLayer, SelfAttentionLayer


@dataclass
class TrackerState:
    reference: Tensor  # (Q, B, C) previous frame's final-layer tracker output (before decoder_norm)
    last_frame_embeds: Tensor  # (Q, B, C) previous frame's segmenter queries, reordered to track slots


@dataclass
class TrackerOutput:
    pred_logits: Tensor  # (B, T, Q, K+1) final layer
    pred_embds: Tensor  # (B, T, Q, C) decoder_norm of the final layer: track slot i = one object
    pred_masks: Tensor | None  # (B, T, Q, H/4, W/4) when mask features were given
    match_indices: Tensor  # (B, T, Q) long: segmenter query aligned to track slot i, per frame
    aux_outputs: list[dict[str, Tensor]] = field(default_factory=list)  # earlier layers (training)


def match_queries(reference: Tensor, current: Tensor, official_orientation: bool) -> np.ndarray:
    """Hungarian pre-matching on 1 - cosine similarity; returns for each reference slot the index
    of the current query that continues it.

    reference, current: (Q, C). With `official_orientation` the official DVIS quirk is reproduced:
    it solves the transposed problem and takes the column indices, which is the *inverse*
    permutation (right for swaps, wrong for longer cycles). DVIS checkpoints were trained with it.
    """
    ref = reference.detach().float()
    cur = current.detach().float()
    ref = ref / (ref.norm(dim=1, keepdim=True) + 1e-6)
    cur = cur / (cur.norm(dim=1, keepdim=True) + 1e-6)
    cost = (1 - ref @ cur.t()).cpu()  # (Q_ref, Q_cur)
    cost = torch.nan_to_num(cost, nan=0.0).numpy()
    if official_orientation:
        return linear_sum_assignment(cost.T)[1]
    rows, cols = linear_sum_assignment(cost)
    out = np.empty(cost.shape[0], dtype=np.int64)
    out[rows] = cols
    return out


class ReferringTracker(nn.Module):
    def __init__(
        self,
        num_classes: int,
        hidden_dim: int = 256,
        nheads: int = 8,
        dim_feedforward: int = 2048,
        num_layers: int = 6,
        mask_dim: int = 256,
        official_matching: bool = True,
    ) -> None:
        super().__init__()
        self.num_layers = num_layers
        self.official_matching = official_matching
        self.transformer_self_attention_layers = nn.ModuleList(SelfAttentionLayer(hidden_dim, nheads) for _ in range(num_layers))
        self.transformer_cross_attention_layers = nn.ModuleList(
            ReferringCrossAttentionLayer(hidden_dim, nheads) for _ in range(num_layers)
        )
        self.transformer_ffn_layers = nn.ModuleList(FFNLayer(hidden_dim, dim_feedforward) for _ in range(num_layers))
        self.decoder_norm = nn.LayerNorm(hidden_dim)
        self.class_embed = nn.Linear(hidden_dim, num_classes + 1)
        self.mask_embed = MLP(hidden_dim, hidden_dim, mask_dim, 3)
        for p in self.parameters():
            if p.dim() > 1:
                nn.init.xavier_uniform_(p)

    def _layers(self, identification: Tensor, reference: Tensor | None, memory: Tensor) -> list[Tensor]:
        """Run the 6 layers. reference None: a first frame, where each layer queries with its own input."""
        outputs, x = [], identification
        for rca, sa, ffn in zip(
            self.transformer_cross_attention_layers, self.transformer_self_attention_layers, self.transformer_ffn_layers
        ):
            x = rca(x, x if reference is None else reference, memory)
            x = ffn(sa(x))
            outputs.append(x)
        return outputs

    def _match(self, reference: Tensor, current: Tensor) -> Tensor:  # (Q, B, C) x2 -> (Q, B) indices
        cols = [
            torch.from_numpy(match_queries(reference[:, b], current[:, b], self.official_matching))
            for b in range(current.shape[1])
        ]
        return torch.stack(cols, 1).to(current.device)

    def heads(self, x: Tensor, mask_features: Tensor | None) -> tuple[Tensor, Tensor, Tensor | None]:
        """x: (B, T, Q, C) un-normed -> logits (B,T,Q,K+1), normed (B,T,Q,C), masks (B,T,Q,h,w)."""
        normed = self.decoder_norm(x)
        logits = self.class_embed(normed)
        masks = None
        if mask_features is not None:
            masks = torch.einsum("btqc,btchw->btqhw", self.mask_embed(normed), mask_features)
        return logits, normed, masks

    def forward(
        self,
        frame_embeds: Tensor,  # (B, T, Q, C) segmenter queries (after decoder_norm)
        mask_features: Tensor | None,  # (B, T, mask_dim, H/4, W/4)
        state: TrackerState | None = None,  # None: this window starts a video
        aux: bool = False,
    ) -> tuple[TrackerOutput, TrackerState]:
        per_frame, indices = [], []
        for t in range(frame_embeds.shape[1]):
            current = frame_embeds[:, t].transpose(0, 1)  # (Q, B, C)
            if state is None:
                idx = torch.arange(current.shape[0], device=current.device)[:, None].expand(-1, current.shape[1])
                layers = self._layers(current, None, current)
                aligned = current
            else:
                idx = self._match(state.last_frame_embeds, current)
                aligned = torch.gather(current, 0, idx[..., None].expand_as(current))
                layers = self._layers(aligned, state.reference, current)
            state = TrackerState(reference=layers[-1], last_frame_embeds=aligned)
            per_frame.append(torch.stack(layers))  # (L, Q, B, C)
            indices.append(idx.t())
        stacked = torch.stack(per_frame, 1).permute(0, 3, 1, 2, 4)  # (L, B, T, Q, C)
        last = len(stacked) - 1
        logits, normed, masks = self.heads(stacked[last], mask_features)
        aux_outputs = []
        if aux:
            for layer in range(last):
                a_logits, _, a_masks = self.heads(stacked[layer], mask_features)
                aux_outputs.append({"pred_logits": a_logits, "pred_masks": a_masks})
        out = TrackerOutput(logits, normed, masks, torch.stack(indices, 1), aux_outputs)
        return out, state

    def frame_forward(self, frame_embeds: Tensor, chunk: int = 64) -> Tensor:
        """Each frame's segmenter queries through the six layers as if it were a first frame.
        (B, T, Q, C) -> (B, T, Q, C) after decoder_norm: the refiner's cross-attention memory.
        Frames are independent here, so they go `chunk` at a time (bounded memory, same numbers)."""
        b, t, q, c = frame_embeds.shape
        flat = frame_embeds.reshape(b * t, q, c)
        outs = []
        for start in range(0, b * t, chunk):
            x = flat[start : start + chunk].transpose(0, 1)  # (Q, n, C)
            outs.append(self.decoder_norm(self._layers(x, None, x)[-1]).transpose(0, 1))
        return torch.cat(outs).reshape(b, t, q, c)
