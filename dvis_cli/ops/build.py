"""How the compiled op `dvis_cli._C` (multi-scale deformable attention) is built.

`setup.py` calls `extension_build_args()` and passes the result to `setuptools.setup`. The CPU
kernel is built whenever torch and a C++ compiler are there; the CUDA kernel as well when torch is a
CUDA build and a CUDA toolkit of the same major version is found. A failed build never fails the
install: it prints a warning and dvis runs the pure-PyTorch implementation instead.

This file is loaded by path from setup.py, before the package is importable: it may use only the
standard library at import time. torch is imported lazily, inside a try.

Environment switches:

    DVIS_BUILD_OPS=0        build nothing
    DVIS_BUILD_OPS=1        a failed build is an error (CI, packagers)
    DVIS_BUILD_CUDA=0       build the CPU kernel only
    DVIS_BUILD_CUDA=1       the CUDA kernel is required (FORCE_CUDA=1 means the same)
    TORCH_CUDA_ARCH_LIST    GPU architectures; when unset and no GPU is visible, a default list for
                            the installed nvcc is used (see `default_cuda_arch_list`)
    MAX_JOBS                parallel compile jobs (with ninja)
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

EXTENSION_NAME = "dvis_cli._C"
CSRC_DIR = Path(__file__).resolve().parent / "csrc"
# The folder that holds the `dvis_cli` package (the repository root, or site-packages).
PACKAGE_PARENT = Path(__file__).resolve().parents[2]

CPU_SOURCES = ("bindings.cpp", "ms_deform_attn_cpu.cpp")
CUDA_SOURCES = ("ms_deform_attn_cuda.cu",)
HEADERS = ("ms_deform_attn.h", "sampling.h")
CUDA_LIBRARIES = ("cudart", "c10_cuda", "torch_cuda")

# Per nvcc major version: architectures compiled when TORCH_CUDA_ARCH_LIST is unset and no GPU is
# visible. CUDA 13 cannot compile for compute capability < 7.5 any more.
DEFAULT_CUDA_ARCHS = {
    13: ("7.5", "8.0", "8.6", "8.9", "9.0", "10.0", "12.0"),
    12: ("7.0", "7.5", "8.0", "8.6", "8.9", "9.0"),
    11: ("6.0", "7.0", "7.5", "8.0", "8.6"),
}

_TRUE = {"1", "true", "yes", "on", "strict"}
_FALSE = {"0", "false", "no", "off", "skip"}


class OpsBuildError(RuntimeError):
    """The compiled op cannot be built (raised only in strict mode)."""


def log(message: str) -> None:
    print(f"dvis-ops: {message}", file=sys.stderr, flush=True)


def _switch(name: str) -> bool | None:
    raw = os.environ.get(name, "").strip().lower()
    if raw in _TRUE:
        return True
    if raw in _FALSE:
        return False
    return None


def build_mode() -> str:
    """'skip', 'strict' or 'auto', from DVIS_BUILD_OPS."""
    switch = _switch("DVIS_BUILD_OPS")
    return {None: "auto", True: "strict", False: "skip"}[switch]


def cuda_mode() -> str:
    """'skip', 'require' or 'auto', from DVIS_BUILD_CUDA (FORCE_CUDA=1 means 'require')."""
    switch = _switch("DVIS_BUILD_CUDA")
    if switch is None and _switch("FORCE_CUDA"):
        switch = True
    return {None: "auto", True: "require", False: "skip"}[switch]


def _source_paths(names) -> list[str]:
    # setuptools prefers paths relative to the setup script's folder; elsewhere use absolute ones.
    paths = [CSRC_DIR / name for name in names]
    try:
        if Path.cwd().resolve() == PACKAGE_PARENT:
            return [str(p.relative_to(PACKAGE_PARENT)) for p in paths]
    except OSError:
        pass
    return [str(p) for p in paths]


def nvcc_version(nvcc: str) -> tuple[int, int] | None:
    try:
        out = subprocess.run([nvcc, "--version"], capture_output=True, text=True, timeout=60).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    match = re.search(r"release (\d+)\.(\d+)", out)
    return (int(match.group(1)), int(match.group(2))) if match else None


def nvcc_archs(nvcc: str) -> set[str] | None:
    """Real architectures nvcc can compile for, as '8.0'-style strings (None if it cannot say)."""
    try:
        out = subprocess.run([nvcc, "--list-gpu-arch"], capture_output=True, text=True, timeout=60).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    archs = {f"{int(num) // 10}.{int(num) % 10}" for num in re.findall(r"compute_(\d+)\b", out)}
    return archs or None


def default_cuda_arch_list(nvcc_major: int, supported: set[str] | None = None) -> str:
    """A TORCH_CUDA_ARCH_LIST for builds without a visible GPU, with PTX for the newest arch."""
    known = max(DEFAULT_CUDA_ARCHS) if nvcc_major > max(DEFAULT_CUDA_ARCHS) else nvcc_major
    archs = list(DEFAULT_CUDA_ARCHS.get(known, DEFAULT_CUDA_ARCHS[min(DEFAULT_CUDA_ARCHS)]))
    if supported:
        archs = [a for a in archs if a in supported] or archs
    archs[-1] += "+PTX"
    return ";".join(archs)


def _has_cudart(root: str) -> bool:
    return any(os.path.exists(os.path.join(root, lib, "libcudart.so")) for lib in ("lib64", "lib"))


def find_cuda_home(cpp_extension=None) -> str | None:
    """The CUDA toolkit root: $CUDA_HOME / $CUDA_PATH if set, else the first root with nvcc and libcudart.

    torch guesses the root from `which nvcc`, which is wrong when nvcc is a wrapper or symlink outside
    the toolkit (e.g. /usr/local/bin/nvcc): the link then cannot find libcudart.
    """
    for var in ("CUDA_HOME", "CUDA_PATH"):
        if os.environ.get(var):
            return os.environ[var]
    candidates = []
    if cpp_extension is not None and cpp_extension.CUDA_HOME:
        candidates.append(cpp_extension.CUDA_HOME)
    nvcc = shutil.which("nvcc")
    if nvcc:
        candidates.append(os.path.dirname(os.path.dirname(os.path.realpath(nvcc))))
    candidates.append("/usr/local/cuda")
    with_nvcc = [root for root in candidates if os.path.exists(os.path.join(root, "bin", "nvcc"))]
    complete = [root for root in with_nvcc if _has_cudart(root)]
    return (complete or with_nvcc or [None])[0]


def cuda_toolkit(torch, cpp_extension) -> tuple[str | None, str]:
    """(nvcc path, '') when the CUDA kernel can be built against this torch, else (None, reason)."""
    if cuda_mode() == "skip":
        return None, "DVIS_BUILD_CUDA=0"
    if getattr(torch.version, "hip", None):
        return None, "ROCm builds of torch are not supported"
    if torch.version.cuda is None:
        return None, f"torch {torch.__version__} is a CPU build"
    cuda_home = find_cuda_home(cpp_extension)
    if not cuda_home:
        return None, "no CUDA toolkit found (set CUDA_HOME)"
    if cuda_home != cpp_extension.CUDA_HOME:
        # CUDAExtension and BuildExtension read this module global for include and library paths.
        cpp_extension.CUDA_HOME = cuda_home
        os.environ["CUDA_HOME"] = cuda_home
    nvcc = os.path.join(cuda_home, "bin", "nvcc")
    if not os.path.exists(nvcc):
        return None, f"nvcc not found at {nvcc}"
    version = nvcc_version(nvcc)
    if version is None:
        return None, f"cannot run {nvcc} --version"
    torch_major = int(torch.version.cuda.split(".")[0])
    if version[0] != torch_major:
        return None, f"nvcc is CUDA {version[0]}.{version[1]} but torch was built with CUDA {torch.version.cuda}"
    return nvcc, ""


def _openmp_flags(torch) -> list[str]:
    # at::parallel_for only runs in parallel in code compiled with OpenMP (when torch uses OpenMP).
    if sys.platform.startswith("linux") and getattr(torch._C, "has_openmp", False):
        return ["-fopenmp"]
    return []


def make_extension(strict: bool):
    """The Extension to build, or None (with the reason logged) when nothing can be built."""
    try:
        import torch
        from torch.utils import cpp_extension
    except Exception as exc:  # noqa: BLE001 - torch is optional at build time
        raise OpsBuildError(f"torch is not importable ({exc}); install torch first, then "
                            "`pip install --no-build-isolation -e .`") from exc

    nvcc, why_not_cuda = cuda_toolkit(torch, cpp_extension)
    if nvcc is None and cuda_mode() == "require":
        raise OpsBuildError(f"the CUDA kernel was required but cannot be built: {why_not_cuda}")

    openmp = _openmp_flags(torch)
    common = dict(
        depends=_source_paths(HEADERS),
        extra_link_args=list(openmp),
        optional=not strict,
    )
    cxx = ["-O3", *openmp]
    if nvcc is None:
        log(f"building the CPU kernel (no CUDA kernel: {why_not_cuda})")
        return cpp_extension.CppExtension(
            EXTENSION_NAME, _source_paths(CPU_SOURCES), extra_compile_args={"cxx": cxx}, **common
        )

    if not os.environ.get("TORCH_CUDA_ARCH_LIST") and torch.cuda.device_count() == 0:
        major = nvcc_version(nvcc)[0]
        os.environ["TORCH_CUDA_ARCH_LIST"] = default_cuda_arch_list(major, nvcc_archs(nvcc))
        log(f"no GPU visible and TORCH_CUDA_ARCH_LIST unset: using {os.environ['TORCH_CUDA_ARCH_LIST']}")
    archs = os.environ.get("TORCH_CUDA_ARCH_LIST") or "the visible GPUs"
    log(f"building the CPU and CUDA kernels (nvcc {nvcc}, torch CUDA {torch.version.cuda}, archs {archs})")
    return cpp_extension.CUDAExtension(
        EXTENSION_NAME,
        _source_paths(CPU_SOURCES + CUDA_SOURCES),
        define_macros=[("DVIS_WITH_CUDA", None)],
        extra_compile_args={"cxx": cxx, "nvcc": ["-O3"]},
        **common,
    )


def _has_cuda_sources(ext) -> bool:
    return any(str(src).endswith(".cu") for src in ext.sources)


def _strip_cuda(ext) -> None:
    """Turn a CUDAExtension into the CPU-only one, in place (used when the CUDA part fails)."""
    ext.sources = [src for src in ext.sources if not str(src).endswith(".cu")]
    ext.define_macros = [m for m in ext.define_macros if m[0] != "DVIS_WITH_CUDA"]
    ext.libraries = [lib for lib in ext.libraries if lib not in CUDA_LIBRARIES]


def make_build_ext_class(strict: bool):
    """torch's BuildExtension, made to report and skip failures unless `strict`."""
    from torch.utils.cpp_extension import BuildExtension

    class DvisBuildExtension(BuildExtension):
        _dvis_started = False

        def build_extensions(self) -> None:
            try:
                super().build_extensions()
            except Exception as exc:  # noqa: BLE001 - reported below, fatal only when strict
                if strict:
                    raise
                # A failure before any compiling (e.g. torch's nvcc/gcc version checks): retry without CUDA.
                cuda_exts = [ext for ext in self.extensions if _has_cuda_sources(ext)]
                if self._dvis_started or not cuda_exts:
                    self._dvis_give_up(exc)
                    return
                log(f"WARNING: the CUDA kernel cannot be built ({exc}); building the CPU kernel only")
                for ext in cuda_exts:
                    _strip_cuda(ext)
                try:
                    super().build_extensions()
                except Exception as exc2:  # noqa: BLE001
                    self._dvis_give_up(exc2)

        def build_extension(self, ext) -> None:
            self._dvis_started = True
            with_cuda = _has_cuda_sources(ext)
            try:
                super().build_extension(ext)
            except Exception as exc:  # noqa: BLE001
                if strict or not with_cuda:
                    raise
                log(f"WARNING: compiling the CUDA kernel failed ({exc}); building the CPU kernel only")
                _strip_cuda(ext)
                self.build_temp = os.path.join(self.build_temp, "cpu-only")
                super().build_extension(ext)
                with_cuda = False
            log(f"built {ext.name} with the {'CPU and CUDA kernels' if with_cuda else 'CPU kernel'}")

        def _dvis_give_up(self, exc: BaseException) -> None:
            log(f"WARNING: could not build {EXTENSION_NAME} ({exc}). dvis will use the pure-PyTorch "
                "deformable attention; after fixing the cause run `dvis build-ops`.")

        def get_outputs(self):
            # A skipped extension has no file to install.
            return [path for path in super().get_outputs() if os.path.exists(path)]

    return DvisBuildExtension


