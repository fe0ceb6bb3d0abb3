"""What the installed git hooks run: ``pre-commit``, ``post-checkout``, ``post-rewrite``,
``pre-push`` and ``post-merge``.

The hooks run on every ``git commit`` and branch switch, so this module is
built for start-up time. It imports only ``os`` and ``sys`` at the top (not
numpy, hangar, GitPython, not even ``subprocess`` or ``pathlib``) and decides
from argv, the environment and the bytes of ``head.stock``. It opens the
Hangar store (the slow path, ``stockroom.store``) only when stock writes may
be staged (``.hangar/stockroom-staged`` exists) or when it cannot tell
otherwise whether ``.hangar`` has the commit ``head.stock`` names.

Exit policy: ``pre-commit`` exits 1 to refuse a commit, with a message that
says what to do; ``pre-push`` exits 1 when the stock data cannot be uploaded;
``post-checkout``, ``post-merge`` and ``post-rewrite`` always exit 0 (they warn
instead, and fetch a missing stock commit from the default remote:
``stock.autofetch``).
"""

from __future__ import annotations

import os
import sys

# Every name comes from stockroom.layout, which imports nothing (the fast
# path must not pay for stockroom.headfile or stockroom.store); these stay
# importable from here for the modules and installed code that take them so.
from stockroom.layout import HANGAR_DIR as HANGAR_DIR
from stockroom.layout import HANGAR_DIRS as HANGAR_DIRS
from stockroom.layout import HANGAR_FILES as HANGAR_FILES
from stockroom.layout import HEAD_FILE as HEAD_FILE
from stockroom.layout import HOOK_NAMES as HOOK_NAMES
from stockroom.layout import PUSHED_FILE as PUSHED_FILE
from stockroom.layout import REF_DB, REWRITTEN_ENV
from stockroom.layout import REMOTES_FILE as REMOTES_FILE
from stockroom.layout import STAGED_MARKER as STAGED_MARKER
from stockroom.layout import VERIFIED_FILE as VERIFIED_FILE

# How long a hook waits for the stock writer held by another process (a
# notebook in optimize()) before giving up with a message naming it.
# STOCKROOM_LOCK_TIMEOUT overrides it, as everywhere else.
HOOK_LOCK_TIMEOUT = 3.0

_PREFIX = "stockroom: "
_HEX = frozenset("0123456789abcdef")
# Git operations that replay existing commits: a hook must not get in their way.
_REPLAYING = ("rebase-merge", "rebase-apply", "CHERRY_PICK_HEAD", "REVERT_HEAD", "sequencer")
_site_loaded = False


class HookError(RuntimeError):
    """A problem the hook reports to the user (one message, no traceback)."""


def _say(message: str) -> None:
    sys.stderr.write(_PREFIX + message.replace("\n", "\n" + " " * len(_PREFIX)) + "\n")
    sys.stderr.flush()


# ------------------------------------------------------------------ helpers
def _git(*args: str, env: dict[str, str] | None = None, quiet: bool = True) -> tuple[int, bytes]:
    """Run git, return (exit code, stdout). stderr is dropped when ``quiet``.

    ``os.posix_spawnp`` instead of ``subprocess``: importing ``subprocess``
    costs more than running git here.
    """
    environ = dict(os.environ) if env is None else env
    if not hasattr(os, "posix_spawnp"):  # pragma: no cover - not POSIX
        import subprocess

        proc = subprocess.run(
            ("git", *args),
            env=environ,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL if quiet else None,
            check=False,
        )
        return proc.returncode, proc.stdout
    read_fd, write_fd = os.pipe()
    devnull = os.open(os.devnull, os.O_RDWR)
    actions = [(os.POSIX_SPAWN_DUP2, devnull, 0), (os.POSIX_SPAWN_DUP2, write_fd, 1)]
    if quiet:
        actions.append((os.POSIX_SPAWN_DUP2, devnull, 2))
    try:
        pid = os.posix_spawnp("git", ["git", *args], environ, file_actions=actions)
    finally:
        os.close(write_fd)
        os.close(devnull)
    chunks = []
    try:
        while True:
            chunk = os.read(read_fd, 65536)
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        os.close(read_fd)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status), b"".join(chunks)


