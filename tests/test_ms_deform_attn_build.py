"""The build configuration of dvis_cli._C, its loader's diagnoses, and `dvis doctor` / `dvis build-ops`.

Nothing here compiles: the build itself is exercised by the install (CI) and
scripts/check_cuda_build.sh.
"""
from __future__ import annotations

import importlib

import pytest
import torch

from dvis_cli.cli.app import main
from dvis_cli.ops import _ext, build, status


@pytest.mark.parametrize(
    "raw,mode", [("", "auto"), ("0", "skip"), ("off", "skip"), ("1", "strict"), ("true", "strict"), ("maybe", "auto")]
)
def test_build_mode(monkeypatch, raw, mode):
    monkeypatch.setenv("DVIS_BUILD_OPS", raw)
    assert build.build_mode() == mode


def test_cuda_mode(monkeypatch):
    monkeypatch.delenv("DVIS_BUILD_CUDA", raising=False)
    monkeypatch.delenv("FORCE_CUDA", raising=False)
    assert build.cuda_mode() == "auto"
    monkeypatch.setenv("FORCE_CUDA", "1")
    assert build.cuda_mode() == "require"
    monkeypatch.setenv("DVIS_BUILD_CUDA", "0")
    assert build.cuda_mode() == "skip"


def test_skip_switch_builds_nothing(monkeypatch):
    monkeypatch.setenv("DVIS_BUILD_OPS", "0")
    assert build.extension_build_args() == {}


def test_cpu_build_plan(monkeypatch):
    monkeypatch.delenv("DVIS_BUILD_OPS", raising=False)
    monkeypatch.setenv("DVIS_BUILD_CUDA", "0")
    args = build.extension_build_args()
    (ext,) = args["ext_modules"]
    assert ext.name == "dvis_cli._C"
    assert all(not str(src).endswith(".cu") for src in ext.sources)
    assert ext.optional  # a failed build must not fail the install
    assert issubclass(args["cmdclass"]["build_ext"], torch.utils.cpp_extension.BuildExtension)


def test_strict_plan_is_not_optional(monkeypatch):
    monkeypatch.setenv("DVIS_BUILD_OPS", "1")
    monkeypatch.setenv("DVIS_BUILD_CUDA", "0")
    (ext,) = build.extension_build_args()["ext_modules"]
    assert not ext.optional


@pytest.mark.skipif(torch.version.cuda is not None, reason="checks the CPU-torch refusal")
def test_cuda_required_with_cpu_torch_is_an_error(monkeypatch):
    monkeypatch.setenv("DVIS_BUILD_CUDA", "1")
    monkeypatch.delenv("DVIS_BUILD_OPS", raising=False)
    assert build.extension_build_args() == {}  # auto mode: warn and build nothing
    monkeypatch.setenv("DVIS_BUILD_OPS", "1")
    with pytest.raises(build.OpsBuildError, match="CPU build"):
        build.extension_build_args()


def test_default_cuda_arch_lists():
    cuda13 = build.default_cuda_arch_list(13)
    assert cuda13.split(";")[0] == "7.5" and cuda13.endswith("+PTX")
    assert "7.0" in build.default_cuda_arch_list(12).split(";")
    assert build.default_cuda_arch_list(14).startswith("7.5")  # newer nvcc: the newest known list
    # Only what nvcc says it supports; the newest kept one carries PTX.
    assert build.default_cuda_arch_list(13, {"8.0", "9.0"}) == "8.0;9.0+PTX"


def test_strip_cuda_makes_a_cpu_extension():
    class Ext:
        sources = ["a/bindings.cpp", "a/ms_deform_attn_cpu.cpp", "a/ms_deform_attn_cuda.cu"]
        define_macros = [("DVIS_WITH_CUDA", None), ("X", "1")]
        libraries = ["c10", "torch", "cudart", "c10_cuda", "torch_cuda"]

    ext = Ext()
    build._strip_cuda(ext)
    assert ext.sources == ["a/bindings.cpp", "a/ms_deform_attn_cpu.cpp"]
    assert ext.define_macros == [("X", "1")]
    assert ext.libraries == ["c10", "torch"]


def test_loader_explains_missing_and_broken_builds(monkeypatch, tmp_path):
    monkeypatch.setenv("DVIS_OPS_CACHE", str(tmp_path))
    real_import = importlib.import_module

    def missing(name, *args):
        if name == "dvis_cli._C":
            raise ModuleNotFoundError("No module named 'dvis_cli._C'", name="dvis_cli._C")
        return real_import(name, *args)

    monkeypatch.setattr(_ext.importlib, "import_module", missing)
    state = _ext._find()
    assert not state.loaded and "not built" in state.reason
    assert any(str(tmp_path) in line for line in state.attempts)

    def broken(name, *args):
        if name == "dvis_cli._C":
            raise ImportError("/x/_C.so: undefined symbol: _ZN3c1017RegisterOperatorsD1Ev")
        return real_import(name, *args)

    monkeypatch.setattr(_ext.importlib, "import_module", broken)
    state = _ext._find()
    assert not state.loaded and "another torch" in state.reason and "dvis build-ops" in state.reason


def test_loader_refuses_a_build_for_another_torch():
    class Stale:
        __file__ = "/x/_C.so"
        torch_version = "1.0.0"

    assert "built for torch 1.0.0" in _ext._check_module(Stale())


def test_cache_dir_is_per_torch(monkeypatch, tmp_path):
    monkeypatch.setenv("DVIS_OPS_CACHE", str(tmp_path))
    folder = _ext.cache_dir()
    assert folder.parent == tmp_path and torch.__version__.split("+")[0] in folder.name
    assert _ext.cached_build() is None


def test_doctor_reports_every_device(capsys):
    try:
        main(["doctor"])
    except SystemExit as done:
        assert done.code in (0, None)
    out = capsys.readouterr().out
    assert "dvis_cli._C" in out and "ms_deform_attn" in out and "torch" in out
    for choice in status.device_paths():
        assert choice.device in out


def test_build_ops_contradictory_flags_is_a_user_error(capsys):
    with pytest.raises(SystemExit) as done:
        main(["build-ops", "--cpu-only", "--cuda"])
    assert done.value.code == 2
    assert "contradict" in capsys.readouterr().err


def test_build_ops_without_compiler_is_a_user_error(monkeypatch, capsys):
    monkeypatch.setenv("CXX", "/nonexistent/c++")
    with pytest.raises(SystemExit) as done:
        main(["build-ops"])
    assert done.value.code == 2
    assert "no C++ compiler" in capsys.readouterr().err
