"""Build hook for the optional multi-scale deformable-attention extension.

Everything about the package lives in pyproject.toml; this file only adds the compiled op
(see dvis_cli/ops/build.py). A failed build never fails the install, unless DVIS_BUILD_OPS=1.

build.py is loaded by its path rather than imported: importing `dvis_cli` here would run the
package's own imports before it is installed.
"""
import importlib.util
import os
import sys

from setuptools import setup

_BUILD_PY = os.path.join(os.path.dirname(os.path.abspath(__file__)), "dvis_cli", "ops", "build.py")


def _build_args() -> dict:
    try:
        spec = importlib.util.spec_from_file_location("dvis_ops_build", _BUILD_PY)
        build = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(build)
    except Exception as exc:  # noqa: BLE001 - building the op is optional
        if os.environ.get("DVIS_BUILD_OPS", "").strip().lower() in {"1", "true", "yes", "on", "strict"}:
            raise
        print(f"dvis-ops: skipping the compiled deformable-attention op ({exc})", file=sys.stderr)
        return {}
    return build.extension_build_args()


setup(**_build_args())