def git_dir(root: str) -> str | None:
    """The (per-worktree) git directory of the work tree at ``root``, without running git."""
    env = os.environ.get("GIT_DIR")
    if env:
        return os.path.join(root, env)
    dotgit = os.path.join(root, ".git")
    if os.path.isdir(dotgit):
        return dotgit
    try:
        with open(dotgit, encoding="utf-8") as handle:
            text = handle.read().strip()
    except OSError:
        return None
    if not text.startswith("gitdir:"):
        return None
    return os.path.join(root, text[len("gitdir:") :].strip())


def replaying(gdir: str | None) -> bool:
    """True while a rebase, ``git am``, cherry-pick or revert is under way."""
    return gdir is not None and any(os.path.exists(os.path.join(gdir, name)) for name in _REPLAYING)


def _is_digest(text: str) -> bool:
    return len(text) == 42 and text.startswith("a=") and _HEX.issuperset(text[2:])


def parse(raw: bytes, where: str) -> str:
    """The digest in head.stock's bytes ('' when empty); HookError when unreadable."""
    try:
        text = raw.decode("ascii").strip()
    except UnicodeDecodeError:
        text = None
    if text is not None and (text == "" or _is_digest(text)):
        return text
    # Rare: let headfile word the problem (merge markers, binary data, ...).
    from stockroom.errors import StockroomError
    from stockroom.headfile import parse_head

    try:
        return parse_head(raw, where)
    except StockroomError as exc:
        raise HookError(str(exc)) from None


def _read_head(root: str) -> str:
    path = os.path.join(root, HEAD_FILE)
    try:
        with open(path, "rb") as handle:
            raw = handle.read(4096)
    except OSError as exc:
        raise HookError(f"cannot read {path}: {exc.strerror}; check its permissions") from None
    return parse(raw, HEAD_FILE)


def hangar_has_commit(root: str, digest: str) -> bool | None:
    """Whether ``.hangar`` has the commit ``digest``, read straight from its ref store.

    Hangar keys each commit's parent record by the digest in ``ref.lmdb``
    (what ``Store.has_commit`` asks too); reading it with ``lmdb`` costs a
    few milliseconds where importing hangar costs half a second. None when it
    cannot tell (no ``lmdb`` module, no such file, an error): then ask the store.
    """
    path = os.path.join(root, HANGAR_DIR, REF_DB)
    if not os.path.isfile(path):
        return None
    try:
        import lmdb
    except ImportError:
        return None
    try:
        # lock=False: Hangar opens its stores without LMDB's lock file too.
        env = lmdb.open(path, readonly=True, lock=False, subdir=False, create=False)
        try:
            with env.begin() as txn:
                return txn.get(digest.encode("ascii")) is not None
        finally:
            env.close()
    except lmdb.Error:
        return None


def _load_site() -> None:
    """Make site-packages importable: the hook script starts Python with -S."""
    global _site_loaded
    if sys.flags.no_site and not _site_loaded:
        import site

        site.main()
    _site_loaded = True


def _lock_timeout() -> float | None:
    return None if os.environ.get("STOCKROOM_LOCK_TIMEOUT") else HOOK_LOCK_TIMEOUT


def _verified(root: str) -> str:
    try:
        with open(os.path.join(root, HANGAR_DIR, VERIFIED_FILE), encoding="ascii") as handle:
            return handle.readline().strip()
    except (OSError, ValueError):
        return ""


def _remember_verified(root: str, digest: str) -> None:
    path = os.path.join(root, HANGAR_DIR, VERIFIED_FILE)
    tmp = f"{path}.{os.getpid()}.tmp"
    try:
        with open(tmp, "w", encoding="ascii") as handle:
            handle.write(digest + "\n")
        os.replace(tmp, path)
    except OSError:  # only a shortcut: without it the next hook checks again
        try:
            os.unlink(tmp)
        except OSError:
            pass


def check_complete(root: str) -> None:
    """HookError when a file or directory Hangar's init creates is missing (a few stats)."""
    hangar_dir = os.path.join(root, HANGAR_DIR)
    missing = [name for name in HANGAR_FILES if not os.path.isfile(os.path.join(hangar_dir, name))]
    missing += [name + "/" for name in HANGAR_DIRS if not os.path.isdir(os.path.join(hangar_dir, name))]
    if missing:
        _load_site()
        from pathlib import Path

        from stockroom.store.repository import damaged  # rare: the import cost does not matter

        raise HookError(str(damaged(Path(hangar_dir), f"missing {', '.join(missing)}")))


