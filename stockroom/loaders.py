"""Feeding stock data to training loops: a PyTorch ``Dataset`` and a ``tf.data`` source.

``StockDataset(["images", "labels"])`` reads samples of stock data columns
(the ones ``stock.data`` writes) at the commit ``head.stock`` names, and
works with ``torch.utils.data.DataLoader``, ``num_workers`` included::

    from torch.utils.data import DataLoader
    from stockroom.loaders import StockDataset

    loader = DataLoader(StockDataset(["images", "labels"]), batch_size=64,
                        shuffle=True, num_workers=2)
    for images, labels in loader:
        ...

How it reads, and why:

* It reads committed data only (what ``head.stock`` names), never staged
  writes, and never takes the writer lock: training beside a process that
  writes is safe, and every worker sees the same samples.
* Item ``i`` is the sample under the ``i``-th key: the keys given, or the
  keys every column has, sorted (ints first, then text).
* In the process that created it (and with ``num_workers=0``) it follows
  ``head.stock`` at once, like ``stock.data``: after a ``git checkout`` the
  next item comes from the new commit, and ``len()`` is the new length.
* A worker forked by the DataLoader cannot open the store's LMDB files
  itself (LMDB environments must not cross a fork, and py-lmdb refuses to
  open them again in the child). Just before each fork this module brings
  every live dataset up to date with ``head.stock``; the worker then reads
  with the sample records its parent loaded, through data-file handles it
  opens itself. A worker that finds ``head.stock`` moved raises
  :class:`~stockroom.StockroomError`: start a new pass over the DataLoader
  (without ``persistent_workers``) to read the new commit. Workers started
  with ``multiprocessing_context="spawn"`` or ``"forkserver"`` open the
  store themselves.

``import stockroom`` does not import this module, nor torch: importing
``stockroom.loaders`` imports torch when it is installed (the dataset then
is a ``torch.utils.data.Dataset``) and works without it as a plain sequence.
:func:`tf_dataset` imports tensorflow when called.
"""

from __future__ import annotations

import os
import weakref
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from stockroom.core import find_root
from stockroom.errors import StockroomError
from stockroom.headfile import HANGAR_DIR, HEAD_FILE, read_head
from stockroom.keys import SampleKey, decode_sample, encode_sample
from stockroom.storages.data import column_name
from stockroom.store import Store, damaged, detached_column
from stockroom.store import lazy as lazy_reads

if TYPE_CHECKING:
    _Base = object
else:
    try:
        from torch.utils.data import Dataset as _Base
    except ImportError:  # torch is optional: the dataset is then a plain sequence
        _Base = object

__all__ = ["ReadAheadSampler", "StockDataset", "tf_dataset"]

# Hangar's backend code of a sample that is on the remote: on a lazy clone,
# the sample is fetched when read (stockroom.store.lazy).
_REMOTE = "50"


@dataclass
class _View:
    """What a dataset reads from: one stock commit, as one process opened it."""

    digest: str
    pid: int
    hkeys: tuple[str | int, ...]  # Hangar keys, item order
    columns: list[Any]  # Hangar reader columns, in the dataset's column order
    forked: bool = False  # inherited through fork: this process cannot reopen the store
    lazy: tuple[int, ...] = ()  # positions of columns with samples read on demand
    kept: bool = False  # every such sample was kept here when the view was made (lazy_reads.all_kept)
    # Digest -> the plan of the pack to download whole on the first miss of one of
    # its samples (see StockDataset._fetch_packs); made in each process on its first miss.
    packs: dict[str, Any] | None = None


def _lazy_columns(columns: Sequence[Any]) -> tuple[int, ...]:
    """Positions of the columns that have samples on the remote: Hangar opens
    a backend's handler only for backends the column's records use, so this
    is one dict lookup per column, whatever the number of samples."""
    return tuple(i for i, col in enumerate(columns) if _REMOTE in getattr(col, "_be_fs", {}))


# Datasets alive in this process, brought up to date before every fork.
_LIVE: weakref.WeakSet[StockDataset] = weakref.WeakSet()


