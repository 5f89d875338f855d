"""Shared bits of the CLI: consoles and small helpers for reporting."""
from __future__ import annotations

from rich.console import Console

console = Console()
console_err = Console(stderr=True)
