"""``StockRoom`` and ``init_repo``: the entry points of the Python API."""

from __future__ import annotations

import contextlib
import os
import warnings
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, cast

from stockroom import git as gitutil
from stockroom.errors import StockroomError
from stockroom.headfile import HANGAR_DIR, HEAD_FILE, atomic_write, no_store_advice, read_head, write_head

if TYPE_CHECKING:
    from stockroom.runs.run import Run
    from stockroom.storages.data import DataStore
    from stockroom.storages.model import ModelStore
    from stockroom.store import Store
    from stockroom.view import StockView

GITIGNORE_LINE = ".hangar"
_IGNORE_FORMS = {".hangar", ".hangar/", "/.hangar", "/.hangar/"}


def find_root(start: str | os.PathLike[str] | None = None) -> Path:
    """The stock root at or above ``start``: holds head.stock, .hangar and .git."""
    here = Path(start or os.getcwd()).resolve()
    for candidate in (here, *here.parents):
        if (
            (candidate / HEAD_FILE).is_file()
            and (candidate / HANGAR_DIR).is_dir()
            and (candidate / ".git").exists()
        ):
            return candidate
        if (candidate / HANGAR_DIR).is_dir() and (candidate / ".git").exists():
            # The store is here, head.stock is not (`git rm head.stock`, a
            # deleted file): `stock init` would only write an empty one.
            raise StockroomError(
                f"{candidate / HEAD_FILE} is missing ({HANGAR_DIR} is there); restore it with "
                f"`git checkout HEAD -- {HEAD_FILE}`"
            )
        if (candidate / HEAD_FILE).is_file() and (candidate / ".git").exists():
            # A fresh clone, or a deleted store: say so, not "no repository".
            if read_head(candidate) == "":
                raise StockroomError(
                    f"{candidate / HANGAR_DIR} is missing ({HEAD_FILE} is there but names no stock "
                    f"commit yet): run `stock init` to create the store"
                )
            raise StockroomError(
                f"{candidate / HANGAR_DIR} is missing ({HEAD_FILE} is there): {no_store_advice(candidate)}"
            )
    raise StockroomError(
        f"no stock repository at or above {here} (a directory with {HEAD_FILE}, "
        f"{HANGAR_DIR} and .git); run `stock init` at the top of your git repository"
    )


def _ensure_gitignore(root: Path) -> None:
    path = root / ".gitignore"
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        text = ""
    if any(line.strip() in _IGNORE_FORMS for line in text.splitlines()):
        return
    if text and not text.endswith("\n"):
        text += "\n"
    atomic_write(path, (text + GITIGNORE_LINE + "\n").encode("utf-8"))


def _restore_head(root: Path) -> bool:
    """Put back a deleted ``head.stock`` from git's HEAD (index and work tree).

    An empty one would name no stock commit while ``.hangar`` and git's
    history name one: reads would see nothing and writes would refuse.
    """
    try:
        gitutil.git("cat-file", "-e", f"HEAD:{HEAD_FILE}", cwd=root)
    except StockroomError:
        return False  # no git commit has one: a new, empty head.stock is right
    gitutil.git("checkout", "HEAD", "--", HEAD_FILE, cwd=root)
    warnings.warn(
        f"{HEAD_FILE} was missing; restored it from git's HEAD (`git checkout HEAD -- {HEAD_FILE}`)",
        stacklevel=3,
    )
    return True


def init_repo(
    name: str | None = None,
    email: str | None = None,
    overwrite: bool = False,
    path: str | os.PathLike[str] | None = None,
    *,
    install_hooks: bool = True,
) -> Path:
    """Make the git work tree at ``path`` (default: cwd) a stock repository.

    Creates ``.hangar`` (Hangar's store, committed as ``name <email>``,
    which default to git's ``user.name``/``user.email``), an empty
    ``head.stock``, adds ``.hangar`` to ``.gitignore`` and installs the git
    hooks unless ``install_hooks`` is False. Safe to run again: what exists
    is kept, unless ``overwrite`` asks to start the store over.
    Returns the stock root.
    """
    root = gitutil.work_tree_root(path)

    def identity() -> tuple[str, str]:
        # Asked only when a store is created: running it again over an
        # existing .hangar changes nothing (SPEC 2), so it needs no identity.
        who = name or gitutil.config_value("user.name", root)
        where = email or gitutil.config_value("user.email", root)
        if not who or not where:
            raise ValueError(
                "stockroom needs a name and email for its commits: pass name=/email= "
                "(stock init --name N --email E) or set git config user.name and user.email"
            )
        return who, where

    from stockroom import store

    created = store.init_hangar(root, identity, overwrite)
    store.release_repository(root)  # closed unless a StockRoom here uses it
    head = root / HEAD_FILE
    if overwrite:
        write_head(root, "")
    elif not head.exists() and not _restore_head(root):
        write_head(root, "")
    elif created and read_head(root):
        # A clone or new worktree: the new store is empty, head.stock names a commit.
        warnings.warn(
            f"{HEAD_FILE} names stock commit {read_head(root)}, which this new, empty store does not "
            f"have: reads and writes fail until it is here; {no_store_advice(root)} "
            f"(remove this empty {HANGAR_DIR} first)",
            stacklevel=2,
        )
    _ensure_gitignore(root)
    if install_hooks:
        from stockroom.install import install

        install(root)
    return root