def _sort_key(hkey: str | int) -> tuple[int, Any]:
    return (0, hkey) if isinstance(hkey, int) else (1, hkey)


class StockDataset(_Base):
    """Samples of stock data columns, for ``DataLoader`` (any ``num_workers``).

    ``columns``: one column name (items are arrays) or a sequence of names
    (items are tuples of arrays, in that order). ``keys``: the sample keys
    to serve, in order (default: the keys all columns have, sorted).
    ``path``: the stock root, or a ``StockRoom`` (default: found from the
    current directory). ``transform``: applied to each item (in the worker).
    ``fetch_threads``: on a lazy clone, how many of a batch's missing
    samples are fetched at once (0 or 1: one at a time, as each is read,
    and no whole packs). On a lazy clone the first miss in a pack of which
    this dataset's samples are at least half downloads that pack whole (a
    read-ahead that ``shuffle=True`` and a ``Subset`` get without asking).

    Items are numpy arrays; ``DataLoader``'s default collation stacks them
    into tensors. Missing columns or keys raise ``KeyError`` when the
    dataset is created or moves to another commit.
    """

    def __init__(
        self,
        columns: str | Sequence[str],
        keys: Iterable[SampleKey] | None = None,
        *,
        path: str | os.PathLike[str] | Any | None = None,
        transform: Callable[[Any], Any] | None = None,
        fetch_threads: int = 8,
    ) -> None:
        self._single = isinstance(columns, str)
        names = (columns,) if isinstance(columns, str) else tuple(columns)
        if not names:
            raise ValueError(
                "StockDataset needs at least one column name, e.g. StockDataset(['images', 'labels'])"
            )
        self.columns = names
        self._hnames = [column_name(name) for name in names]  # ValueError for bad names
        self.root = _stock_root(path)
        self._hangar_dir = self.root / HANGAR_DIR  # built once: read per sample on lazy clones
        if keys is None:
            self._wanted: tuple[tuple[SampleKey, str | int], ...] | None = None
        else:
            self._wanted = tuple((key, encode_sample(key)) for key in keys)
        self.transform = transform
        self.fetch_threads = fetch_threads
        self._store: Store | None = None
        self._view: _View | None = None
        self._explicit_ahead = False  # read_ahead() was called: no whole packs on a miss
        _LIVE.add(self)
        # Open now: a missing column fails here, and a view exists before the
        # first fork (a forked worker cannot make one).
        self._current_view()

    # ---------------------------------------------------------------- views
    def _current_view(self) -> _View:
        view = self._view
        pid = os.getpid()
        if view is not None and view.pid != pid:
            view = self._view = _View(
                view.digest,
                pid,
                view.hkeys,
                [detached_column(col) for col in view.columns],
                forked=True,
                lazy=view.lazy,
                kept=view.kept,
            )
            # self._store is the parent's now: never used here, and kept
            # referenced so that nothing in this process closes its handles.
        if view is not None and view.forked:
            digest = read_head(self.root)
            if digest != view.digest:
                raise StockroomError(
                    f"{HEAD_FILE} now names stock commit {digest or '(none)'}, but this DataLoader "
                    f"worker reads {view.digest}: a forked worker cannot reopen the stock store. "
                    f"Start a new pass over the DataLoader (without persistent_workers) to read it"
                )
            return view
        store = self._open_store()
        digest = store.head()
        if view is None or view.digest != digest:
            view = self._view = self._make_view(store, digest)
        return view

    def _open_store(self) -> Store:
        if self._store is None:
            try:
                self._store = Store(self.root)
            except StockroomError:
                raise
            except Exception as exc:  # noqa: BLE001 - py-lmdb's errors have no common base we can name
                raise StockroomError(
                    f"cannot open the stock store at {self.root} in this process ({exc}); create the "
                    f"StockDataset before the DataLoader starts its workers, or pass "
                    f"multiprocessing_context='spawn' to the DataLoader"
                ) from exc
        return self._store

    def _make_view(self, store: Store, digest: str) -> _View:
        co = store.reader()
        columns = []
        for name, hname in zip(self.columns, self._hnames, strict=True):
            if co is None or hname not in co.columns:
                raise KeyError(
                    f"data column {name!r} is not in stock commit {digest or '(none: nothing committed yet)'}; "
                    f"write and commit it, or check out a git commit that has it"
                )
            columns.append(co.columns[hname])
        if self._wanted is not None:
            for key, hkey in self._wanted:
                for name, col in zip(self.columns, columns, strict=True):
                    if hkey not in col:
                        raise KeyError(
                            f"sample {key!r} is not in data column {name!r} at stock commit {digest}"
                        )
            hkeys = tuple(hkey for _, hkey in self._wanted)
        else:
            common = set(columns[0].keys())
            for col in columns[1:]:
                common.intersection_update(col.keys())
            hkeys = tuple(sorted(common, key=_sort_key))
        view = _View(digest, os.getpid(), hkeys, columns, lazy=_lazy_columns(columns))
        if view.lazy:
            # Made before the workers fork: a pass over samples that are all
            # kept then neither looks for what to fetch nor starts read-ahead.
            view.kept = lazy_reads.all_kept(self._hangar_dir, self._lazy_texts(view, hkeys))
        return view

    # ------------------------------------------------------------- sequence
    def __len__(self) -> int:
        return len(self._current_view().hkeys)

    def __getitem__(self, index: int) -> Any:
        view = self._current_view()
        return self._item(view, view.hkeys[index])

    def __getitems__(self, indices: Sequence[int]) -> list[Any]:
        """Items for a whole batch (the DataLoader calls this): one head.stock check."""
        view = self._current_view()
        hkeys = [view.hkeys[i] for i in indices]
        if view.lazy and not view.kept and self.fetch_threads > 1:
            self._fetch(view, hkeys, self.fetch_threads)
        return [self._item(view, hkey) for hkey in hkeys]

    def _fetch(self, view: _View, hkeys: Iterable[str | int], threads: int) -> None:
        """Fetch the samples of ``hkeys`` that are on the remote and not here
        yet: those in packs worth downloading whole that way (see
        :meth:`_fetch_packs`), the others ``threads`` at once, by byte range
        (errors surface when the sample is read)."""
        texts = self._lazy_texts(view, hkeys)
        if texts:
            self._fetch_packs(view, texts)
            lazy_reads.prefetch(self._hangar_dir, texts, threads)

    def _fetch_packs(self, view: _View, texts: Iterable[str]) -> None:
        """Read-ahead without being asked for it (issue 21 #10): the first miss
        of a sample in a pack of which the samples this dataset serves are at
        least half (in bytes) downloads that pack whole, with one request, and
        keeps those samples (unless ``stock.cacheLimit`` is smaller than the
        data the dataset serves: see :func:`lazy_reads.plan_packs`).

        Whatever the order the DataLoader's sampler reads in (``shuffle=True``,
        a ``Subset`` of the dataset, which reads through it), an epoch then
        costs a download of the packs rather than a request per sample.
        DataLoader workers missing at once share the packs out
        (:func:`lazy_reads.fetch_packs_whole`): none is downloaded twice at once.
        A dataset given an explicit :meth:`read_ahead` sampler leaves the packs
        to its helper.
        """
        if self._explicit_ahead:
            return
        packs = view.packs
        if packs is None:
            packs = view.packs = {}
            try:
                every = self._lazy_texts(view, view.hkeys)
                for made in lazy_reads.plan_packs(self._hangar_dir, enumerate(every)):
                    packs.update((digest, made) for _, digest in made.samples)
            except StockroomError:
                pass  # no whole packs then: each sample is fetched as it is read, and says what failed
        if not packs:
            return
        wanted: dict[str, Any] = {}
        for text in texts:
            parsed = lazy_reads.parse_placeholder(text)
            plan = None if parsed is None else packs.get(parsed[1])
            if plan is not None:
                wanted[plan.pack] = plan
        if not wanted:
            return
        done = lazy_reads.fetch_packs_whole(self._hangar_dir, wanted.values())
        for plan in wanted.values():
            if plan.pack in done:  # a sample of it that is still missing (another reader's) comes by range
                for _, digest in plan.samples:
                    packs.pop(digest, None)

    def _lazy_texts(self, view: _View, hkeys: Iterable[str | int]) -> list[str]:
        """The lazy records (text) of the samples of ``hkeys`` that are on the remote."""
        texts: list[str] = []
        for pos in view.lazy:
            samples = view.columns[pos]._samples
            for hkey in hkeys:
                spec = samples.get(hkey)
                if spec is not None and spec.backend == _REMOTE:
                    texts.append(spec.schema_hash)
        return texts

    def read_ahead(self, sampler: Iterable[int], samples: int = 256, threads: int = 8) -> ReadAheadSampler:
        """``sampler``'s indices, fetching the next ``samples`` of them in the
        background while the DataLoader works (on a lazy clone; elsewhere the
        indices only). Pass it as the DataLoader's ``sampler``::

            loader = DataLoader(ds, batch_size=32, num_workers=2,
                                sampler=ds.read_ahead(RandomSampler(ds)))
        """
        # Its helper downloads the packs the pass reads most of, in the pass's
        # order: misses then leave packs to it (not downloaded twice at once).
        self._explicit_ahead = True
        return ReadAheadSampler(self, sampler, samples, threads)

    def _item(self, view: _View, hkey: str | int) -> Any:
        if view.lazy:
            return self._lazy_item(view, hkey)
        try:
            if self._single:
                item: Any = view.columns[0][hkey]
            else:
                item = tuple([col[hkey] for col in view.columns])
        except OSError as exc:
            raise damaged(self._hangar_dir, f"reading failed: {exc}") from exc
        return item if self.transform is None else self.transform(item)

    def _lazy_item(self, view: _View, hkey: str | int) -> Any:
        """An item of a view with samples on the remote: kept ones are read
        directly, the others through Hangar (which fetches them)."""
        hangar_dir = self._hangar_dir
        values = []
        try:
            for pos, col in enumerate(view.columns):
                value = None
                if pos in view.lazy:
                    spec = col._samples[hkey]
                    if spec.backend == _REMOTE:
                        value = lazy_reads.read_kept(hangar_dir, spec.schema_hash, touch=not view.kept)
                        if value is None and not view.kept and self.fetch_threads > 1:
                            # A miss outside a batch (``ds[i]``): its pack, whole, where worth it.
                            self._fetch_packs(view, [spec.schema_hash])
                            value = lazy_reads.read_kept(hangar_dir, spec.schema_hash)
                values.append(col[hkey] if value is None else value)
        except OSError as exc:
            raise damaged(hangar_dir, f"reading failed: {exc}") from exc
        item = values[0] if self._single else tuple(values)
        return item if self.transform is None else self.transform(item)

    def keys(self) -> list[SampleKey]:
        """The sample key of each item, in item order."""
        return [decode_sample(hkey) for hkey in self._current_view().hkeys]

    @property
    def digest(self) -> str:
        """The stock commit the dataset reads now."""
        return self._current_view().digest

    # -------------------------------------------------------------- pickling
    def __getstate__(self) -> dict[str, Any]:
        # Sent to spawn/forkserver workers: they open the store themselves.
        state = self.__dict__.copy()
        state["_store"] = None
        state["_view"] = None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        _LIVE.add(self)

    def close(self) -> None:
        """Release the reader this dataset holds (it reopens when used again)."""
        if self._view is not None and self._view.forked:
            return  # a worker: its parent owns the store
        store, self._store, self._view = self._store, None, None
        if store is not None:
            store.close()

    def __repr__(self) -> str:
        view = self._view
        size = f"{len(view.hkeys)} samples at {view.digest}" if view is not None else "not open"
        return f"StockDataset({list(self.columns)!r}, {size})"


