"""The one place that runs git. Light: no numpy, hangar or GitPython."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from stockroom.errors import StockroomError

# Variables git sets for hooks; they point at the *outer* repository and
# would redirect a git call made for another directory.
_GIT_HOOK_VARS = ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "GIT_PREFIX")


def git(*args: str, cwd: str | os.PathLike[str] | None = None, keep_env: bool = True) -> str:
    """Run ``git ARGS`` and return its stdout (stripped of the final newline).

    Raises :class:`StockroomError` with git's own message when git fails or
    is not installed. ``keep_env=False`` drops the hook variables git
    exports, for calls about a directory other than the one git runs in.
    """
    env = None
    if not keep_env:
        env = {k: v for k, v in os.environ.items() if k not in _GIT_HOOK_VARS}
    try:
        proc = subprocess.run(
            ("git", *args),
            cwd=cwd,
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
    except FileNotFoundError:
        raise StockroomError("git is not installed or not on PATH; install git first") from None
    if proc.returncode != 0:
        message = proc.stderr.strip().splitlines()
        detail = message[-1] if message else f"exit code {proc.returncode}"
        raise StockroomError(f"git {' '.join(args)} failed: {detail}")
    return proc.stdout[:-1] if proc.stdout.endswith("\n") else proc.stdout


def work_tree_root(path: str | os.PathLike[str] | None = None) -> Path:
    """Top directory of the git work tree holding ``path`` (default: cwd)."""
    try:
        top = git("rev-parse", "--show-toplevel", cwd=path, keep_env=False)
    except StockroomError:
        where = Path(path or os.getcwd()).resolve()
        raise StockroomError(f"{where} is not inside a git work tree; run `git init` first") from None
    return Path(top)


def config_value(key: str, cwd: str | os.PathLike[str] | None = None) -> str | None:
    """``git config KEY`` or None when unset."""
    try:
        value = git("config", "--get", key, cwd=cwd, keep_env=False)
    except StockroomError:
        return None
    return value or None


def git_dir_of(root: Path) -> Path | None:
    """The git directory of the work tree at ``root`` without running git.

    Handles ``.git`` as a directory and as a ``gitdir:`` file (linked
    worktrees, submodules). None when ``root`` has no ``.git``.
    """
    dotgit = root / ".git"
    if dotgit.is_dir():
        return dotgit
    if dotgit.is_file():
        try:
            text = dotgit.read_text(encoding="utf-8").strip()
        except OSError:
            return None
        if text.startswith("gitdir:"):
            target = Path(text[len("gitdir:") :].strip())
            return target if target.is_absolute() else (root / target).resolve()
    return None


def head_is_detached(git_dir: Path) -> bool:
    """True when git's HEAD names a commit instead of a branch."""
    try:
        head = (git_dir / "HEAD").read_text(encoding="utf-8")
    except OSError:
        return False
    return not head.startswith("ref:")
