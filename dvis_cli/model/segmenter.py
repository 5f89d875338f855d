"""The segmenter: Mask2Former (backbone + pixel decoder + masked-attention decoder), per frame."""
from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor, nn

from dvis_cli.model.mask_decoder import MaskedTransformerDecoder
from dvis_cli.model.pixel_decoder import MSDeformAttnPixelDecoder


@dataclass
class SegmenterOutput:
    pred_logits: Tensor  # (T, Q, K+1)
    pred_masks: Tensor  # (T, Q, H/4, W/4) mask logits
    pred_embds: Tensor  # (T, Q, C) normed queries: the tracker's input
    mask_features: Tensor  # (T, mask_dim, H/4, W/4)
    aux_outputs: list[dict[str, Tensor]]


class Mask2Former(nn.Module):
    """Frames are independent images here (batch = frames). Attribute names give the official
    checkpoint prefixes: backbone -> `backbone.*`, pixel_decoder -> `sem_seg_head.pixel_decoder.*`,
    decoder -> `sem_seg_head.predictor.*`."""

    def __init__(self, backbone: nn.Module, pixel_decoder: MSDeformAttnPixelDecoder, decoder: MaskedTransformerDecoder) -> None:
        super().__init__()
        self.backbone = backbone
        self.pixel_decoder = pixel_decoder
        self.decoder = decoder

    def forward(self, images: Tensor, aux: bool = False) -> SegmenterOutput:  # images: (T, 3, H, W) normalised
        features = self.backbone(images)
        mask_features, multi_scale = self.pixel_decoder(features)
        out = self.decoder(multi_scale, mask_features, aux=aux)
        return SegmenterOutput(out.pred_logits, out.pred_masks, out.pred_embds, mask_features, out.aux_outputs)
