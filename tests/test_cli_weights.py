"""`dvis weights convert|info` from the command line, as a user runs them."""
from __future__ import annotations

import subprocess
import sys

import pytest


def dvis(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "dvis_cli", *args], capture_output=True, text=True, timeout=300)


def test_version():
    r = dvis("--version")
    assert r.returncode == 0 and r.stdout.startswith("dvis ")


def test_convert_then_info(tmp_path, official_checkpoints):
    dst = tmp_path / "offline.safetensors"
    r = dvis("weights", "convert", str(official_checkpoints["dvis_offline_r50_ovis"]), str(dst))
    assert r.returncode == 0, r.stderr
    assert "offline_r50_ovis" in r.stdout and "867 tensors mapped" in r.stdout
    r = dvis("weights", "info", str(dst), "--classes")
    assert r.returncode == 0, r.stderr
    for text in ("offline_r50_ovis", "segmenter, tracker, refiner", "23,454,912", "9,677,082", "14,411,291", "Vehical"):
        assert text in r.stdout
    r = dvis("weights", "convert", str(official_checkpoints["dvis_offline_r50_ovis"]), str(dst))
    assert r.returncode == 2 and "exists" in r.stderr


@pytest.mark.parametrize(
    "content, message",
    [(None, "no such file"), (b"not a checkpoint at all", "not a checkpoint"), (b"PK\x03\x04broken", "truncated or corrupt")],
)
def test_bad_input_one_line_nonzero_nothing_written(tmp_path, content, message):
    src = tmp_path / "in.pth"
    if content is not None:
        src.write_bytes(content)
    dst = tmp_path / "out.safetensors"
    r = dvis("weights", "convert", str(src), str(dst))
    assert r.returncode == 2
    assert message in r.stderr and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    assert not dst.exists() and [p.name for p in tmp_path.iterdir()] == (["in.pth"] if content is not None else [])


def test_class_count_mismatch_from_cli(tmp_path, official_checkpoints):
    r = dvis("weights", "convert", str(official_checkpoints["minvis_r50_ovis"]), str(tmp_path / "x.safetensors"), "--preset", "minvis_r50_vipseg")
    assert r.returncode == 2 and "class-count mismatch" in r.stderr


def test_os_errors_are_one_line(tmp_path, monkeypatch, capsys):
    """A full disk (or any OSError) while writing ends in one line and a non-zero exit."""
    import errno

    from dvis_cli.cli import app as cli_app

    def full_disk(*_args, **_kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "out.safetensors"))

    monkeypatch.setattr(cli_app, "app", full_disk)
    with pytest.raises(SystemExit) as exit_info:
        cli_app.main(["weights", "info", "x"])
    assert exit_info.value.code == 1
    err = capsys.readouterr().err
    assert "No space left on device" in err and len(err.strip().splitlines()) == 1


def test_unknown_option_is_a_usage_error_not_a_traceback():
    r = dvis("weights", "info", "--no-such-option")
    assert r.returncode == 2 and "No such option" in r.stderr and "Traceback" not in r.stderr
