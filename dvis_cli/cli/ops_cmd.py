"""`dvis doctor` and `dvis build-ops`: the state of the compiled deformable-attention op, and building it."""
from __future__ import annotations

import os
import platform
import shutil
import subprocess
import sys

import typer
from rich.table import Table

from dvis_cli.cli.common import console, console_err


def _first_line(cmd: list[str]) -> str | None:
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    lines = (out.stdout or out.stderr).strip().splitlines()
    return lines[0].strip() if out.returncode == 0 and lines else None


def _nvcc_line() -> str:
    from dvis_cli.ops.build import find_cuda_home, nvcc_version

    try:
        from torch.utils import cpp_extension
    except Exception:  # noqa: BLE001 - reported as unknown
        cpp_extension = None
    root = find_cuda_home(cpp_extension)
    if not root:
        return "not found (CUDA_HOME unset and no nvcc on PATH)"
    nvcc = os.path.join(root, "bin", "nvcc")
    version = nvcc_version(nvcc)
    return f"{version[0]}.{version[1]}  (toolkit {root})" if version else f"{nvcc} (version unknown)"


def doctor() -> None:
    """Report torch, CUDA, the compiled op and which deformable-attention path each device takes."""
    import torch

    from dvis_cli import __version__
    from dvis_cli.ops import status
    from dvis_cli.ops._ext import cache_dir, load_ext

    ext = load_ext()
    env = Table(title="dvis doctor", show_header=False, title_justify="left")
    env.add_column(style="bold")
    env.add_column()
    env.add_row("dvis", __version__)
    env.add_row("python", f"{platform.python_version()} ({sys.executable})")
    env.add_row("torch", f"{torch.__version__}  (CUDA build: {torch.version.cuda or 'no'}, threads: {torch.get_num_threads()})")
    if torch.cuda.is_available():
        names = ", ".join(f"cuda:{i} {torch.cuda.get_device_name(i)}" for i in range(torch.cuda.device_count()))
        env.add_row("GPUs", names)
    else:
        env.add_row("GPUs", "none visible")
    env.add_row("nvcc", _nvcc_line())
    cxx = os.environ.get("CXX", "c++")
    env.add_row("C++ compiler", _first_line([cxx, "--version"]) or f"not found ({cxx})")
    env.add_row("ninja", _first_line(["ninja", "--version"]) or "not found (builds use the slower setuptools backend)")
    if ext.loaded:
        kernels = "CPU + CUDA " + (ext.cuda_version or "") if ext.with_cuda else "CPU only"
        env.add_row("dvis_cli._C", f"[green]loaded[/]  {kernels}, built for torch {ext.built_for_torch}")
        env.add_row("  from", str(ext.origin))
    else:
        env.add_row("dvis_cli._C", f"[yellow]unavailable[/]  {ext.reason}")
    for attempt in ext.attempts:
        env.add_row("  looked in", attempt)
    env.add_row("build-ops cache", str(cache_dir()))
    forced = status.fallback_forced()
    env.add_row("DVIS_OPS_FALLBACK", "set: the pure-PyTorch path runs everywhere" if forced else "unset")
    console.print(env)

    paths = Table(title="ms_deform_attn: implementation per device", title_justify="left")
    for column in ("device", "dtype", "path", "why"):
        paths.add_column(column)
    for device in status.devices():
        dtypes = status.CUDA_DTYPES if device.startswith("cuda") else status.CPU_DTYPES + (torch.bfloat16,)
        for dtype in dtypes:
            choice = status.choose(device, dtype)
            shown = "[green]compiled kernel[/]" if choice.uses_kernel else "[yellow]PyTorch fallback[/]"
            paths.add_row(choice.device, choice.dtype, shown, choice.reason)
    console.print(paths)


def build_ops(
    inplace: bool = typer.Option(
        False, "--inplace", help="Write the module into the installed dvis_cli package instead of the per-torch cache."
    ),
    cpu_only: bool = typer.Option(False, "--cpu-only", help="Build the CPU kernel only, even when CUDA is there."),
    require_cuda: bool = typer.Option(False, "--cuda", help="Fail unless the CUDA kernel is built too."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Show the compiler output as it runs."),
) -> None:
    """Build the compiled deformable-attention op (dvis_cli._C) for the torch in this environment.

    For installs made without a compiler, or after changing torch. The result is used by new dvis
    processes; `dvis doctor` shows which path runs.
    """
    from dvis_cli.errors import DvisError
    from dvis_cli.ops import build
    from dvis_cli.ops._ext import cache_dir

    if cpu_only and require_cuda:
        raise DvisError("--cpu-only and --cuda contradict each other")
    try:
        import torch
    except Exception as exc:  # noqa: BLE001
        raise DvisError(f"torch is not importable ({exc})") from exc
    cxx = os.environ.get("CXX", "c++")
    if shutil.which(cxx) is None:
        raise DvisError(f"no C++ compiler ({cxx}) on PATH: install one (e.g. g++) and run `dvis build-ops` again")

    target = build.PACKAGE_PARENT if inplace else cache_dir()
    package_dir = target / "dvis_cli"
    if inplace and not os.access(package_dir, os.W_OK):
        raise DvisError(f"{package_dir} is not writable; run without --inplace to build into {cache_dir()}")
    cuda = "0" if cpu_only else "1" if require_cuda else None
    console.print(f"building dvis_cli._C for torch {torch.__version__} into {package_dir} ...")
    sink = (lambda line: console_err.print(line, markup=False, highlight=False)) if verbose else None
    code, output = build.build_out_of_tree(target, cuda=cuda, verbose_sink=sink)
    if code != 0:
        if not verbose:
            for line in output.strip().splitlines()[-30:]:
                console_err.print(line, markup=False, highlight=False)
        raise DvisError("building dvis_cli._C failed (compiler output above; --verbose shows all of it)")
    for line in output.splitlines():
        if line.startswith("dvis-ops:"):
            console.print(line, markup=False, highlight=False)

    built = sorted(package_dir.glob("_C.*"))
    if not built:
        raise DvisError(f"the build reported success but left no module in {package_dir}")
    check = subprocess.run(
        [sys.executable, "-c", _IMPORT_CHECK, str(built[-1])], capture_output=True, text=True, timeout=300
    )
    if check.returncode != 0:
        tail = (check.stderr or check.stdout).strip().splitlines()[-1:] or ["no output"]
        raise DvisError(f"{built[-1]} was built but does not import: {tail[0]}")
    console.print(f"[green]ok[/] {built[-1]}  ({check.stdout.strip()}); new dvis processes will use it")


_IMPORT_CHECK = """
import importlib.util, sys
import torch
spec = importlib.util.spec_from_file_location("dvis_cli._C", sys.argv[1])
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
print("kernels: CPU" + (" + CUDA" if module.with_cuda() else "") + f", torch {module.torch_version}")
"""


def register(app: typer.Typer) -> None:
    """Add this module's commands to the `dvis` app."""
    app.command("doctor")(doctor)
    app.command("build-ops")(build_ops)
