"""Finding and reading annotation files, with one-line errors a user can act on."""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Iterable

from dvis_cli.errors import InputError

ANNOTATION_NAMES = ("annotations.json",)
IMAGE_FOLDER_NAMES = ("JPEGImages",)


def resolve_annotations(
    annotations: str | Path, image_root: str | Path | None, folder_names: tuple[str, ...] = IMAGE_FOLDER_NAMES
) -> tuple[Path, Path]:
    """(json file, image root) for a json path or a data set folder holding annotations.json.

    Without `image_root` the images are looked for in the json's folder + "/JPEGImages" (or the
    first of `folder_names` that exists there), else in the json's folder.
    """
    path = Path(annotations).expanduser()
    if not path.exists():
        raise InputError(f"data set not found: {path}")
    if path.is_dir():
        found = [path / n for n in ANNOTATION_NAMES if (path / n).is_file()]
        if not found:
            raise InputError(f"{path} is a folder without {' or '.join(ANNOTATION_NAMES)}; give the annotation json itself")
        path = found[0]
    if image_root is None:
        root = path.parent
        for name in folder_names:
            if (root / name).is_dir():
                root = root / name
                break
    else:
        root = Path(image_root).expanduser()
        if not root.is_dir():
            raise InputError(f"image folder not found: {root}")
    return path, root


def read_json(path: Path) -> Any:
    try:
        with open(path, "r", encoding="utf-8") as fh:
            return json.load(fh)
    except json.JSONDecodeError as err:
        raise InputError(f"{path} is not valid JSON (line {err.lineno}, column {err.colno}: {err.msg})") from None
    except UnicodeDecodeError:
        raise InputError(f"{path} is not a UTF-8 text file") from None
    except OSError as err:
        raise InputError(f"cannot read {path}: {err.strerror or err}") from None


def require_keys(obj: Any, keys: Iterable[str], where: str, source: Path) -> None:
    """Raise naming the first key of `keys` that `obj` (a json object) lacks."""
    if not isinstance(obj, dict):
        raise InputError(f"{source}: {where} must be a JSON object, got {type(obj).__name__}")
    for key in keys:
        if key not in obj:
            raise InputError(f"{source}: {where} lacks the key '{key}'")


def require_list(obj: dict, key: str, where: str, source: Path) -> list:
    value = obj[key]
    if not isinstance(value, list):
        raise InputError(f"{source}: '{key}' of {where} must be a list, got {type(value).__name__}")
    return value


def check_images_exist(paths: Iterable[str], source: Path, image_root: Path) -> None:
    """Raise when any image is missing on disk, naming the first one and the count."""
    missing = 0
    first = None
    total = 0
    for p in paths:
        total += 1
        if not os.path.isfile(p):
            missing += 1
            if first is None:
                first = p
    if missing:
        raise InputError(
            f"{missing} of {total} images of {source.name} are missing under {image_root} (first: {first}); "
            f"pass the image folder explicitly if it lives elsewhere"
        )
