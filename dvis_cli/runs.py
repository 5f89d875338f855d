"""Auto-numbered run folders: runs/segment/exp, exp2, exp3, ..."""
from __future__ import annotations

import re
from pathlib import Path


def run_dir(project: str | Path, name: str = "exp", exist_ok: bool = False, latest: bool = False) -> Path:
    """`exist_ok`: reuse project/name as is. `latest`: the newest existing exp*, e.g. to resume."""
    project = Path(project)
    if exist_ok:
        path = project / name
        path.mkdir(parents=True, exist_ok=True)
        return path
    pattern = re.compile(rf"^{re.escape(name)}(\d*)$")
    numbers = [int(m.group(1) or 1) for p in project.glob(f"{name}*") if p.is_dir() and (m := pattern.match(p.name))]
    if latest:
        if not numbers:
            return run_dir(project, name)
        n = max(numbers)
        return project / (name if n == 1 else f"{name}{n}")
    n = max(numbers, default=0) + 1
    path = project / (name if n == 1 else f"{name}{n}")
    path.mkdir(parents=True, exist_ok=False)
    return path


def numbered_runs(project: str | Path, name: str = "exp") -> list[Path]:
    """Existing runs name, name2, name3, ... newest (highest number) first."""
    project = Path(project)
    pattern = re.compile(rf"^{re.escape(name)}(\d*)$")
    found = [(int(m.group(1) or 1), p) for p in project.glob(f"{name}*") if p.is_dir() and (m := pattern.match(p.name))]
    return [p for _, p in sorted(found, reverse=True)]
