"""Atomic output files: write beside the target, then os.replace it into place.

A crash, Ctrl-C or a full disk leaves the previous file (or none), never a half-written one.
"""
from __future__ import annotations

import json
import os
import secrets
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any, Iterator


def temp_path(path: Path) -> Path:
    """A hidden, unique name beside `path` (same folder, so os.replace is atomic)."""
    return path.with_name(f".{path.name}.{secrets.token_hex(4)}.part")


@contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "w", **kwargs) -> Iterator[IO]:
    """`with atomic_open(p) as f:` writes a temporary file beside `p` and moves it onto `p` only
    when the block ends without an error; otherwise the temporary file is removed."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path(target)
    if "b" not in mode:
        kwargs.setdefault("encoding", "utf-8")
    try:
        with open(tmp, mode, **kwargs) as fh:
            yield fh
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    with atomic_open(path) as fh:
        fh.write(text)


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> None:
    with atomic_open(path, "wb") as fh:
        fh.write(data)


def write_json_atomic(path: str | os.PathLike, obj: Any, indent: int | None = 2) -> None:
    with atomic_open(path) as fh:
        json.dump(obj, fh, indent=indent, allow_nan=False)
        fh.write("\n")