class ReadAheadSampler:
    """A sampler that fetches the samples it will hand out next (see
    :meth:`StockDataset.read_ahead`).

    Each pass takes the wrapped sampler's order, then a helper process
    (forked from this one) fetches the samples in that order, at most
    ``samples`` beyond the last index handed out (a ``stock.cacheLimit``
    smaller than that drops what was fetched before it is read). The
    DataLoader's workers find them here, or wait for the download under way:
    no sample is downloaded twice at once. A pack the pass reads at least half
    of (in bytes) is downloaded whole, with one request, when the pass reaches
    its first sample (two packs at a time), unless ``stock.cacheLimit`` is smaller than the data the
    pass reads. A process rather than a thread:
    this process then never opens a remote client itself, and the
    DataLoader's workers, forked from it later, can (an S3 client does not
    survive a fork). The helper ends with the pass. When every sample the
    dataset serves was kept here as it opened (and no ``stock.cacheLimit``
    may drop them), a pass hands out the order and starts no helper.
    """

    def __init__(
        self, dataset: StockDataset, sampler: Iterable[int], samples: int = 256, threads: int = 8
    ) -> None:
        self.dataset = dataset
        self.sampler = sampler
        self.samples = samples
        self.threads = threads

    def __len__(self) -> int:
        return len(self.sampler)  # type: ignore[arg-type]

    def __iter__(self) -> Iterator[int]:
        import multiprocessing

        order = [int(i) for i in self.sampler]
        view = self.dataset._current_view()
        if not view.lazy or view.kept or self.samples <= 0 or not order:
            yield from order
            return
        ctx = multiprocessing.get_context("fork")
        handed = ctx.Value("q", 0, lock=False)  # indices handed out; -1: stop
        helper = ctx.Process(
            target=_read_ahead,
            args=(self.dataset, view, order, handed, self.samples, self.threads),
            name="stock-read-ahead",
            daemon=True,
        )
        helper.start()
        finished = False
        try:
            for n, index in enumerate(order):
                handed.value = n
                yield index
            finished = True
        finally:
            if finished:
                # The DataLoader takes the last indices before its workers read
                # them: the helper fetches to the end, without holding up this one.
                handed.value = len(order)
                _READ_AHEAD.append(helper)
            else:
                handed.value = -1  # the pass was abandoned: it ends the downloads under way
                _reap(helper)


