"""CodaLab submission archive for YouTube-VIS / OVIS: `results.json` at the root of a zip."""
from __future__ import annotations

import json
import os
import tempfile
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from dvis_cli.errors import InputError

SUBMISSION_MEMBER = "results.json"


def write_submission_zip(results: Sequence[dict[str, Any]], zip_path: str | os.PathLike) -> Path:
    """Write `results` (the YTVIS result list) as `results.json`, no folder, into `zip_path`.

    The archive is built next to its destination and moved into place with os.replace, so an
    interrupted run never leaves a half-written zip. Returns the path written.
    """
    if not isinstance(results, (list, tuple)):
        raise InputError("a submission needs the result list (one entry per predicted track)")
    zip_path = Path(zip_path)
    if zip_path.suffix.lower() != ".zip":
        raise InputError(f"submission file must end in .zip: {zip_path}")
    zip_path.parent.mkdir(parents=True, exist_ok=True)
    payload = json.dumps(list(results), separators=(",", ":"), allow_nan=False)
    fd, tmp = tempfile.mkstemp(prefix=f".{zip_path.name}.", suffix=".tmp", dir=zip_path.parent)
    try:
        with os.fdopen(fd, "wb") as fh, zipfile.ZipFile(fh, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            zf.writestr(SUBMISSION_MEMBER, payload)
        os.replace(tmp, zip_path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return zip_path
