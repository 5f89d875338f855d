"""`dvis eval score` for YouTube-VIS / OVIS result files, its bad-input errors, the submission zip."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from typer.testing import CliRunner

from dvis_cli.cli.app import app, main
from dvis_cli.errors import InputError
from dvis_cli.eval import write_submission_zip

DATA = Path(__file__).parent / "data" / "eval"
GT = DATA / "ytvis_case_gt.json"
OVIS_GT = DATA / "ovis_case_gt.json"
RESULTS = DATA / "ytvis_case_results.json"
VIS_KEYS = ["AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl"]


def _score(capsys, *args: str) -> tuple[int, str, str]:
    try:
        main(["eval", "score", *args])
        code = 0
    except SystemExit as exc:
        code = exc.code
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_eval_group_lists_score():
    result = CliRunner().invoke(app, ["eval", "--help"])
    assert result.exit_code == 0
    assert "score" in result.output


def test_score_vis_prints_table_and_writes_json(tmp_path, capsys):
    out = tmp_path / "ap.json"
    out.write_text("old")
    code, printed, _ = _score(capsys, "--gt", str(GT), "--results", str(RESULTS), "--json", str(out))
    assert code == 0
    assert "AP75" in printed and "59.19" in printed
    data = json.loads(out.read_text())
    assert [k for k in data if k in VIS_KEYS] == VIS_KEYS
    assert data["AP"] == pytest.approx(0.591914, abs=5e-7)
    assert data["AR1"] == pytest.approx(0.3)
    assert data["APm"] is None and data["ARl"] is None  # -1 in the official output: no GT in the bin
    assert "AP_light" not in data and data["occlusion"] is False
    assert [c["AP"] for c in data["per_category"]] == pytest.approx([0.58383, 0.6], abs=5e-6)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ap.json"]


def test_score_ovis_adds_occlusion_ap(tmp_path, capsys):
    out = tmp_path / "ovis.json"
    code, printed, _ = _score(capsys, "--gt", str(OVIS_GT), "--results", str(RESULTS), "--json", str(out))
    assert code == 0 and "AP_heavy" in printed
    data = json.loads(out.read_text())
    assert [data[k] for k in ("AP_light", "AP_medium", "AP_heavy")] == pytest.approx([0.6, 0.5, 0.583828], abs=5e-7)
    assert [data[k] for k in ("AR_light", "AR_medium", "AR_heavy")] == pytest.approx([0.6, 1.0, 0.9])


def _broken_results(tmp_path: Path, edit) -> Path:
    results = json.loads(RESULTS.read_text())
    edit(results)
    path = tmp_path / "results.json"
    path.write_text(json.dumps(results))
    return path


@pytest.mark.parametrize("edit, message", [
    (lambda r: r[0].update(video_id=42), "entry 0: video_id 42 is not in the ground truth"),
    (lambda r: r[2].update(category_id=9), "entry 2, video 1 (case): category_id 9 is not in the ground truth"),
    (lambda r: r[1]["segmentations"].append(r[1]["segmentations"][0]),
     "entry 1, video 1 (case): 'segmentations' has 5 frames, the video has 4"),
    (lambda r: r[3]["segmentations"][1].update(size=[128, 160]),
     "entry 3, video 1 (case), frame 1 (case/00001.jpg): mask size 128x160 does not match the video size 64x80"),
])
def test_bad_results_fail_with_one_line(tmp_path, capsys, edit, message):
    code, _, err = _score(capsys, "--gt", str(GT), "--results", str(_broken_results(tmp_path, edit)))
    assert code == 2
    assert message in err.replace("\n", " ")
    assert "Traceback" not in err


@pytest.mark.parametrize("args, message", [
    (["--gt", "GT", "--results", "MISSING"], "results file not found"),
    (["--gt", "MALFORMED", "--results", "RES"], "not valid JSON"),
    (["--gt", "GT"], "missing --results"),
    (["--gt", "GT", "--results", "RES", "--gt-pan", "x"], "not both"),
    ([], "nothing to score"),
])
def test_bad_command_lines(tmp_path, capsys, args, message):
    bad = tmp_path / "bad.json"
    bad.write_text('{"videos": [')
    subst = {"GT": str(GT), "RES": str(RESULTS), "MISSING": str(tmp_path / "nope.json"), "MALFORMED": str(bad)}
    code, _, err = _score(capsys, *[subst.get(a, a) for a in args])
    assert code == 2 and message in err


def test_entry_point_exit_code_and_single_line(tmp_path):
    bad = _broken_results(tmp_path, lambda r: r[0].update(video_id=42))
    proc = subprocess.run([sys.executable, "-m", "dvis_cli", "eval", "score", "--gt", str(GT), "--results", str(bad)],
                          capture_output=True, text=True, timeout=120, env={**os.environ, "COLUMNS": "300"})
    assert proc.returncode == 2
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "video_id 42 is not in the ground truth" in lines[0]


def test_submission_zip_holds_results_json_at_root(tmp_path):
    results = json.loads(RESULTS.read_text())
    path = write_submission_zip(results, tmp_path / "sub" / "submission.zip")
    with zipfile.ZipFile(path) as zf:
        assert zf.namelist() == ["results.json"]
        assert json.loads(zf.read("results.json")) == results
    assert sorted(p.name for p in path.parent.iterdir()) == ["submission.zip"]
    with pytest.raises(InputError, match=r"must end in \.zip"):
        write_submission_zip(results, tmp_path / "submission.json")
