"""Loading the compiled op `dvis_cli._C`, once, without ever failing.

Where it is looked for, in order:

1. `dvis_cli._C` inside the package (built by `pip install --no-build-isolation -e .`);
2. the per-torch cache that `dvis build-ops` fills (see `cache_dir`), for installs made without a
   compiler or against another torch.

Nothing is compiled or printed here. When no usable build is found, the reason is kept
(`load_ext().reason`) so that `dvis doctor` and the dispatcher can say why the pure-PyTorch path runs.
"""
from __future__ import annotations

import importlib
import importlib.machinery
import importlib.util
import os
import platform
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

import torch

MODULE_NAME = "dvis_cli._C"
_REBUILD_HINT = "run `dvis build-ops`"


@dataclass(frozen=True)
class ExtState:
    """Outcome of looking for the compiled op."""

    module: ModuleType | None
    origin: str | None = None  # file the module came from
    reason: str | None = None  # why it is unusable (None when it loaded)
    attempts: tuple[str, ...] = field(default_factory=tuple)  # one line per place tried

    @property
    def loaded(self) -> bool:
        return self.module is not None

    @property
    def with_cuda(self) -> bool:
        return bool(self.module is not None and self.module.with_cuda())

    @property
    def cuda_version(self) -> str | None:
        if self.module is None or not self.module.with_cuda():
            return None
        raw = int(self.module.cuda_version())
        return f"{raw // 1000}.{(raw % 1000) // 10}"

    @property
    def built_for_torch(self) -> str | None:
        return getattr(self.module, "torch_version", None) if self.module is not None else None


_LOCK = threading.Lock()
_STATE: ExtState | None = None


def cache_key() -> str:
    """Builds in the cache are kept apart per torch build, Python and machine."""
    return f"torch-{torch.__version__}-{sys.implementation.cache_tag}-{platform.machine()}".replace("+", "_")


def cache_dir() -> Path:
    """Where `dvis build-ops` puts a build by default: $DVIS_OPS_CACHE, else ~/.cache/dvis/ops/<key>."""
    base = os.environ.get("DVIS_OPS_CACHE")
    if base:
        return Path(base).expanduser() / cache_key()
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg) / "dvis" / "ops" / cache_key()


def cached_build() -> Path | None:
    """The extension file in the cache for this torch, if there is one."""
    folder = cache_dir() / "dvis_cli"
    for suffix in importlib.machinery.EXTENSION_SUFFIXES:
        candidate = folder / f"_C{suffix}"
        if candidate.is_file():
            return candidate
    return None


def _explain(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if "undefined symbol" in text:
        return f"built against another torch ({text}); {_REBUILD_HINT}"
    return f"{type(exc).__name__}: {text}"


def _torch_base_version() -> str:
    return torch.__version__.split("+")[0]


def _check_module(module: ModuleType) -> str | None:
    built = getattr(module, "torch_version", None)
    if built is not None and built != _torch_base_version():
        return f"built for torch {built} but torch {torch.__version__} is running; {_REBUILD_HINT}"
    for name in ("ms_deform_attn_forward", "ms_deform_attn_backward", "with_cuda", "cuda_version"):
        if not hasattr(module, name):
            return f"{module.__file__} lacks {name} (an old build); {_REBUILD_HINT}"
    return None


def _load_file(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(MODULE_NAME, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _find() -> ExtState:
    attempts: list[str] = []
    try:
        module = importlib.import_module(MODULE_NAME)
    except ModuleNotFoundError as exc:
        if exc.name != MODULE_NAME:
            attempts.append(f"package: {_explain(exc)}")
        else:
            attempts.append("package: not built (no compiler or torch at install time, or DVIS_BUILD_OPS=0)")
    except (ImportError, OSError) as exc:
        attempts.append(f"package: {_explain(exc)}")
    else:
        problem = _check_module(module)
        if problem is None:
            return ExtState(module, origin=getattr(module, "__file__", None), attempts=tuple(attempts))
        attempts.append(f"package: {problem}")
        sys.modules.pop(MODULE_NAME, None)

    cached = cached_build()
    if cached is None:
        attempts.append(f"cache: nothing built in {cache_dir()}")
    else:
        try:
            module = _load_file(cached)
        except (ImportError, OSError) as exc:
            attempts.append(f"cache: {_explain(exc)}")
        else:
            problem = _check_module(module)
            if problem is None:
                sys.modules[MODULE_NAME] = module
                return ExtState(module, origin=str(cached), attempts=tuple(attempts))
            attempts.append(f"cache: {problem}")

    first = attempts[0].split(": ", 1)[1]
    return ExtState(None, reason=f"dvis_cli._C is unavailable: {first}", attempts=tuple(attempts))


def load_ext() -> ExtState:
    """The compiled op, looked for once per process."""
    global _STATE
    if _STATE is None:
        with _LOCK:
            if _STATE is None:
                _STATE = _find()
    return _STATE


def reset() -> None:
    """Forget the previous lookup (after `dvis build-ops`, or in tests)."""
    global _STATE
    with _LOCK:
        _STATE = None