def has_commit(root: str, digest: str) -> bool:
    """Whether ``.hangar`` has ``digest``: remembered, the fast check, else the store's."""
    check_complete(root)  # the remembered digest says nothing about a store that lost files
    if digest and digest == _verified(root):
        return True
    known = hangar_has_commit(root, digest)
    if known is None:
        _load_site()
        from pathlib import Path

        from stockroom.store import Store

        store = Store(Path(root), lock_timeout=_lock_timeout())
        try:
            known = store.has_commit(digest)
        finally:
            store.close()
    if known:
        _remember_verified(root, digest)
    return known


def staged_writes(root: str) -> tuple[list[str], str]:
    """Staged stock writes (one line per column) and the commit they build on.

    Free when ``.hangar/stockroom-staged`` is absent (nothing can be staged);
    otherwise opens the store and takes the writer lock (bounded wait).
    """
    if not os.path.exists(os.path.join(root, HANGAR_DIR, STAGED_MARKER)):
        return [], ""
    _load_site()
    from pathlib import Path

    from stockroom.errors import StockroomError
    from stockroom.store import Store

    try:
        store = Store(Path(root), lock_timeout=_lock_timeout())
        try:
            changes = store.staged_changes()
            return changes, (store.staged_base() if changes else "")
        finally:
            store.close()
    except StockroomError as exc:
        raise HookError(f"cannot check for uncommitted stock writes: {exc}") from None


def _short(digest: str) -> str:
    return digest[:14] if digest else "(none)"


# --------------------------------------------------------------- pre-commit
def _framework_stashed_head() -> str | None:
    """Under the pre-commit framework: the digest of the head.stock edit it
    stashed ('' when that edit empties it or cannot be read), None when it
    stashed none.

    The framework saves unstaged changes as a patch named
    ``patch<time>-<its pid>`` in its cache directory and checks out the
    index before running hooks, so the work tree no longer shows the edit.
    """
    home = os.environ.get("PRE_COMMIT_HOME") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "pre-commit"
    )
    pids = {os.getppid()}
    try:  # the framework may run us through one more process (Linux only)
        with open(f"/proc/{os.getppid()}/stat", encoding="ascii") as handle:
            pids.add(int(handle.read().rsplit(")", 1)[1].split()[1]))
    except (OSError, ValueError, IndexError):
        pass
    import time

    newest: tuple[int, str] | None = None
    try:
        entries = os.listdir(os.path.realpath(home))
    except OSError:
        return None
    for name in entries:
        stamp, dash, pid = name[len("patch") :].partition("-")
        if not (name.startswith("patch") and dash and stamp.isdigit() and pid.isdigit()):
            continue
        # pids come back: only a patch of the last hour counts
        if int(pid) in pids and time.time() - int(stamp) < 3600:
            if newest is None or int(stamp) > newest[0]:
                newest = (int(stamp), name)
    if newest is None:
        return None
    try:
        with open(os.path.join(os.path.realpath(home), newest[1]), "rb") as handle:
            patch = handle.read()
    except OSError:
        return None
    header = f"diff --git a/{HEAD_FILE} b/{HEAD_FILE}".encode()
    if header not in patch:
        return None
    # The work tree shows the index's head.stock now: the digest is the patch's added line.
    section = patch.split(header, 1)[1].split(b"\ndiff --git ", 1)[0]
    for line in section.splitlines():
        text = line[1:].decode("ascii", "replace").strip()
        if line.startswith(b"+") and not line.startswith(b"+++") and _is_digest(text):
            return text
    return ""


def _git_command_line() -> list[str]:
    """The arguments of the ``git commit`` that runs this hook (Linux: read from
    /proc up the process tree: git, then the hook script, then us); [] when unknown."""
    pid = os.getpid()
    for _ in range(4):
        try:
            with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as handle:
                pid = int(handle.read().rsplit(")", 1)[1].split()[1])
            with open(f"/proc/{pid}/cmdline", "rb") as handle:
                args = [a.decode("utf-8", "replace") for a in handle.read().split(b"\0") if a]
        except (OSError, ValueError, IndexError):
            return []
        if args and os.path.basename(args[0]) == "git":
            return args[1:]
    return []


