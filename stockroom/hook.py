"""What the installed git hooks run: ``pre-commit``, ``post-checkout``, ``pre-push``, ``post-merge``.

The hooks run on every ``git commit`` and branch switch, so this module is
built for start-up time. It imports only ``os`` and ``sys`` at the top (not
numpy, hangar, GitPython, not even ``subprocess`` or ``pathlib``) and decides
from argv, the environment and the bytes of ``head.stock``. It opens the
Hangar store (the slow path, ``stockroom.store``) only when stock writes may
be staged (``.hangar/stockroom-staged`` exists) or when it cannot tell
otherwise whether ``.hangar`` has the commit ``head.stock`` names.

Exit policy: ``pre-commit`` exits 1 to refuse a commit, with a message that
says what to do; ``pre-push`` exits 1 when the stock data cannot be uploaded;
``post-checkout`` and ``post-merge`` always exit 0 (they warn instead, and
fetch a missing stock commit from the default remote: ``stock.autofetch``).
"""

from __future__ import annotations

import os
import sys

# Same values as stockroom.headfile / stockroom.store (a test checks): not
# imported from there because those imports cost more than this whole path.
HEAD_FILE = "head.stock"
HANGAR_DIR = ".hangar"
STAGED_MARKER = "stockroom-staged"
# The last digest a hook found in .hangar. Hangar never deletes a commit, and
# `stock init --overwrite` deletes .hangar with this file in it, so the hook
# script can trust it to skip starting Python when head.stock still names it.
VERIFIED_FILE = "stockroom-hook-verified"
HOOK_NAMES = ("pre-commit", "post-checkout", "pre-push", "post-merge")
# Stock commits known to be on a remote: "DIGEST URL" lines, written by
# stockroom.remote.sync after a push or fetch, so that pre-push decides
# "nothing new" without any network request.
PUSHED_FILE = "stockroom-pushed"
REMOTES_FILE = ".stockremotes"

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
    path = os.path.join(root, HANGAR_DIR, "ref.lmdb")
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


def has_commit(root: str, digest: str) -> bool:
    """Whether ``.hangar`` has ``digest``: remembered, the fast check, else the store's."""
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
def _framework_stashed_head() -> bool:
    """Under the pre-commit framework: did it stash unstaged head.stock edits?

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
        return False
    for name in entries:
        stamp, dash, pid = name[len("patch") :].partition("-")
        if not (name.startswith("patch") and dash and stamp.isdigit() and pid.isdigit()):
            continue
        # pids come back: only a patch of the last hour counts
        if int(pid) in pids and time.time() - int(stamp) < 3600:
            if newest is None or int(stamp) > newest[0]:
                newest = (int(stamp), name)
    if newest is None:
        return False
    try:
        with open(os.path.join(os.path.realpath(home), newest[1]), "rb") as handle:
            patch = handle.read()
    except OSError:
        return False
    return f"diff --git a/{HEAD_FILE} b/{HEAD_FILE}".encode() in patch


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
    if replaying(git_dir(root)):
        return 0  # rebase, am, cherry-pick, revert: replayed commits were checked when made
    digest = _read_head(root)

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
        raise HookError(
            f"{HEAD_FILE} has a merge conflict; keep one side with "
            f"`git checkout --ours {HEAD_FILE}` (or --theirs), then `git add {HEAD_FILE}`"
        )
    framework = os.environ.get("PRE_COMMIT") == "1"
    unstaged = xy[1] in "MT?"  # changed in the work tree, or not tracked yet
    if unstaged or (framework and _framework_stashed_head()):
        if framework:
            # The framework stashed the edit: committing now would record the old digest.
            raise HookError(
                f"{HEAD_FILE} names stock commit {_short(digest)} in your work "
                f"tree but is not staged; run `git add {HEAD_FILE}`, then commit again"
            )
        # git decides "nothing to commit" before it runs this hook, so when
        # head.stock is the only change it refuses even though we staged it.
        only_change = _git("diff", "--cached", "--quiet")[0] == 0
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
                _say(
                    f"{HEAD_FILE} names stock commit {_short(digest)}, but there is no stock data "
                    f"here ({HANGAR_DIR} is missing): copy or fetch it, or run `stock init` to "
                    f"start a new stock store"
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
        except HookError:
            continue  # the pre-commit hook refuses such files; nothing to upload
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
        _, summary = sync.push(Path(root), name, digests)
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

        sync.fetch(Path(root), name, [digest])
    except Exception as exc:  # noqa: BLE001 - a git command never fails because of the fetch
        _say(f"warning: could not fetch stock commit {_short(digest)} from {name!r}: {exc}; run `stock pull`")
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
