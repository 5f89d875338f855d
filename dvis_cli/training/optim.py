"""AdamW with the official parameter groups and the warmup + multi-step LR schedule."""
from __future__ import annotations

import torch
from torch import nn

_NORMS = (nn.LayerNorm, nn.GroupNorm, nn.BatchNorm2d, nn.SyncBatchNorm)
_NO_DECAY_NAMES = ("relative_position_bias_table", "absolute_pos_embed")


def param_groups(model: nn.Module, lr: float, weight_decay: float, backbone_multiplier: float = 0.1) -> list[dict]:
    """No weight decay on norms, embeddings and Swin's position tables; backbone LR x0.1."""
    groups: dict[tuple[float, float], list] = {}
    seen = set()
    for module_name, module in model.named_modules():
        for name, param in module.named_parameters(recurse=False):
            if not param.requires_grad or id(param) in seen:
                continue
            seen.add(id(param))
            full = f"{module_name}.{name}" if module_name else name
            decay = weight_decay
            if isinstance(module, (*_NORMS, nn.Embedding)) or any(k in full for k in _NO_DECAY_NAMES):
                decay = 0.0
            rate = lr * (backbone_multiplier if f".{full}".startswith((".backbone.", ".segmenter.backbone.")) else 1.0)
            groups.setdefault((rate, decay), []).append(param)
    return [{"params": params, "lr": rate, "weight_decay": decay} for (rate, decay), params in groups.items()]


def build_optimizer(model: nn.Module, lr: float, weight_decay: float, backbone_multiplier: float = 0.1) -> torch.optim.AdamW:
    return torch.optim.AdamW(param_groups(model, lr, weight_decay, backbone_multiplier), lr=lr, weight_decay=weight_decay)


def warmup_multistep(optimizer, max_iter: int, steps: list[float], gamma: float, warmup_iters: int, warmup_factor: float):
    """detectron2's WarmupMultiStepLR (linear warmup) with milestones as fractions of max_iter."""
    milestones = sorted(int(s * max_iter) for s in steps)

    def factor(it: int) -> float:
        f = gamma ** sum(1 for m in milestones if it >= m)
        if it < warmup_iters and warmup_factor < 1.0:
            alpha = it / warmup_iters
            f *= warmup_factor * (1 - alpha) + alpha
        return f

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
