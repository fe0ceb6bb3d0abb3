"""Opening and checking a stock root's Hangar repository.

The compatibility patches are installed here, before the first ``import
hangar``; a Repository is cached per (process, path) because LMDB refuses to
open one environment twice in a process; a damaged or too-new ``.hangar`` is
refused before Hangar quietly re-creates parts of it.
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from stockroom import _compat
from stockroom.errors import StockroomError
from stockroom.headfile import HANGAR_DIR
from stockroom.lock import WriterLock
from stockroom.quickread import HANGAR_DIRS, HANGAR_FILES, check_complete, damaged

_compat.install()

import hangar  # noqa: E402  (after the compatibility patches, on purpose)
from hangar.constants import LMDB_BRANCH_NAME, LMDB_REF_NAME  # noqa: E402
from hangar.records import vcompat  # noqa: E402

from stockroom.store import samples  # noqa: E402

# Every process that opens a store reads REMOTE/LAZY samples and writes over
# them as stockroom.store.samples says, not only one that made a transfer.
samples.install()

Checkout = Any  # hangar's ReaderCheckout / WriterCheckout (untyped library)

# One Repository per (process, path): LMDB forbids opening the same
# environment twice in one process, and a forked child must open its own.
_REPOS: dict[tuple[int, str], Any] = {}
# How many open Stores use each cached Repository: the last one to close
# closes it, so a process that opens many repositories (a test suite, a
# sweep over projects) does not keep every one's files open.
_USERS: dict[tuple[int, str], int] = {}


def release_repository(root: Path) -> None:
    """Close this process's cached Repository of ``root`` if no Store uses it."""
    key = (os.getpid(), str(root))
    if _USERS.get(key, 0) > 0:
        return
    _USERS.pop(key, None)
    repo = _REPOS.pop(key, None)
    if repo is not None and repo._env.repo_is_initialized:
        with contextlib.suppress(Exception):
            repo._env._close_environments()
        repo._env.cmtenv.clear()


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Hangar prints progress to stdout; stockroom's users did not ask for it."""
    with contextlib.redirect_stdout(io.StringIO()):
        yield


def init_hangar(root: Path, identity: Callable[[], tuple[str, str]], overwrite: bool) -> bool:
    """Create ``root/.hangar``; False when one exists and ``overwrite`` is off.

    ``identity()`` gives the (name, email) of the new store's commits; it is
    called only when a store is created (it may raise to refuse)."""
    key = (os.getpid(), str(root))
    # Reuse this process's Repository: opening a second one on the same
    # files fails in py-lmdb ("already open in this process").
    repo = _REPOS.get(key)
    if repo is None:
        if overwrite or not _complete(root / HANGAR_DIR):
            identity()  # a store will be made: refuse before anything changes on disk
        _clear_damaged(root, overwrite)
        with _quiet():
            repo = hangar.Repository(root, exists=False)
    if repo.initialized and not overwrite:
        _REPOS[key] = repo
        return False
    name, email = identity()
    if not repo.initialized:
        with _quiet():
            repo.init(user_name=name, user_email=email)
        _REPOS[key] = repo
        return True
    # Starting over deletes the store: never under a live writer's feet.
    lock = WriterLock(root / HANGAR_DIR)
    lock.acquire()
    try:
        _REPOS.pop(key, None)
        # Close this process's handles on the old files before Hangar
        # deletes them and opens new ones at the same paths.
        repo._env._close_environments()
        repo._env.cmtenv.clear()
        with _quiet():
            repo.init(user_name=name, user_email=email, remove_old=True)
    finally:
        lock.release()
    _REPOS[key] = repo
    return True


def _complete(hangar_dir: Path) -> bool:
    """``hangar_dir`` holds every file of a store (which init keeps as it is)."""
    if not hangar_dir.is_dir():
        return False
    try:
        _check_complete(hangar_dir)
    except StockroomError:
        return False
    return True


def _clear_damaged(root: Path, overwrite: bool) -> None:
    """Before (re-)initialising: refuse to open a damaged ``.hangar`` (Hangar
    would quietly re-create parts of it empty), unless told to start over or
    it never held a commit (an interrupted ``stock init``)."""
    hangar_dir = root / HANGAR_DIR
    if not hangar_dir.is_dir():
        return
    try:
        _check_complete(hangar_dir)
        return
    except StockroomError:
        never_used = (
            not (hangar_dir / LMDB_BRANCH_NAME).exists() and not (hangar_dir / LMDB_REF_NAME).exists()
        )
        if not (overwrite or never_used):
            raise
    lock = WriterLock(hangar_dir)
    lock.acquire()
    try:
        shutil.rmtree(hangar_dir)
    finally:
        lock.release()


def open_repository(root: Path) -> Any:
    """The Hangar repository of the stock root ``root`` (cached per process)."""
    key = (os.getpid(), str(root))
    repo = _REPOS.get(key)
    if repo is None:
        if not (root / HANGAR_DIR).is_dir():
            from stockroom.headfile import no_store_advice

            raise StockroomError(f"{root / HANGAR_DIR} is missing: {no_store_advice(root)}")
        _check_complete(root / HANGAR_DIR)
        try:
            with _quiet():
                repo = hangar.Repository(root, exists=True)
        except PermissionError as exc:
            # Not damage: never advise deleting a store that only needs its permissions fixed.
            raise StockroomError(f"cannot open {root / HANGAR_DIR}: {exc}; check its permissions") from None
        except (OSError, RuntimeError, ValueError) as exc:
            raise StockroomError(
                f"{root / HANGAR_DIR} is not a readable stock repository ({exc}); "
                f"restore it from a backup or run `stock init --overwrite` to start over"
            ) from None
        _check_version(repo, root / HANGAR_DIR)
        _REPOS[key] = repo
    return repo


# What Hangar's init creates (checked before Hangar opens the store: it
# re-creates a missing LMDB file empty). Kept in stockroom.quickread.
_HANGAR_FILES = HANGAR_FILES
_HANGAR_DIRS = HANGAR_DIRS


def _check_complete(hangar_dir: Path) -> None:
    check_complete(hangar_dir)


def _check_version(repo: Any, hangar_dir: Path) -> None:
    """Refuse a store written by a newer Hangar: 0.5.2 would open it, and may
    corrupt what it does not understand."""
    try:
        written = vcompat.get_repository_software_version_spec(repo._env.branchenv)
    except KeyError:
        raise damaged(hangar_dir, "no Hangar version record") from None
    running = vcompat.repo_version_raw_spec_from_raw_string(v_str=hangar.__version__)
    if written.release[:2] > running.release[:2]:
        raise StockroomError(
            f"{hangar_dir} was written by Hangar {written}, newer than the Hangar {running} "
            f"this stockroom uses; upgrade stockroom, or use the tool that wrote it"
        )