class StockRoom:
    """The stock state that belongs to the checked-out code.

    ``StockRoom()`` finds the stock root above the current directory;
    ``StockRoom(path)`` trusts ``path``. Reads follow ``head.stock`` as it
    changes (``git checkout`` included); writes are staged until
    :meth:`commit`.

    Attributes: ``path`` (also ``stockroot``), and the storages ``data``,
    ``model`` and ``tag``.
    """

    def __init__(
        self, path: str | os.PathLike[str] | None = None, *, lock_timeout: float | None = None
    ) -> None:
        if path is None:
            root = find_root()
        else:
            root = Path(path).resolve()
            if not (root / HANGAR_DIR).is_dir() or not (root / HEAD_FILE).is_file():
                raise StockroomError(
                    f"{root} is not a stock repository (no {HEAD_FILE} and {HANGAR_DIR}); "
                    f"run `stock init` there"
                )
        from stockroom import journal, quickread
        from stockroom.lock import default_timeout
        from stockroom.storages.tag import TagStore

        if lock_timeout is None:
            default_timeout()  # a bad STOCKROOM_LOCK_TIMEOUT is refused now, not at the first write

        self.path = root
        # The store (and Hangar, numpy) is opened on first use: `stock status`
        # and committed tag reads need neither (see stockroom.quickread).
        self._lazy = quickread.LazyStore(root, lock_timeout)
        self._data: DataStore | None = None
        self._model: ModelStore | None = None
        self._views: list[StockView] = []
        hangar_dir = root / HANGAR_DIR
        if journal.exists(hangar_dir):
            # An interrupted commit: the store says so when it opens (a warning).
            from stockroom.store import Store

            self._lazy.store = Store(root, lock_timeout, self._lazy.headwatch)
        else:
            # What opening the store refuses, refused here as before.
            quickread.check_complete(hangar_dir)
            quickread.check_version(root)
        self.tag = TagStore(self._lazy)

    @property
    def _store(self) -> Store:
        """The access layer's store, opened now if it was not."""
        return cast("Store", self._lazy.open())

    @property
    def data(self) -> DataStore:
        """Data columns: ``stock.data["images"][0] = array``."""
        if self._data is None:
            from stockroom.storages.data import DataStore

            self._data = DataStore(self._store)
        return self._data

    @property
    def model(self) -> ModelStore:
        """Model weights: ``stock.model["net"] = model.state_dict()``."""
        if self._model is None:
            from stockroom.storages.model import ModelStore

            self._model = ModelStore(self._store)
        return self._model

    @property
    def stockroot(self) -> Path:
        """Same as ``path``: the directory holding ``head.stock``."""
        return self.path

    @property
    def head(self) -> str:
        """The stock commit ``head.stock`` names now ('' before the first)."""
        return self._lazy.head()

    def commit(self, message: str, update_head: bool = True) -> str:
        """Commit everything written since the last commit; return its digest.

        With ``update_head`` (the default) ``head.stock`` is pointed at it:
        ``git add head.stock`` then records it with the code (the pre-commit
        hook does that for you).
        """
        return self._store.commit(message, update_head)

    def reset(self) -> bool:
        """Drop all uncommitted stock writes; False when there were none."""
        return self._store.reset_staging()

    @contextlib.contextmanager
    def optimize(self) -> Iterator[None]:
        """Keep the checkouts open for a block of bulk reads and writes.

        On a branch the writer (and its lock) is taken on entering and held
        for the whole block: another ``StockRoom`` waits for it (up to its lock
        timeout) and :meth:`get_hangar_checkout` ``(write=True)`` is refused
        inside. Where nothing may be written (a detached git HEAD), only the
        readers are kept open.
        """
        store = self._store
        if store.optimizing:
            raise StockroomError("optimize() is already active on this StockRoom; nest nothing")
        store.take_writer()
        store.optimizing = True
        try:
            yield
        finally:
            store.optimizing = False
            store.close_writer()

    def get_hangar_checkout(self, write: bool = False) -> Any:
        """The Hangar checkout stockroom uses, for experts.

        Read: at the commit ``head.stock`` names. Write: the staging area,
        holding the writer lock until you ``close()`` it.
        """
        return self._store.hangar_checkout(write)

    def at(self, rev: str) -> StockView:
        """A read-only view of the stock that git revision ``rev`` records.

        ``rev`` is anything git names a commit by (a branch, tag, sha,
        ``HEAD~2``). The view has ``tag``, ``data`` and ``model`` as this
        object has, nothing is checked out, and writes raise
        :class:`StockroomError`. It closes with this object (or earlier,
        with its own ``close()``).
        """
        from stockroom.view import StockView

        view = StockView(self.path, rev)
        self._views = [v for v in self._views if not v.closed]
        self._views.append(view)
        return view

    def run(
        self,
        name: str | None = None,
        keep_last: int | None = None,
        keep_best: int | None = None,
        monitor: str | None = None,
        mode: str = "min",
        **options: Any,
    ) -> Run:
        """Open a training run (default name: the git branch); see docs/runs.md (SPEC 9)."""
        from stockroom.runs.run import Run

        return Run(self, name, keep_last, keep_best, monitor, mode, **options)

    def close(self) -> None:
        """Release the checkouts and the writer lock (and close views from :meth:`at`)."""
        views, self._views = self._views, []
        for view in views:
            view.close()
        self._lazy.close()

    def __enter__(self) -> StockRoom:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"StockRoom({str(self.path)!r})"


def ensure_store(root: Path) -> bool:
    """Set up ``.hangar`` as `stock init` would when a fresh clone lacks it
    (`stock pull`, `stock fetch`); True when it did."""
    if (root / HANGAR_DIR).exists():
        return False
    with warnings.catch_warnings():
        # init warns that head.stock's commit is not in the new store and says to
        # run `stock pull`: wrong here, where the store is set up to pull into it.
        warnings.filterwarnings("ignore", message=r".*which this new, empty store does not have")
        init_repo(path=root)
    return True