def _commits_anyway() -> bool:
    """Whether this git commit goes on with nothing staged (``--amend``, ``--allow-empty``):
    then the "run the same git commit again" hint does not apply."""
    for arg in _git_command_line():
        if arg == "--":
            break
        if arg.startswith("--amen") or arg.startswith("--allow-em"):
            return True
    return False


def _path_mode() -> bool:
    """``git commit PATH...`` (``--only``): git commits from a temporary index of
    HEAD plus those paths, so what the real index has staged is not committed."""
    return os.path.basename(os.environ.get("GIT_INDEX_FILE", "")).startswith("next-index-")


def _stage_head(root: str) -> None:
    """``git add head.stock`` into the index this commit is made from.

    For ``git commit PATH...`` git builds the commit from a temporary index
    (``next-index-*.lock``, passed as GIT_INDEX_FILE) and keeps the real
    index, with PATH... updated, in ``index.lock`` until the commit is made:
    head.stock goes into both, or the real index would be left stale.
    """
    code, _ = _git("add", "--", HEAD_FILE, quiet=False)
    if code != 0:
        raise HookError(f"`git add {HEAD_FILE}` failed; run it yourself, then commit again")
    index = os.environ.get("GIT_INDEX_FILE", "")
    if os.path.basename(index).startswith("next-index-"):
        real = os.path.join(os.path.dirname(os.path.join(root, index)), "index.lock")
        if os.path.exists(real):
            env = dict(os.environ, GIT_INDEX_FILE=real)
            code, _ = _git("add", "--", HEAD_FILE, env=env, quiet=False)
            if code != 0:
                raise HookError(f"`git add {HEAD_FILE}` failed; run it yourself, then commit again")


def pre_commit(root: str) -> int:
    """Refuse a commit whose stock state is not committed or not readable."""
    if not os.path.isfile(os.path.join(root, HEAD_FILE)) or not os.path.isdir(os.path.join(root, HANGAR_DIR)):
        return 0  # not a stock repository (or no stock data in this clone)
    # Read first: an unfinished stock merge must not be committed, replaying or not.
    digest = _read_head(root)
    if replaying(git_dir(root)):
        return 0  # rebase, am, cherry-pick, revert: replayed commits were checked when made

    changes, _ = staged_writes(root)
    if changes:
        raise HookError(
            "stock writes are not committed:\n  "
            + "\n  ".join(changes)
            + '\nrun `stock commit -m "MESSAGE"` to commit them (or `stock reset` to drop them), '
            "then commit again"
        )
    if digest and not has_commit(root, digest):
        raise HookError(
            f"{HEAD_FILE} names stock commit {digest}, which {HANGAR_DIR} does "
            f"not have; fetch or copy that stock data here, or point {HEAD_FILE} at a stock "
            f"commit you have (`git checkout -- {HEAD_FILE}`), then commit again"
        )

    # One git call: how head.stock stands between the index and the work tree.
    code, out = _git("--no-optional-locks", "status", "--porcelain", "--no-renames", "--", HEAD_FILE)
    if code != 0:
        raise HookError(f"`git status -- {HEAD_FILE}` failed; check the repository with `git status`")
    xy = out[:2].decode("ascii", "replace") if out else "  "
    if "U" in xy or xy in ("AA", "DD"):
        from stockroom.headfile import CONFLICT_ADVICE  # rare path: the import cost is fine

        raise HookError(
            f"{HEAD_FILE} has a merge conflict; run `stock merge` to merge both sides' stock, or "
            f"{CONFLICT_ADVICE}"
        )
    framework = os.environ.get("PRE_COMMIT") == "1"
    unstaged = xy[1] in "MT?"  # changed in the work tree, or not tracked yet
    stashed = _framework_stashed_head() if framework else None
    if unstaged or stashed is not None:
        if framework:
            # The framework stashed the edit: committing now would record the old digest.
            # The work tree shows the index's digest now: name the stashed one.
            named = stashed if stashed is not None else digest
            if _path_mode():
                raise HookError(
                    f"{HEAD_FILE} names stock commit {_short(named)} in your work tree, but this "
                    f"`git commit PATH...` commits only the paths it names; add {HEAD_FILE} to them "
                    f"(`git commit ... -- PATH... {HEAD_FILE}`), or `git add {HEAD_FILE} PATH...` "
                    f"and commit without paths"
                )
            raise HookError(
                f"{HEAD_FILE} names stock commit {_short(named)} in your work "
                f"tree but is not staged; run `git add {HEAD_FILE}`, then commit again"
            )
        # git decides "nothing to commit" before it runs this hook, so when
        # head.stock is the only change it refuses even though we staged it.
        only_change = _git("diff", "--cached", "--quiet")[0] == 0 and not _commits_anyway()
        _stage_head(root)
        _say(f"staged {HEAD_FILE} (stock commit {_short(digest)}) into this commit")
        if only_change:
            _say(
                f"{HEAD_FILE} is the only change: if git says 'no changes added to commit', "
                f"run the same git commit again (it is staged now)"
            )
    return 0


