"""Which implementation of multi-scale deformable attention runs where, and why.

`choose(device, dtype)` is the rule the dispatcher (`dvis_cli.ops.ms_deform_attn`) applies to every
call; `device_paths()` applies it to every device of this machine for `dvis doctor`;
`fallback_events()` lists the (device, dtype) pairs that actually took the fallback in this process,
with the reason.

The rule: the compiled kernel runs when `dvis_cli._C` loaded, DVIS_OPS_FALLBACK is not set, and the
kernel exists for the device and dtype: float32/float64 on CPU; float32/float64/float16/bfloat16 on
CUDA (when the build has the CUDA kernel). Everything else runs the pure-PyTorch reference.
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass

import torch

from dvis_cli.ops._ext import load_ext

KERNEL = "kernel"
FALLBACK = "fallback"

CPU_DTYPES = (torch.float32, torch.float64)
CUDA_DTYPES = (torch.float32, torch.float64, torch.float16, torch.bfloat16)

_log = logging.getLogger("dvis_cli.ops")
_EVENTS: dict[tuple[str, str], str] = {}


@dataclass(frozen=True)
class PathChoice:
    device: str  # 'cpu', 'cuda:0', ...
    dtype: str  # 'float32', ...
    path: str  # KERNEL or FALLBACK
    reason: str  # why the fallback, or what runs

    @property
    def uses_kernel(self) -> bool:
        return self.path == KERNEL


def fallback_forced() -> bool:
    """DVIS_OPS_FALLBACK=1 (or true/yes/on) forces the pure-PyTorch path everywhere."""
    return os.environ.get("DVIS_OPS_FALLBACK", "").strip().lower() in {"1", "true", "yes", "on"}


def _dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def choose(device: torch.device | str, dtype: torch.dtype) -> PathChoice:
    """The implementation that `ms_deform_attn` uses for inputs on `device` with `dtype`."""
    device = torch.device(device)
    name, dtype_name = str(device), _dtype_name(dtype)

    def fallback(reason: str) -> PathChoice:
        return PathChoice(name, dtype_name, FALLBACK, reason)

    if fallback_forced():
        return fallback("DVIS_OPS_FALLBACK is set")
    ext = load_ext()
    if not ext.loaded:
        return fallback(ext.reason or "dvis_cli._C is unavailable")
    if device.type == "cpu":
        if dtype not in CPU_DTYPES:
            return fallback(f"the CPU kernel has no {dtype_name} version (float32/float64 only)")
        return PathChoice(name, dtype_name, KERNEL, "C++ kernel (dvis_cli._C)")
    if device.type == "cuda":
        if not ext.with_cuda:
            return fallback("dvis_cli._C has no CUDA kernel (at build time torch was a CPU build, nvcc was "
                            "missing or of another CUDA major, or compiling it failed); "
                            "`dvis build-ops --cuda -v` builds it and shows why not")
        if dtype not in CUDA_DTYPES:
            return fallback(f"the CUDA kernel has no {dtype_name} version")
        return PathChoice(name, dtype_name, KERNEL, f"CUDA kernel (dvis_cli._C, CUDA {ext.cuda_version})")
    return fallback(f"no compiled kernel for device type '{device.type}'")


def note_fallback(choice: PathChoice) -> None:
    """Remember (and log once) that a call took the fallback."""
    key = (choice.device.split(":")[0], choice.dtype)
    if key not in _EVENTS:
        _EVENTS[key] = choice.reason
        _log.info("ms_deform_attn on %s/%s uses the pure-PyTorch path: %s", key[0], key[1], choice.reason)


def fallback_events() -> dict[tuple[str, str], str]:
    """(device type, dtype) -> reason, for every pair that took the fallback in this process."""
    return dict(_EVENTS)


def devices() -> list[str]:
    """'cpu' and every visible CUDA device."""
    found = ["cpu"]
    if torch.cuda.is_available():
        found += [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    return found


def device_paths(dtype: torch.dtype = torch.float32) -> list[PathChoice]:
    """The choice for each device of this machine, for `dtype`."""
    return [choose(device, dtype) for device in devices()]
