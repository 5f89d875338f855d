"""Where weights come from: a path, a name of an embedded / cached file, or an http(s) URL."""
from __future__ import annotations

import hashlib
import os
import urllib.error
import urllib.request
from pathlib import Path

from dvis_cli.errors import CheckpointError

WEIGHT_SUFFIXES = (".safetensors", ".pth", ".pkl", ".pt")
DEFAULT_WEIGHTS = "dvis-tiny-synth"


def weights_dirs() -> list[Path]:
    """Searched in order: $DVIS_WEIGHTS_DIR, the project's weights/ folder, the download cache."""
    dirs = []
    if os.environ.get("DVIS_WEIGHTS_DIR"):
        dirs.append(Path(os.environ["DVIS_WEIGHTS_DIR"]))
    dirs.append(Path(__file__).resolve().parents[2] / "weights")
    dirs.append(cache_dir())
    return dirs


def cache_dir() -> Path:
    root = os.environ.get("DVIS_CACHE") or os.path.join(os.environ.get("XDG_CACHE_HOME", str(Path.home() / ".cache")), "dvis")
    return Path(root) / "weights"


def available_weights() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for folder in weights_dirs():
        if folder.is_dir():
            for path in sorted(folder.iterdir()):
                if path.suffix in WEIGHT_SUFFIXES and path.stem not in found:
                    found[path.stem] = path
    return found


def resolve_weights(spec: str | os.PathLike | None, progress=None) -> Path:
    """A local path, an embedded name (default: the tiny synthetic model), or a URL (downloaded once)."""
    spec = str(spec) if spec is not None else DEFAULT_WEIGHTS
    if spec.startswith(("http://", "https://")):
        return download(spec, progress=progress)
    path = Path(spec).expanduser()
    if path.exists():
        return path
    named = available_weights()
    if spec in named:
        return named[spec]
    if path.suffix in WEIGHT_SUFFIXES or os.sep in spec:
        raise CheckpointError(f"{spec}: no such weights file")
    hint = f"available: {', '.join(sorted(named))}" if named else "no weights are installed yet"
    raise CheckpointError(
        f"unknown weights {spec!r} ({hint}); pass a .pth/.pkl/.safetensors path or an http(s) URL, "
        "or convert official DVIS weights with `dvis weights convert`"
    )


def download(url: str, dest_dir: Path | None = None, progress=None, timeout: float = 60.0) -> Path:
    """Download once into the cache (atomic: a .part file renamed when complete)."""
    dest_dir = dest_dir or cache_dir()
    dest_dir.mkdir(parents=True, exist_ok=True)
    name = os.path.basename(url.split("?")[0]) or "weights"
    tag = hashlib.sha256(url.encode()).hexdigest()[:8]
    dest = dest_dir / f"{Path(name).stem}-{tag}{Path(name).suffix}"
    if dest.exists():
        return dest
    tmp = dest.with_name(dest.name + ".part")
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response, open(tmp, "wb") as out:
            total = int(response.headers.get("Content-Length") or 0)
            done = 0
            while chunk := response.read(1 << 20):
                out.write(chunk)
                done += len(chunk)
                if progress:
                    progress(done, total)
        if total and done != total:
            raise CheckpointError(f"{url}: download stopped at {done} of {total} bytes")
        os.replace(tmp, dest)
    except (urllib.error.URLError, OSError, TimeoutError) as exc:
        raise CheckpointError(f"{url}: download failed ({getattr(exc, 'reason', exc)})") from None
    finally:
        tmp.unlink(missing_ok=True)
    return dest
