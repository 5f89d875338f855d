"""Weights by URL: downloaded once from a local HTTP server into the cache, atomically."""
from __future__ import annotations

import functools
import http.server
import shutil
import threading
from pathlib import Path

import pytest

from dvis_cli.checkpoint.load import load_model
from dvis_cli.checkpoint.resolve import resolve_weights
from dvis_cli.errors import CheckpointError

WEIGHTS = Path(__file__).resolve().parents[1] / "weights" / "dvis-tiny-synth.safetensors"


@pytest.fixture()
def server(tmp_path):
    served = tmp_path / "served"
    served.mkdir()
    shutil.copy(WEIGHTS, served / "tiny.safetensors")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(served))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", served
    httpd.shutdown()
    httpd.server_close()


def test_download_once_into_the_cache(server, tmp_path, monkeypatch):
    url, served = server
    monkeypatch.setenv("DVIS_CACHE", str(tmp_path / "cache"))
    first = resolve_weights(f"{url}/tiny.safetensors")
    assert first.read_bytes() == WEIGHTS.read_bytes()
    assert not list(first.parent.glob("*.part"))
    (served / "tiny.safetensors").unlink()  # the second call must not need the server
    assert resolve_weights(f"{url}/tiny.safetensors") == first
    assert load_model(first).best_mode == "offline"


def test_missing_url_is_a_clear_error(server, tmp_path, monkeypatch):
    url, _ = server
    monkeypatch.setenv("DVIS_CACHE", str(tmp_path / "cache"))
    with pytest.raises(CheckpointError, match="download failed"):
        resolve_weights(f"{url}/nothing-here.safetensors")
    assert not list((tmp_path / "cache").rglob("*.safetensors*"))