# ------------------------------------------------------------ post-checkout
def post_checkout(root: str, prev: str, new: str, flag: str) -> int:
    """Say when a checkout changed the stock commit; warn about what needs care."""
    if flag == "0":
        return 0  # a file checkout (also the pre-commit framework's own)
    if not os.path.isfile(os.path.join(root, HEAD_FILE)):
        return 0  # not a stock repository, or this commit has no head.stock
    gdir = git_dir(root)
    if replaying(gdir) or (gdir is not None and os.path.exists(os.path.join(gdir, "MERGE_HEAD"))):
        return 0
    created = prev.strip("0") == ""  # git clone, git worktree add
    if not os.path.isdir(os.path.join(root, HANGAR_DIR)):
        if created:
            digest = _read_head(root)
            if digest:
                from stockroom.headfile import no_store_advice  # light (os, re)

                _say(
                    f"{HEAD_FILE} names stock commit {_short(digest)}, but there is no stock data "
                    f"here ({HANGAR_DIR} is missing): {no_store_advice(root)}"
                )
        return 0
    if prev == new:
        return 0  # same commit (git switch -c, git checkout -b): nothing moved
    old = ""
    if not created:
        code, _ = _git("diff-tree", "--quiet", prev, new, "--", HEAD_FILE)
        if code == 0:
            return 0  # the fast path: head.stock is the same on both sides
        code, raw = _git("cat-file", "blob", f"{prev}:{HEAD_FILE}")
        try:
            old = parse(raw, f"{HEAD_FILE} of {prev[:12]}") if code == 0 else ""
        except HookError:
            old = "(unreadable)"
    digest = _read_head(root)
    if digest == old:
        return 0
    if digest == "":
        _say(f"{HEAD_FILE} names no stock commit here (was {_short(old)})")
    elif not has_commit(root, digest):
        autofetch(root, digest)
    else:
        _say(f"stock commit {_short(digest)} (was {_short(old)})")
    try:
        changes, base = staged_writes(root)
    except HookError as exc:
        _say(f"warning: {exc}")
        return 0
    if changes and base != digest:
        _say(
            f"warning: uncommitted stock writes stay staged on stock commit {_short(base)}, kept as "
            f"they are:\n  " + "\n  ".join(changes) + f"\nto keep them, check out the code whose "
            f"{HEAD_FILE} names {_short(base)} and run `stock commit -m MESSAGE`; or drop them "
            f"with `stock reset`"
        )
    return 0


# ------------------------------------------------------------- post-rewrite
def _blob(rev: str) -> str | None:
    """The digest head.stock holds at ``rev`` ('' empty or absent; None unreadable)."""
    code, raw = _git("cat-file", "blob", f"{rev}:{HEAD_FILE}")
    if code != 0:
        return ""
    try:
        return parse(raw, f"{HEAD_FILE} of {rev}")
    except HookError:
        return None