def _read_ahead(
    dataset: StockDataset, view: _View, order: list[int], handed: Any, ahead: int, threads: int
) -> None:
    """The helper process: fetch ``order``'s samples, at most ``ahead`` past ``handed``.

    A pack that the pass reads most of (see :func:`lazy_reads.plan_packs`) is
    downloaded whole, with one request, when the pass reaches its first sample,
    two packs at a time (one downloads while the samples of the other are
    checked and kept); the samples of the other packs are fetched one by one,
    by byte range."""
    import time
    from concurrent.futures import Future, ThreadPoolExecutor

    hangar_dir = dataset._hangar_dir
    try:
        packs = lazy_reads.plan_packs(
            hangar_dir,
            ((n, text) for n, i in enumerate(order) for text in dataset._lazy_texts(view, [view.hkeys[i]])),
        )
        held = lazy_reads.hold_first(hangar_dir, packs)
    except Exception:  # noqa: BLE001 - no whole packs then: each sample is fetched as before
        packs, held = [], {}
    packs.reverse()  # the next one needed last: popped
    # Digest -> the download of its pack: not fetched by range while that runs.
    coming: dict[str, Future[int]] = {}
    step = max(2 * threads, 2)
    start = 0
    parent = os.getppid()
    idle_since: float | None = None
    pool = ThreadPoolExecutor(2, thread_name_prefix="stock-pack")
    try:
        while start < len(order):
            limit = handed.value
            if limit < 0 or os.getppid() != parent:
                return  # abandoned, or the training process is gone
            end = min(start + step, len(order), limit + ahead)
            if end <= start:
                # Waiting for the DataLoader. A pass left unfinished and unclosed
                # (its iterator kept by a traceback, say) never moves again: the
                # locks held for packs not started yet must not make the next
                # pass wait for them.
                now = time.monotonic()
                idle_since = idle_since or now
                if now - idle_since > 2.0 and held:
                    _release_unstarted(packs, held)
                time.sleep(0.005)
                continue
            idle_since = None
            while packs and packs[-1].first < end:
                plan = packs.pop()
                # A failed download leaves its samples to be fetched one by one when read.
                future = pool.submit(lazy_reads.fetch_pack, hangar_dir, plan, held)
                coming.update((digest, future) for _, digest in plan.samples)
            try:
                texts = [
                    text
                    for text in dataset._lazy_texts(view, [view.hkeys[i] for i in order[start:end]])
                    if not _coming(coming, text)
                ]
                lazy_reads.prefetch(hangar_dir, texts, threads)
            except Exception:  # noqa: BLE001 - a read-ahead failure surfaces when the sample is read
                return
            start = end
    finally:
        # Abandoned: the packs not started yet are not downloaded.
        pool.shutdown(wait=True, cancel_futures=handed.value < 0)