def extension_build_args() -> dict:
    """Keyword arguments for `setuptools.setup`: ext_modules and cmdclass, or {} to build nothing."""
    mode = build_mode()
    if mode == "skip":
        log("DVIS_BUILD_OPS=0: not building the compiled op; the pure-PyTorch one will be used")
        return {}
    strict = mode == "strict"
    try:
        ext = make_extension(strict)
        build_ext = make_build_ext_class(strict)
    except Exception as exc:  # noqa: BLE001 - the install must go on without the op
        if strict:
            raise
        log(f"WARNING: not building the compiled op ({exc}); the pure-PyTorch one will be used")
        return {}
    return {"ext_modules": [ext], "cmdclass": {"build_ext": build_ext}}


# ----------------------------------------------------------------------------------------------
# Building after the fact (`dvis build-ops`)

_SETUP_SCRIPT = """
import importlib.util, sys
from setuptools import setup
spec = importlib.util.spec_from_file_location("dvis_ops_build", {build_py!r})
build = importlib.util.module_from_spec(spec)
spec.loader.exec_module(build)
setup(name="dvis-ops", script_args=sys.argv[1:], **build.extension_build_args())
"""


def build_out_of_tree(build_lib: Path, *, cuda: str | None = None, verbose_sink=None) -> tuple[int, str]:
    """Build `dvis_cli._C` into `build_lib/dvis_cli/` in a subprocess, strictly.

    Returns (exit code, combined output). `cuda` sets DVIS_BUILD_CUDA ('0' or '1') when given.
    `verbose_sink`, when given, is called with each output line as it arrives.
    """
    build_lib = Path(build_lib)
    build_lib.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, DVIS_BUILD_OPS="1")
    if cuda is not None:
        env["DVIS_BUILD_CUDA"] = cuda
    script = _SETUP_SCRIPT.format(build_py=str(Path(__file__).resolve()))
    with tempfile.TemporaryDirectory(prefix="dvis-build-ops-") as tmp:
        cmd = [sys.executable, "-c", script, "build_ext", "--build-lib", str(build_lib),
               "--build-temp", str(Path(tmp) / "temp"), "--force"]
        proc = subprocess.Popen(cmd, cwd=tmp, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        lines = []
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line)
            if verbose_sink is not None:
                verbose_sink(line.rstrip("\n"))
        code = proc.wait()
    return code, "".join(lines)