def post_rewrite(root: str, kind: str) -> int:
    """After a rebase: warn when a head.stock conflict was resolved by keeping one side.

    Keeping one side's head.stock (``git checkout --ours/--theirs``) keeps that
    side's stock commit only: the other side's stock writes are silently not
    in the branch. Compared by digests from git alone: the branch before
    (git lists each rewritten commit, old and new), the commit it was rebased
    onto, where it forked, and the result. Never fails (the rebase is done).
    """
    if kind != "rebase" or not os.path.isfile(os.path.join(root, HEAD_FILE)):
        return 0
    # "OLD NEW" per rewritten commit, in order: from the hook script (which read git's
    # stdin before the previous hook could), or stdin when run directly.
    listing = os.environ.get(REWRITTEN_ENV)
    if listing is None:
        listing = sys.stdin.read() if not sys.stdin.isatty() else ""
    pairs = [line.split()[:2] for line in listing.splitlines() if len(line.split()) >= 2]
    if not pairs:
        return 0
    (first_old, first_new), (last_old, last_new) = pairs[0], pairs[-1]
    # base: where the branch forked; mine: the branch before; upstream: what it was rebased onto.
    base, mine, upstream, result = (
        _blob(rev) for rev in (f"{first_old}^", last_old, f"{first_new}^", last_new)
    )
    if None in (base, mine, upstream, result) or len({base, mine, upstream}) < 3:
        return 0  # at most one side changed the stock: nothing can have been dropped
    if result == mine:
        lost = f"the stock changes of the branch you rebased onto (stock commit {_short(upstream or '')})"
    elif result == upstream:
        lost = f"your branch's own stock changes (stock commit {_short(mine or '')})"
    else:
        return 0  # a new stock commit: presumably both sides, merged by hand
    _say(
        f"warning: this rebase resolved a {HEAD_FILE} conflict by keeping one side: its stock "
        f"commit {_short(result or '')} lacks {lost}. Write those tags, data and models again and "
        f"`stock commit`, then commit {HEAD_FILE}"
    )
    return 0


# ------------------------------------------------------- remotes (section 6)
def _config(*args: str) -> str:
    code, out = _git("config", *args)
    return out.decode("utf-8", "replace").strip() if code == 0 else ""


def default_remote(root: str) -> tuple[str, str]:
    """(name, URL) of the default stock remote, ('', '') when there is none.

    Same rule as ``stockroom.remote.config.default_name``, with at most three
    git calls: no hangar, no network.
    """
    tracked = os.path.join(root, REMOTES_FILE)
    sources: list[tuple[str, ...]] = [("--local",)]
    if os.path.isfile(tracked):
        sources.append(("--file", tracked))
    urls: dict[str, str] = {}
    chosen = ""
    for source in sources:
        for line in _config(
            *source, "--get-regexp", r"^(stockremote\..*\.url|stock\.defaultremote)$"
        ).splitlines():
            key, _, value = line.partition(" ")
            if key == "stock.defaultremote":
                chosen = chosen or value
            elif key.startswith("stockremote."):
                urls.setdefault(key[len("stockremote.") : -len(".url")], value)
    if chosen in urls:
        return chosen, urls[chosen]
    if urls:
        name = next(iter(urls))
        return name, urls[name]
    return "", ""


def _known_pushed(root: str, url: str) -> set[str]:
    try:
        with open(os.path.join(root, HANGAR_DIR, PUSHED_FILE), encoding="utf-8") as handle:
            lines = handle.read().splitlines()
    except OSError:
        return set()
    known = set()
    for line in lines:
        digest, _, where = line.partition(" ")
        if where == url:
            known.add(digest)
    return known


def pre_push(root: str, lines: list[str]) -> int:
    """Upload the stock commits of the pushed git commits before git sends them.

    Nothing new (every digest already recorded as on the default remote): no
    network request, no hangar import.
    """
    if not os.path.isfile(os.path.join(root, HEAD_FILE)):
        return 0
    digests: list[str] = []
    for line in lines:
        parts = line.split()
        if len(parts) != 4 or parts[1].strip("0") == "":
            continue  # malformed, or a branch deletion
        code, raw = _git("cat-file", "blob", f"{parts[1]}:{HEAD_FILE}")
        if code != 0:
            continue  # that commit has no head.stock
        try:
            digest = parse(raw, f"{HEAD_FILE} of {parts[1][:12]}")
        except HookError as exc:
            # A commit that no hook checked (a rebase replays commits without the
            # pre-commit hook) may record an unfinished stock merge or conflict
            # markers: pushing it would hand teammates code with no stock state.
            _say(
                f"push refused: {exc}\nfix {HEAD_FILE} in that commit (for example `stock merge`, "
                f"`git add {HEAD_FILE}` and `git commit --amend`), then push again; to push it "
                f"anyway: git push --no-verify"
            )
            return 1
        if digest and digest not in digests:
            digests.append(digest)
    if not digests:
        return 0
    name, url = default_remote(root)
    if not name:
        _say(
            "no stock remote configured: the stock data is not pushed (add one: `stock remote add NAME URL`)"
        )
        return 0
    if set(digests) <= _known_pushed(root, url):
        return 0
    _load_site()
    from pathlib import Path

    from stockroom.remote import sync

    try:
        _, summary = sync.push(Path(root), name, digests, hook=True)  # deadline at most 10 s
    except Exception as exc:  # noqa: BLE001 - every failure refuses the push with the reason
        _say(
            f"push refused: the stock data could not be uploaded to stock remote {name!r}: {exc}\n"
            f"fix that and push again (`stock push` uploads it by hand); to push the code "
            f"without its stock data: git push --no-verify"
        )
        return 1
    if summary.commits:
        _say(f"pushed {summary.commits} stock commit(s) to stock remote {name!r}")
    return 0