def _release_unstarted(packs: list[Any], held: dict[str, int]) -> None:
    """Release the locks taken ahead for the packs in ``packs`` (not started):
    a pack started later takes its samples' locks again as it starts."""
    for plan in packs:
        for _, digest in plan.samples:
            fd = held.pop(digest, -1)
            if fd >= 0:
                lazy_reads.unlock(fd)


def _coming(coming: dict[str, Any], text: str) -> bool:
    """The lazy sample ``text`` is in a pack whose download is under way."""
    parsed = lazy_reads.parse_placeholder(text)
    future = None if parsed is None else coming.get(parsed[1])
    return future is not None and not future.done()


# Helpers that fetch the end of a finished pass: reaped before the next fork.
_READ_AHEAD: list[Any] = []


def _reap(helper: Any) -> None:
    """Wait for a read-ahead helper to end; end it after 60 s (stuck, e.g. on
    a remote that stopped answering: its locks go with it)."""
    helper.join(60)
    if helper.is_alive():
        helper.terminate()
        helper.join()


def _stock_root(path: Any) -> Path:
    if path is None:
        return find_root()
    root_of_stock = getattr(path, "stockroot", None)  # a StockRoom
    root = Path(root_of_stock if root_of_stock is not None else path).resolve()
    if not (root / HANGAR_DIR).is_dir() or not (root / HEAD_FILE).is_file():
        raise StockroomError(
            f"{root} is not a stock repository (no {HEAD_FILE} and {HANGAR_DIR}); pass the "
            f"directory that `stock init` set up, or a StockRoom"
        )
    return root


