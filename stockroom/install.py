"""Installing the git hooks (placeholder until the hooks land)."""

from __future__ import annotations

from pathlib import Path


def install(root: Path) -> None:
    return None