def autofetch(root: str, digest: str) -> None:
    """Fetch the stock commit ``digest`` from the default remote; never raises."""
    missing = (
        f"warning: {HEAD_FILE} names stock commit {_short(digest)}, which {HANGAR_DIR} does "
        f"not have; run `stock pull` to fetch it"
    )
    if _config("--bool", "stock.autofetch") == "false":
        _say(missing)
        return
    name, _ = default_remote(root)
    if not name:
        _say(missing + " (after `stock remote add NAME URL`)")
        return
    try:
        _load_site()
        from pathlib import Path

        from stockroom.remote import sync
        from stockroom.store import samples

        sync.fetch(
            Path(root), name, [digest], lazy=samples.lazy_clone(Path(root)), hook=True
        )  # deadline at most 10 s
    except Exception as exc:  # noqa: BLE001 - a git command never fails because of the fetch
        fix = (
            "" if "`stock pull " in str(exc) else "; run `stock pull`"
        )  # the error may name a remote that has it
        _say(f"warning: could not fetch stock commit {_short(digest)} from {name!r}: {exc}{fix}")
        return
    _remember_verified(root, digest)
    _say(f"fetched stock commit {_short(digest)} from stock remote {name!r}")


def post_merge(root: str) -> int:
    """After `git pull`/`git merge`: fetch the stock commit head.stock names if missing."""
    if not os.path.isfile(os.path.join(root, HEAD_FILE)) or not os.path.isdir(os.path.join(root, HANGAR_DIR)):
        return 0
    digest = _read_head(root)
    if digest and not has_commit(root, digest):
        autofetch(root, digest)
    return 0


# --------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> int:
    """Run hook ``argv[0]`` with git's arguments ``argv[1:]``; return the exit code.

    The current directory is the work tree's top (git runs hooks there).
    """
    args = list(sys.argv[1:] if argv is None else argv)
    name = args[0] if args else ""
    root = os.getcwd()
    if name == "post-checkout":
        rest = args[1:]
        if not rest and os.environ.get("PRE_COMMIT") == "1":
            # The pre-commit framework passes git's arguments in the environment.
            rest = [
                os.environ.get(f"PRE_COMMIT_{key}", "") for key in ("FROM_REF", "TO_REF", "CHECKOUT_TYPE")
            ]
        if len(rest) != 3:
            _say("post-checkout expects git's three arguments: PREVIOUS NEW FLAG; nothing done")
            return 0
        try:
            return post_checkout(root, *rest)
        except Exception as exc:  # noqa: BLE001 - a checkout must never fail because of us
            _say(f"warning: could not check the stock state after checkout: {exc}")
            return 0
    if name == "post-rewrite":
        try:
            return post_rewrite(root, args[1] if len(args) > 1 else "")
        except Exception as exc:  # noqa: BLE001 - never fails: the rewrite is done
            _say(f"warning: could not check the stock state after the rebase: {exc}")
            return 0
    if name == "pre-commit":
        try:
            return pre_commit(root)
        except HookError as exc:
            _say(f"commit refused: {exc}")
            return 1
        except Exception as exc:  # noqa: BLE001 - report it as a refusal with the way out
            _say(
                f"commit refused: the stock check failed: {exc}\n"
                "fix the problem above, or commit without the stock check this once with "
                "`git commit --no-verify`"
            )
            return 1
    if name == "pre-push":
        return pre_push(root, sys.stdin.read().splitlines())
    if name == "post-merge":
        try:
            return post_merge(root)
        except Exception as exc:  # noqa: BLE001 - a merge must never fail because of us
            _say(f"warning: could not check the stock state after the merge: {exc}")
            return 0
    _say(f"unknown hook {name!r}; stockroom provides: {', '.join(HOOK_NAMES)}")
    return 1


if __name__ == "__main__":
    sys.exit(main())