def _before_fork() -> None:
    """Bring every live dataset up to date with head.stock, for the child to
    inherit, once read-ahead helpers of finished passes have ended."""
    while _READ_AHEAD:
        _reap(_READ_AHEAD.pop())
    for dataset in list(_LIVE):
        if dataset._view is None:
            continue  # closed: nothing to hand down, and not to be reopened behind the user
        try:
            dataset._current_view()
        except Exception:  # noqa: BLE001, S110 - a fork must not fail: the child reports it on first use
            pass


os.register_at_fork(before=_before_fork)


def tf_dataset(
    columns: str | Sequence[str],
    keys: Iterable[SampleKey] | None = None,
    *,
    path: str | os.PathLike[str] | Any | None = None,
) -> Any:
    """A ``tf.data.Dataset`` of the same items as :class:`StockDataset`.

    Elements are tensors (a tuple of them for several columns) with the
    columns' dtypes and sample shapes; batch, shuffle and prefetch with the
    usual ``tf.data`` methods. Reads happen in this process, following
    ``head.stock`` like ``stock.data``.
    """
    import tensorflow as tf

    source = StockDataset(columns, keys, path=path)
    view = source._current_view()
    specs = [
        tf.TensorSpec(shape=tuple(col.shape), dtype=tf.as_dtype(np.dtype(col.dtype))) for col in view.columns
    ]

    def generate() -> Any:
        for index in range(len(source)):
            yield source[index]

    signature = specs[0] if source._single else tuple(specs)
    return tf.data.Dataset.from_generator(generate, output_signature=signature)
