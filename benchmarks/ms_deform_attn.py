"""Benchmark multi-scale deformable attention: PyTorch fallback vs the compiled kernels.

Shapes are those of the R50 pixel decoder on a 360x640 frame padded to 384x640: three levels at
strides 32/16/8, (12, 20), (24, 40), (48, 80), every token a query (Lq = S = 5040), M = 8 heads,
Dh = 32, P = 4 points. Times are medians over --repeat runs after warm-up; "fwd+bwd" is one forward
plus the backward of all three differentiable inputs.

    python benchmarks/ms_deform_attn.py [--repeat 10] [--threads N] [--dtype float32] [--batch 1]
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch

from dvis_cli.ops import status
from dvis_cli.ops._ext import load_ext
from dvis_cli.ops.ms_deform_attn import ms_deform_attn_compiled, ms_deform_attn_pytorch

LEVELS = [(12, 20), (24, 40), (48, 80)]
HEADS, HEAD_DIM, POINTS = 8, 32, 4


def make_inputs(batch: int, dtype: torch.dtype, device: str, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    shapes = torch.tensor(LEVELS, dtype=torch.int64)
    areas = shapes[:, 0] * shapes[:, 1]
    starts = torch.cat([areas.new_zeros(1), areas.cumsum(0)[:-1]])
    keys = int(areas.sum())
    value = torch.randn(batch, keys, HEADS, HEAD_DIM, generator=g)
    loc = torch.rand(batch, keys, HEADS, len(LEVELS), POINTS, 2, generator=g) * 1.2 - 0.1
    attn = torch.softmax(torch.randn(batch, keys, HEADS, len(LEVELS) * POINTS, generator=g), -1)
    attn = attn.view(batch, keys, HEADS, len(LEVELS), POINTS)
    tensors = [t.to(device=device, dtype=dtype) for t in (value, loc, attn)]
    return tensors[0], shapes.to(device), starts.to(device), tensors[1], tensors[2]


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def time_it(fn, device: str, repeat: int, warmup: int = 2) -> float:
    for _ in range(warmup):
        fn()
    _sync(device)
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3


def measure(impl, inputs, device: str, repeat: int):
    value, shapes, starts, loc, attn = inputs
    leaves = [t.detach().clone().requires_grad_() for t in (value, loc, attn)]
    g = torch.Generator().manual_seed(1)  # the same incoming gradient for every implementation
    grad = torch.randn(value.shape[0], loc.shape[1], HEADS * HEAD_DIM, generator=g).to(device, value.dtype)

    def forward():
        with torch.no_grad():
            return impl(value, shapes, starts, loc, attn)

    def forward_backward():
        for leaf in leaves:
            leaf.grad = None
        impl(leaves[0], shapes, starts, leaves[1], leaves[2]).backward(grad)

    fwd = time_it(forward, device, repeat)
    fwd_bwd = time_it(forward_backward, device, repeat)
    out = forward()
    forward_backward()
    return fwd, fwd_bwd, out, [leaf.grad.clone() for leaf in leaves]


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a.double() - b.double()).abs().max() / b.double().abs().max()).item()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=10)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--dtype", default="float32", choices=["float32", "float64", "float16", "bfloat16"])
    parser.add_argument("--batch", type=int, default=1)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    dtype = getattr(torch, args.dtype)

    ext = load_ext()
    keys = sum(h * w for h, w in LEVELS)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads; dvis_cli._C: "
          f"{'loaded' + (' with CUDA' if ext.with_cuda else ' (CPU only)') if ext.loaded else ext.reason}")
    print(f"N={args.batch} levels={LEVELS} Lq=S={keys} M={HEADS} Dh={HEAD_DIM} P={POINTS} dtype={args.dtype} "
          f"median of {args.repeat}\n")

    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    rows = []
    for device in devices:
        if device == "cpu" and dtype in (torch.float16, torch.bfloat16):
            continue
        inputs = make_inputs(args.batch, dtype, device)
        base = measure(ms_deform_attn_pytorch, inputs, device, args.repeat)
        rows.append((device, "PyTorch fallback", base[0], base[1], None))
        choice = status.choose(device, dtype)
        if not choice.uses_kernel:
            rows.append((device, "compiled kernel", None, None, choice.reason))
            continue
        kern = measure(ms_deform_attn_compiled, inputs, device, args.repeat)
        err = max(rel_err(kern[2], base[2]), *(rel_err(a, b) for a, b in zip(kern[3], base[3])))
        label = "C++ kernel" if device == "cpu" else "CUDA kernel"
        rows.append((device, label, kern[0], kern[1], f"{base[0] / kern[0]:.1f}x fwd, {base[1] / kern[1]:.1f}x "
                     f"fwd+bwd; max rel err vs fallback {err:.1e}"))

    header = f"| {'device':6} | {'implementation':16} | {'forward ms':>10} | {'fwd+bwd ms':>10} | notes"
    print(header)
    print("|" + "-" * 8 + "|" + "-" * 18 + "|" + "-" * 12 + "|" + "-" * 12 + "|" + "-" * 40)
    for device, label, fwd, fwd_bwd, note in rows:
        fwd_s = f"{fwd:10.2f}" if fwd is not None else f"{'-':>10}"
        bwd_s = f"{fwd_bwd:10.2f}" if fwd_bwd is not None else f"{'-':>10}"
        print(f"| {device:6} | {label:16} | {fwd_s} | {bwd_s} | {note or ''}")


if __name__ == "__main__":
    main()
