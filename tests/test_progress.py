"""Progress lines report the rate of the work done in this run, not of a resumed run's past."""
import time

from dvis_cli.cli.progress import progress_factory


def test_plain_progress_rate_counts_from_a_resumed_start(capsys):
    bar = progress_factory("plain", unit="it")("train tracker", 3000)
    bar.update(2000)  # resumed at iteration 2000, reported right away
    time.sleep(0.25)
    bar.update(2300)
    err = capsys.readouterr().err.strip().splitlines()
    assert err[0] == "train tracker: 2000/3000 it (0.0/s)"
    rate = float(err[-1].split("(")[1].split("/s")[0])
    assert err[-1].startswith("train tracker: 2300/3000 it")
    assert 300 / 0.6 < rate < 300 / 0.25 + 1  # 300 iterations in ~0.25 s, not 2300


def test_plain_progress_rate_of_a_fresh_run_counts_from_its_start(capsys):
    bar = progress_factory("plain", unit="frames")("clip.mp4", 10)
    time.sleep(0.3)
    bar.update(5)  # first report after real work: counted from the start
    line = capsys.readouterr().err.strip().splitlines()[-1]
    rate = float(line.split("(")[1].split("/s")[0])
    assert 5 / 0.6 < rate < 5 / 0.3 + 0.1
