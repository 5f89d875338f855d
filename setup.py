"""Build hook for the optional multi-scale deformable-attention extension.

Everything about the package lives in pyproject.toml; this file only adds the compiled op
(see dvis_cli/ops/build.py). A failed build never fails the install.
"""
from setuptools import setup

try:
    from dvis_cli.ops.build import extension_build_args
except Exception as exc:  # noqa: BLE001 - building the op is optional
    print(f"dvis: skipping the compiled deformable-attention op ({exc})")
    extension_build_args = dict

setup(**extension_build_args())
