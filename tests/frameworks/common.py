"""Helpers of the framework tests: a stock repo with a directory remote, scripts as users run them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def with_remote(repo: Path, tmp_path: Path) -> Path:
    """Give the stock repository ``repo`` a directory stock remote and commit that."""
    remote = tmp_path / "remote"
    remote.mkdir()
    subprocess.run(
        ["stock", "remote", "add", "origin", str(remote)], check=True, cwd=repo, capture_output=True
    )
    subprocess.run(["git", "add", "-A"], check=True, cwd=repo)
    subprocess.run(["git", "commit", "-qm", "remote"], check=True, cwd=repo)
    return remote


def fresh_clone(repo: Path, where: Path) -> Path:
    """A git clone of ``repo`` with a lazy stock pull (another machine)."""
    subprocess.run(["git", "clone", "-q", str(repo), str(where)], check=True)
    subprocess.run(["stock", "pull", "--lazy"], check=True, cwd=where, capture_output=True)
    return where


def script(
    name: str, *args: str, cwd: Path, env: dict[str, str] | None = None, timeout: int = 240
) -> subprocess.CompletedProcess[str]:
    """Run tests/frameworks/NAME with this interpreter in ``cwd`` (the user's training script)."""
    full = dict(os.environ, **(env or {}))
    # this checkout's stockroom, wherever the script runs
    full["PYTHONPATH"] = os.pathsep.join([str(HERE.parents[1]), full.get("PYTHONPATH", "")])
    return subprocess.run(
        [sys.executable, str(HERE / name), *args],
        cwd=cwd,
        env=full,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def resumed_from(proc: subprocess.CompletedProcess[str]) -> str:
    """What the script printed after ``resumed from``."""
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    lines = [line for line in proc.stdout.splitlines() if line.startswith("resumed from ")]
    assert lines, proc.stdout[-2000:]
    return lines[-1].split()[-1]
