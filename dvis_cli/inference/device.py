"""Device and precision choices, checked up front with one clear error."""
from __future__ import annotations

import contextlib

import torch

from dvis_cli.errors import InputError

PRECISIONS = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


def resolve_device(spec: str = "auto") -> torch.device:
    spec = (spec or "auto").lower()
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(spec)
    except RuntimeError:
        raise InputError(f"unknown device {spec!r}; use auto, cpu or cuda[:N]") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise InputError(f"device {spec}: this machine has no CUDA GPU usable by torch; use --device cpu")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise InputError(f"device {spec}: only {torch.cuda.device_count()} CUDA device(s) present")
    elif device.type != "cpu":
        raise InputError(f"unsupported device {spec!r}; use auto, cpu or cuda[:N]")
    return device


def check_precision(precision: str, device: torch.device) -> torch.dtype:
    if precision not in PRECISIONS:
        raise InputError(f"unknown precision {precision!r}; use fp32, fp16 or bf16")
    dtype = PRECISIONS[precision]
    if device.type == "cpu" and dtype == torch.float16:
        raise InputError("fp16 needs a CUDA device; use --precision bf16 or fp32 on the CPU")
    if device.type == "cuda" and dtype == torch.bfloat16 and not torch.cuda.is_bf16_supported():
        raise InputError(f"{device} cannot run bf16; use --precision fp16 or fp32")
    return dtype


def autocast(device: torch.device, dtype: torch.dtype):
    """Mixed precision for everything but the pixel decoder (which forces fp32 itself)."""
    if dtype == torch.float32:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)
