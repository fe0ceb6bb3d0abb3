"""Fault injection: SIGKILL a stock writer at many points; nothing committed is lost.

A writer process runs a fixed scenario (bulk writes inside ``optimize()``
and a commit, then single writes, deletes and a second commit). A test-only
``sitecustomize`` (written to a temporary directory and put on
``PYTHONPATH`` of the child only) counts the child's durable steps: every
LMDB write-transaction commit inside Hangar, and every ``os.replace``,
``os.unlink``, ``os.fsync``, ``os.mkdir``, ``os.rmdir``, ``os.ftruncate``,
``os.pwrite``, file creation and subprocess start. With
``STOCK_CRASH_AT=N`` the child kills itself with SIGKILL just before step N,
so each crash point is deterministic and replayable.

After each crash a checker process (this file run as a script) asserts:
``stock status`` explains an interrupted commit and ``stock repair`` fixes
it; every commit in the history reads back bit for bit as the scenario
wrote it; the next writer gets the lock (stockroom's ``flock`` and
Hangar's lock record are both released) and commits; and ``git status``
shows nothing but ``head.stock``.

The short sweep always runs; ``pytest --slow`` tries every step.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

HERE = Path(__file__).resolve()
CHILD_TIMEOUT = 120

# ----------------------------------------------------------- the kill switch
# Loaded by the child's interpreter at start-up (sitecustomize); a no-op
# unless STOCK_CRASH_AT or STOCK_CRASH_LOG is set.
SITECUSTOMIZE = textwrap.dedent(
    r'''
    import os
    import signal

    _AT = int(os.environ.get("STOCK_CRASH_AT", "0") or 0)
    _LOG = os.environ.get("STOCK_CRASH_LOG", "")
    _count = 0

    def _name(value):
        try:
            return os.path.basename(os.fsdecode(value))
        except TypeError:
            return type(value).__name__

    def _event(what):
        global _count
        _count += 1
        if _LOG:
            with open(_LOG, "a", encoding="utf-8") as handle:
                handle.write(f"{_count}\t{what}\n")
        if _count == _AT:
            os.kill(os.getpid(), signal.SIGKILL)

    def _wrap(module, name, describe):
        real = getattr(module, name)

        def wrapper(*args, **kwargs):
            what = describe(*args, **kwargs)
            if what:
                _event(what)
            return real(*args, **kwargs)

        setattr(module, name, wrapper)

    def _install():
        import importlib.abc
        import importlib.machinery
        import subprocess
        import sys

        _wrap(os, "replace", lambda src, dst, *a, **k: f"replace {_name(src)} -> {_name(dst)}")
        _wrap(os, "rename", lambda src, dst, *a, **k: f"rename {_name(src)} -> {_name(dst)}")
        _wrap(os, "unlink", lambda path, *a, **k: f"unlink {_name(path)}")
        _wrap(os, "rmdir", lambda path, *a, **k: f"rmdir {_name(path)}")
        _wrap(os, "mkdir", lambda path, *a, **k: f"mkdir {_name(path)}")
        _wrap(os, "fsync", lambda fd: "fsync")
        _wrap(os, "ftruncate", lambda fd, n: "ftruncate")
        _wrap(os, "pwrite", lambda fd, data, off: "pwrite")
        _wrap(os, "open", lambda path, flags, *a, **k: f"create {_name(path)}" if flags & os.O_CREAT else "")
        _wrap(subprocess.Popen, "__init__", lambda self, args, *a, **k: f"spawn {_name(args[0]) if isinstance(args, (list, tuple)) else args}")

        class Finder(importlib.abc.MetaPathFinder):
            """Counts Hangar's LMDB commits: wraps TxnRegister.commit_writer_txn."""

            def find_spec(self, fullname, path, target=None):
                if fullname != "hangar.txnctx":
                    return None
                spec = importlib.machinery.PathFinder.find_spec(fullname, path)
                real_exec = spec.loader.exec_module

                def exec_module(module):
                    real_exec(module)
                    cls = module.TxnRegister
                    real = cls.commit_writer_txn

                    def commit_writer_txn(self, env, *a, **k):
                        _event(f"lmdb-commit {_name(env.path())}")
                        return real(self, env, *a, **k)

                    cls.commit_writer_txn = commit_writer_txn

                spec.loader.exec_module = exec_module
                return spec

        sys.meta_path.insert(0, Finder())

    if _AT or _LOG:
        _install()
    '''
)

# ------------------------------------------------ what the scenario writes
IMG = "img"
NAMES = "names"


def img(i: int) -> np.ndarray:
    return np.random.default_rng(i).standard_normal((8, 8)).astype(np.float32)


def vec(key: str) -> np.ndarray:
    return np.frombuffer(hashlib.sha256(key.encode()).digest()[:16], dtype=np.uint8).copy()


def weights(version: int) -> list[np.ndarray]:
    rng = np.random.default_rng(1000 + version)
    return [
        rng.standard_normal((300, 40)).astype(np.float32),
        rng.standard_normal((40,)).astype(np.float64),
        rng.integers(-5, 5, size=(3, 3), dtype=np.int64),
        np.array(version, dtype=np.int32),
    ]


def model_supported() -> bool:
    from stockroom.storages.model import ModelStore

    return hasattr(ModelStore, "__setitem__")


# State = {"data": {column: {key: array}}, "tag": {key: value}, "model": {name: [arrays]}}
State = dict[str, dict[str, Any]]

NAME_KEYS0 = ["a/b", "c-d", "ü", "x" * 60]


def base_state() -> State:
    return {
        "data": {IMG: {i: img(i) for i in range(20)}, NAMES: {k: vec(k) for k in NAME_KEYS0}},
        "tag": {"lr": 0.1, "name": "base run", "n": 7, "flag": True, "neg0": -0.0},
        "model": {"net": weights(0)},
    }


def batch1(state: State) -> State:
    new = json_copy(state)
    new["data"][IMG].update({i: img(i) for i in range(20, 60)})
    new["data"][NAMES]["e f"] = vec("e f")
    new["tag"].update({"epochs": 10, "huge": 10**40, "note": "é" * 500})
    new["model"]["net"] = weights(1)
    return new


def batch2(state: State) -> State:
    new = json_copy(state)
    new["data"][IMG].update({i: img(i) for i in range(60, 70)})
    del new["data"][IMG][0]
    del new["tag"]["flag"]
    new["tag"]["epochs"] = 20
    return new


def json_copy(state: State) -> State:
    return {kind: {k: (dict(v) if isinstance(v, dict) else v) for k, v in items.items()} for kind, items in state.items()}


def states(with_model: bool) -> list[State]:
    s0 = base_state()
    result = [s0, batch1(s0), batch2(batch1(s0))]
    if not with_model:
        for s in result:
            s["model"] = {}
    return result


def write_state(stock: Any, state: State) -> None:
    for column, samples in state["data"].items():
        stock.data[column] = samples
    for key, value in state["tag"].items():
        stock.tag[key] = value
    for name, value in state["model"].items():
        stock.model[name] = value


def scenario(root: str) -> None:
    """The writer that gets killed: batch 1 in optimize() and commit, batch 2 and commit."""
    import stockroom

    with_model = model_supported()
    s0, s1, _ = states(with_model)
    with stockroom.StockRoom(root, lock_timeout=30) as stock:
        with stock.optimize():
            for i in range(20, 60):
                stock.data[IMG][i] = s1["data"][IMG][i]
            stock.data[NAMES]["e f"] = s1["data"][NAMES]["e f"]
            for key in ("epochs", "huge", "note"):
                stock.tag[key] = s1["tag"][key]
            if with_model:
                stock.model["net"] = s1["model"]["net"]
            stock.commit("batch 1")
        stock.data[IMG].update({i: img(i) for i in range(60, 70)})
        del stock.data[IMG][0]
        del stock.tag["flag"]
        stock.tag["epochs"] = 20
        stock.commit("batch 2")
    print("scenario done")


# ------------------------------------------------------------ the checker
def same_array(got: Any, want: np.ndarray) -> bool:
    return (
        isinstance(got, np.ndarray)
        and got.dtype == want.dtype
        and got.shape == want.shape
        and got.tobytes() == want.tobytes()
    )


def same_tag(got: Any, want: Any) -> bool:
    if type(got) is not type(want):
        return False
    if isinstance(want, float):
        return bool(np.float64(got).tobytes() == np.float64(want).tobytes())
    return bool(got == want)


def read_state(stock: Any, with_model: bool) -> State:
    data = {column: {key: stock.data[column][key] for key in stock.data[column]} for column in stock.data}
    tags = {key: stock.tag[key] for key in stock.tag}
    models = {name: stock.model[name] for name in stock.model} if with_model else {}
    return {"data": data, "tag": tags, "model": models}


def diff_state(got: State, want: State) -> list[str]:
    """Every difference between two states, as text (empty when identical)."""
    problems = []
    if set(got["data"]) != set(want["data"]):
        problems.append(f"columns {sorted(got['data'])} != {sorted(want['data'])}")
    for column, samples in want["data"].items():
        have = got["data"].get(column, {})
        if set(have) != set(samples):
            problems.append(f"{column}: keys differ: extra {set(have) - set(samples)}, missing {set(samples) - set(have)}")
        problems += [f"{column}[{k!r}] differs" for k in samples if k in have and not same_array(have[k], samples[k])]
    if set(got["tag"]) != set(want["tag"]):
        problems.append(f"tags {sorted(got['tag'])} != {sorted(want['tag'])}")
    problems += [f"tag {k!r}: {got['tag'][k]!r} != {v!r}" for k, v in want["tag"].items() if k in got["tag"] and not same_tag(got["tag"][k], v)]
    if set(got["model"]) != set(want["model"]):
        problems.append(f"models {sorted(got['model'])} != {sorted(want['model'])}")
    for name, arrays in want["model"].items():
        have = got["model"].get(name)
        if have is not None and (len(have) != len(arrays) or not all(map(same_array, have, arrays))):
            problems.append(f"model {name!r} differs")
    return problems


def verify(root_arg: str, base_digest: str) -> dict[str, Any]:
    """Check a repository after a crash; raise AssertionError naming what is wrong."""
    from click.testing import CliRunner

    import stockroom
    from stockroom.cli import cli
    from stockroom.headfile import read_head, write_head

    root = Path(root_arg)
    os.chdir(root)
    with_model = model_supported()
    expected = states(with_model)
    report: dict[str, Any] = {"repaired": False}

    status = CliRunner().invoke(cli, ["status"])
    assert status.exit_code == 0, f"stock status failed after the crash: {status.output}"
    journal = root / ".hangar" / "stockroom-commit.json"
    if "interrupted" in status.output:
        assert "stock repair" in status.output, status.output
        assert journal.exists()
    if journal.exists():
        fixed = CliRunner().invoke(cli, ["repair"])
        assert fixed.exit_code == 0, fixed.output
        assert not journal.exists(), "stock repair left the journal"
        report["repaired"] = "now names" in fixed.output
        assert report["repaired"] == ("interrupted" in status.output), (status.output, fixed.output)

    # Every commit from head.stock back to the base reads back exactly.
    head = read_head(root)
    with stockroom.StockRoom(root) as stock:
        history = [entry["digest"] for entry in stock._store.log()]
    assert base_digest in history, f"base commit {base_digest} no longer reachable from head.stock"
    level = history.index(base_digest)
    assert level <= 2, f"{level} commits above the base; the scenario makes 2"
    report["level"] = level
    for depth, digest in enumerate(reversed(history[: level + 1])):
        write_head(root, digest)
        with stockroom.StockRoom(root) as stock:
            problems = diff_state(read_state(stock, with_model), expected[depth])
        assert not problems, f"commit {digest} (state {depth}) reads back wrong: {problems}"
    write_head(root, head)

    # The next writer proceeds: stale locks are released.
    with stockroom.StockRoom(root, lock_timeout=5) as stock:
        staged = stock._store.staged_changes()
        report["staged_left"] = len(staged)
        stock.tag["after crash"] = level
        stock.commit("after the crash")
        after = read_state(stock, with_model)
    # What a dead writer left staged is committed now; all of it is exact.
    floor = expected[level]
    allowed = expected[level:]
    for column, samples in floor["data"].items():
        for key in samples:
            gone_later = any(key not in s["data"].get(column, {}) for s in allowed)
            assert gone_later or key in after["data"].get(column, {}), f"{column}[{key!r}] lost"
    for column, samples in after["data"].items():
        for key, value in samples.items():
            assert any(same_array(value, s["data"].get(column, {}).get(key, np.empty(0))) for s in allowed), (
                f"{column}[{key!r}] is not any value the scenario wrote"
            )
    assert after["tag"].pop("after crash") == level
    for key, value in after["tag"].items():
        assert any(key in s["tag"] and same_tag(value, s["tag"][key]) for s in allowed), f"tag {key!r}={value!r}"
    for key in floor["tag"]:
        assert key in after["tag"] or any(key not in s["tag"] for s in allowed), f"tag {key!r} lost"
    for name, arrays in after["model"].items():
        assert any(
            name in s["model"] and len(arrays) == len(s["model"][name])
            and all(map(same_array, arrays, s["model"][name]))
            for s in allowed
        ), f"model {name!r} is not any version the scenario wrote"

    lines = subprocess.run(
        ("git", "status", "--porcelain", "--untracked-files=all"), cwd=root, capture_output=True, text=True, check=True
    ).stdout.splitlines()
    unexpected = [line for line in lines if line[3:] != "head.stock"]
    assert not unexpected, f"git status shows {unexpected}"
    return report


def switch_scenario(root: str) -> None:
    """A writer whose base moved (head.stock names an older commit, as after a
    git checkout): Hangar rebuilds its staging area for that commit first."""
    import stockroom

    with stockroom.StockRoom(root, lock_timeout=30) as stock:
        stock.tag["switched"] = 1
        stock.data[IMG][100] = img(100)
        stock.commit("on the old base")
    print("switch scenario done")


def verify_switch(root_arg: str, base_digest: str, newer_digest: str) -> dict[str, Any]:
    """After a crash while switching bases: nothing reads as deleted, both
    commits read back exactly, the next writer builds on head.stock's commit."""
    from click.testing import CliRunner

    import stockroom
    from stockroom.cli import cli
    from stockroom.headfile import read_head, write_head

    root = Path(root_arg)
    os.chdir(root)
    with_model = model_supported()
    s0, s1, _ = states(with_model)
    status = CliRunner().invoke(cli, ["status"])
    assert status.exit_code == 0, status.output
    assert "deleted" not in status.output, f"a crash made staged deletions: {status.output}"
    if (root / ".hangar" / "stockroom-commit.json").exists():  # killed inside the commit
        fixed = CliRunner().invoke(cli, ["repair"])
        assert fixed.exit_code == 0, fixed.output
        assert ("now names" in fixed.output) == ("interrupted" in status.output), (status.output, fixed.output)
    head = read_head(root)
    with stockroom.StockRoom(root, lock_timeout=5) as stock:
        want = s0
        if head != base_digest:  # the commit on the old base was made
            assert [e["digest"] for e in stock._store.log()][1] == base_digest
            want = {**s0, "tag": {**s0["tag"], "switched": 1},
                    "data": {**s0["data"], IMG: {**s0["data"][IMG], 100: img(100)}}}
        problems = diff_state(read_state(stock, with_model), want)
        assert not problems, problems
        stock.tag["after crash"] = 1
        stock.commit("after the crash")
        after = read_state(stock, with_model)
    # The old base, plus what the killed writer staged, plus the new tag.
    extra_tags = {"switched": 1, "after crash": 1}
    assert set(after["tag"]) - set(s0["tag"]) <= set(extra_tags), after["tag"]
    assert not diff_state(
        {**after, "tag": {k: v for k, v in after["tag"].items() if k not in extra_tags},
         "data": {c: {k: v for k, v in d.items() if (c, k) != (IMG, 100)} for c, d in after["data"].items()}},
        s0,
    )
    write_head(root, newer_digest)
    with stockroom.StockRoom(root) as stock:
        problems = diff_state(read_state(stock, with_model), s1)
    assert not problems, f"the newer commit reads back wrong: {problems}"
    lines = subprocess.run(
        ("git", "status", "--porcelain", "--untracked-files=all"), cwd=root, capture_output=True, text=True, check=True
    ).stdout.splitlines()
    assert all(line[3:] == "head.stock" for line in lines), lines
    return {"staged_left": "staged writes: none" not in status.output}


def setup_switch(root_arg: str, base_digest: str) -> None:
    """Commit batch 1 on the base, then point head.stock back at the base."""
    import stockroom
    from stockroom.headfile import write_head

    s1 = states(model_supported())[1]
    with stockroom.StockRoom(root_arg) as stock:
        with stock.optimize():
            for i in range(20, 60):
                stock.data[IMG][i] = s1["data"][IMG][i]
            stock.data[NAMES]["e f"] = s1["data"][NAMES]["e f"]
            for key in ("epochs", "huge", "note"):
                stock.tag[key] = s1["tag"][key]
            if s1["model"]:
                stock.model["net"] = s1["model"]["net"]
            digest = stock.commit("batch 1")
    write_head(Path(root_arg), base_digest)
    print(digest)


def setup_base(root_arg: str) -> None:
    """A git repository with the base state committed in stock and in git."""
    import stockroom

    root = Path(root_arg)
    root.mkdir(parents=True)
    git = {"cwd": root, "check": True, "capture_output": True}
    subprocess.run(("git", "init", "-q", "-b", "main"), **git)  # type: ignore[call-overload]
    stockroom.init_repo(name="Crash Tester", email="crash@example.com", path=root, install_hooks=False)
    with stockroom.StockRoom(root) as stock:
        s0 = states(model_supported())[0]
        write_state(stock, s0)
        digest = stock.commit("base")
    subprocess.run(("git", "add", "-A"), **git)  # type: ignore[call-overload]
    subprocess.run(("git", "commit", "-q", "-m", "base"), **git)  # type: ignore[call-overload]
    print(digest)


# ------------------------------------------------------------ the harness
def child_env(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GIT_", "STOCK"))}
    env.update(
        HOME=str(home),
        GIT_CONFIG_NOSYSTEM="1",
        GIT_CONFIG_GLOBAL=str(home / ".gitconfig"),
        GIT_AUTHOR_NAME="Crash Tester",
        GIT_AUTHOR_EMAIL="crash@example.com",
        GIT_COMMITTER_NAME="Crash Tester",
        GIT_COMMITTER_EMAIL="crash@example.com",
    )
    env.update(extra)
    return env


def run_self(mode: str, *args: str, env: dict[str, str], timeout: float = CHILD_TIMEOUT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        (sys.executable, str(HERE), mode, *args), env=env, capture_output=True, text=True, timeout=timeout
    )


class Lab:
    """A base repository, the kill switch, and the list of the scenario's steps."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.home = tmp / "home"
        self.home.mkdir()
        (self.home / ".gitconfig").write_text("[user]\n\tname = Crash Tester\n\temail = crash@example.com\n")
        self.site = tmp / "site"
        self.site.mkdir()
        (self.site / "sitecustomize.py").write_text(SITECUSTOMIZE)
        self.base = tmp / "base"
        done = run_self("setup", str(self.base), env=child_env(self.home))
        assert done.returncode == 0, done.stderr
        self.base_digest = done.stdout.split()[-1]
        # A full run with the step log on: the crash points to try.
        trial = self.copy("counted")
        log = tmp / "steps.log"
        done = self.scenario(trial, STOCK_CRASH_LOG=str(log))
        assert done.returncode == 0, done.stderr
        self.steps = [line.split("\t", 1)[1] for line in log.read_text(encoding="utf-8").splitlines()]
        report = self.verify(trial)
        assert report["level"] == 2 and not report["repaired"]

    def copy(self, name: str) -> Path:
        target = self.tmp / name
        shutil.copytree(self.base, target, symlinks=True)
        return target

    def scenario(self, root: Path, **extra: str) -> subprocess.CompletedProcess[str]:
        env = child_env(self.home, PYTHONPATH=str(self.site), **extra)
        return run_self("scenario", str(root), env=env)

    def verify(self, root: Path) -> dict[str, Any]:
        done = run_self("verify", str(root), self.base_digest, env=child_env(self.home))
        assert done.returncode == 0, f"after the crash: {done.stderr[-3000:]}"
        return dict(json.loads(done.stdout.strip().splitlines()[-1]))

    def crash_at(self, step: int) -> dict[str, Any]:
        root = self.copy(f"crash-{step}")
        done = self.scenario(root, STOCK_CRASH_AT=str(step))
        assert done.returncode == -9, (
            f"step {step} ({self.steps[step - 1]}): expected SIGKILL, got {done.returncode}: {done.stderr[-2000:]}"
        )
        try:
            report = self.verify(root)
        except AssertionError as exc:
            raise AssertionError(f"crash before step {step} ({self.steps[step - 1]}): {exc}") from None
        shutil.rmtree(root)
        return report


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Lab:
    return Lab(tmp_path_factory.mktemp("crash"))


def critical_steps(steps: list[str]) -> list[int]:
    """1-based steps from each commit's journal write to its removal."""
    chosen: list[int] = []
    start = None
    for n, what in enumerate(steps, 1):
        if what.startswith("create .stockroom-commit.json") and start is None:
            start = n
        if start is not None:
            chosen.append(n)
        if what == "unlink stockroom-commit.json" and start is not None:
            start = None
    return chosen


def short_sweep(steps: list[str]) -> list[int]:
    """11 steps: the first commit's journal write, the middle and end of
    Hangar's staging-directory reset, its branch update, the head.stock rename
    and the journal's removal; the second commit's head.stock rename; two
    steps in the bulk writes inside optimize() and one between the commits."""
    critical = critical_steps(steps)
    windows: list[list[int]] = []
    for n in critical:
        if windows and n == windows[-1][-1] + 1:
            windows[-1].append(n)
        else:
            windows.append([n])
    first, second = windows[0], windows[-1]

    def find(window: list[int], test: str) -> int:
        return next(n for n in window if test in steps[n - 1])

    made = find(first, "mkdir stage_data")
    picked = {
        find(first, "-> stockroom-commit.json"),
        find(first, "rmdir stage_data"),
        made, made + 1, made + 2,
        find(first, "-> head.stock"),
        find(first, "unlink stockroom-commit.json"),
        find(second, "-> head.stock"),
    }
    picked.update(int(n) for n in np.linspace(1, first[0] - 1, 4).round()[1:3])
    picked.add((first[-1] + second[0]) // 2)
    return sorted(picked)


def test_steps_cover_the_commit_window(lab: Lab) -> None:
    """The counted steps include the journal, Hangar's commit and head.stock's rename."""
    names = lab.steps
    assert any(s.startswith("lmdb-commit ref.lmdb") for s in names)
    assert any(s.endswith("-> head.stock") for s in names)
    assert any(s.endswith("-> stockroom-commit.json") for s in names)
    window = critical_steps(names)
    assert window and any(names[n - 1].startswith("lmdb-commit") for n in window)


def crash_all(lab: Lab, points: list[int]) -> list[dict[str, Any]]:
    # Two at a time: each trial is two processes that mostly wait on I/O and imports.
    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
        return list(pool.map(lab.crash_at, points))


def test_crash_short_sweep(lab: Lab) -> None:
    points = short_sweep(lab.steps)
    reports = crash_all(lab, points)
    levels = {r["level"] for r in reports}
    # The sweep reaches every outcome: nothing committed, one, both, and repairs.
    assert levels == {0, 1, 2}, levels
    assert any(r["repaired"] for r in reports)
    print(f"\ncrash points tried: {len(points)} of {len(lab.steps)} steps; repaired {sum(r['repaired'] for r in reports)}")


@pytest.mark.slow
def test_crash_every_step(lab: Lab) -> None:
    reports = crash_all(lab, list(range(1, len(lab.steps) + 1)))
    print(f"\ncrash points tried: {len(reports)}; repaired {sum(r['repaired'] for r in reports)}")


# ------------------------------------------- kills while switching the base
class SwitchLab:
    """The base with batch 1 committed on top and head.stock back on the base."""

    def __init__(self, lab: Lab) -> None:
        self.lab = lab
        self.base = lab.copy("switch-base")
        done = run_self("setup-switch", str(self.base), lab.base_digest, env=child_env(lab.home))
        assert done.returncode == 0, done.stderr
        self.newer = done.stdout.split()[-1]
        trial = self.copy("switch-counted")
        log = lab.tmp / "switch-steps.log"
        done = self.run(trial, STOCK_CRASH_LOG=str(log))
        assert done.returncode == 0, done.stderr
        self.steps = [line.split("\t", 1)[1] for line in log.read_text(encoding="utf-8").splitlines()]
        first = next(n for n, s in enumerate(self.steps, 1) if s == "create stockroom-switching")
        last = next(n for n, s in enumerate(self.steps, 1) if s == "unlink stockroom-switching")
        self.window = list(range(first, last + 1))
        self.verify(trial)

    def copy(self, name: str) -> Path:
        target = self.lab.tmp / name
        shutil.copytree(self.base, target, symlinks=True)
        return target

    def run(self, root: Path, **extra: str) -> subprocess.CompletedProcess[str]:
        return run_self("switch", str(root), env=child_env(self.lab.home, PYTHONPATH=str(self.lab.site), **extra))

    def verify(self, root: Path) -> dict[str, Any]:
        done = run_self("verify-switch", str(root), self.lab.base_digest, self.newer, env=child_env(self.lab.home))
        assert done.returncode == 0, f"after the crash: {done.stderr[-3000:]}"
        return dict(json.loads(done.stdout.strip().splitlines()[-1]))

    def crash_at(self, step: int) -> dict[str, Any]:
        root = self.copy(f"switch-{step}")
        done = self.run(root, STOCK_CRASH_AT=str(step))
        assert done.returncode == -9, f"step {step}: expected SIGKILL, got {done.returncode}: {done.stderr[-2000:]}"
        try:
            report = self.verify(root)
        except AssertionError as exc:
            raise AssertionError(f"crash before switch step {step} ({self.steps[step - 1]}): {exc}") from None
        shutil.rmtree(root)
        return report


@pytest.fixture(scope="module")
def switch_lab(lab: Lab) -> SwitchLab:
    return SwitchLab(lab)


def test_crash_while_switching_base(switch_lab: SwitchLab) -> None:
    """Hangar empties the staging area before refilling it for the new base: a
    kill in between must not leave "delete everything" staged."""
    window = switch_lab.window
    emptied = next(n for n in window if switch_lab.steps[n - 1].startswith("lmdb-commit stage_ref"))
    points = sorted({window[0], emptied, emptied + 1, window[-1]})
    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
        list(pool.map(switch_lab.crash_at, points))
    print(f"\nbase-switch crash points tried: {len(points)}")


@pytest.mark.slow
def test_crash_while_switching_base_every_step(switch_lab: SwitchLab) -> None:
    points = list(range(1, len(switch_lab.steps) + 1))
    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
        list(pool.map(switch_lab.crash_at, points))
    print(f"\nbase-switch crash points tried: {len(points)}")


# ------------------------------------------------------- kills inside a hook
# The installed hooks run Python with -S (no sitecustomize), so the kill
# switch above cannot reach them: the parent kills the hook's Python
# process itself, at delays spread over a measured run of the hook.
def hooks_available() -> bool:
    try:
        import stockroom.hook  # noqa: F401
        from stockroom.cli import cli
    except ImportError:
        return False
    return "install" in getattr(cli, "commands", {})


def hook_process(root: Path, name: str) -> int | None:
    """The pid of the Python process running hook ``name`` in ``root``."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().split(b"\0")
            if b"stockroom.hook" not in b" ".join(cmdline) or name.encode() not in cmdline:
                continue
            if Path(os.readlink(entry / "cwd")) != root:
                continue
        except OSError:
            continue
        return int(entry.name)
    return None


def run_git_killing_hook(
    root: Path, env: dict[str, str], hook: str, delay: float | None, *args: str
) -> tuple[float, bool]:
    """Run ``git ARGS`` and SIGKILL hook ``hook`` ``delay`` seconds after it starts
    (None: let it run). Returns how long the hook process was seen alive, and
    whether the kill reached it."""
    git = subprocess.Popen(("git", *args), cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    pid = None
    seen = 0.0
    hit = False
    while git.poll() is None and pid is None:
        pid = hook_process(root, hook)
        time.sleep(0.001)
    if pid is not None:
        start = time.monotonic()
        if delay is not None:
            time.sleep(delay)
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
                hit = True
        while Path(f"/proc/{pid}").exists() and git.poll() is None:
            time.sleep(0.001)
        seen = time.monotonic() - start
    out, err = git.communicate(timeout=CHILD_TIMEOUT)
    if delay is None:
        assert git.returncode == 0, err
    return seen, hit


class HookLab:
    """A stock repository with the hooks installed and a stock commit that
    head.stock names but git has not recorded yet."""

    def __init__(self, lab: Lab) -> None:
        self.lab = lab
        self.env = child_env(lab.home)
        self.base = lab.tmp / "hook-base"
        shutil.copytree(lab.base, self.base, symlinks=True)
        done = subprocess.run((sys.executable, "-m", "stockroom", "install"), cwd=self.base, env=self.env,
                              capture_output=True, text=True, timeout=CHILD_TIMEOUT)
        assert done.returncode == 0, done.stderr
        # `stock install` adds the merge driver's line to .gitattributes: a user commits it.
        subprocess.run(("git", "add", ".gitattributes"), cwd=self.base, env=self.env, check=True)
        subprocess.run(("git", "commit", "-q", "--no-verify", "-m", "stock install"), cwd=self.base,
                       env=self.env, check=True)
        code = "import stockroom; s = stockroom.StockRoom(); s.tag['hooked'] = 1; s.commit('for the hook')"
        subprocess.run((sys.executable, "-c", code), cwd=self.base, env=self.env, check=True, timeout=CHILD_TIMEOUT)
        # Code to commit beside it (the hook adds head.stock to that commit).
        (self.base / "train.py").write_text("print('train')\n")
        subprocess.run(("git", "add", "train.py"), cwd=self.base, env=self.env, check=True)
        trial = self.copy("hook-measure")
        self.pre_commit = run_git_killing_hook(trial, self.env, "pre-commit", None, "commit", "-q", "-m", "code")[0]
        self.post_checkout = run_git_killing_hook(
            trial, self.env, "post-checkout", None, "checkout", "-q", "HEAD~1"
        )[0]
        assert self.pre_commit > 0 and self.post_checkout > 0, "the hooks did not run Python"

    def copy(self, name: str) -> Path:
        target = self.lab.tmp / name
        shutil.copytree(self.base, target, symlinks=True)
        return target

    def git(self, root: Path, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(("git", *args), cwd=root, env=self.env, capture_output=True, text=True,
                              timeout=CHILD_TIMEOUT)

    def check_clean(self, root: Path, allowed: tuple[str, ...]) -> None:
        status = self.git(root, "status", "--porcelain", "--untracked-files=all").stdout.splitlines()
        assert all(line in allowed for line in status), status
        assert not (root / ".git" / "index.lock").exists()

    def kill_pre_commit(self, fraction: float) -> bool:
        root = self.copy(f"hook-pre-{fraction}")
        _, hit = run_git_killing_hook(
            root, self.env, "pre-commit", self.pre_commit * fraction, "commit", "-q", "-m", "code"
        )
        self.check_clean(root, (" M head.stock", "M  head.stock", "A  train.py"))
        head = (root / "head.stock").read_text()
        if self.git(root, "show", "HEAD:head.stock").stdout != head:
            # The killed hook stopped the commit; the next one goes through.
            done = self.git(root, "commit", "-q", "-m", "code")
            assert done.returncode == 0, done.stderr
        assert self.git(root, "show", "HEAD:head.stock").stdout == head
        self.check_clean(root, ())
        self.check_state(root, {"hooked": 1})
        shutil.rmtree(root)
        return hit

    def kill_post_checkout(self, fraction: float) -> bool:
        root = self.copy(f"hook-post-{fraction}")
        done = self.git(root, "commit", "-q", "-m", "code")
        assert done.returncode == 0, done.stderr
        _, hit = run_git_killing_hook(
            root, self.env, "post-checkout", self.post_checkout * fraction, "checkout", "-q", "HEAD~1"
        )
        # A post-checkout hook cannot undo a checkout: the old state is there, whole.
        assert self.git(root, "show", "HEAD:head.stock").stdout == (root / "head.stock").read_text()
        self.check_clean(root, ())
        self.check_state(root, {})
        shutil.rmtree(root)
        return hit

    def check_state(self, root: Path, extra_tags: dict[str, Any]) -> None:
        code = (
            "import json, stockroom; s = stockroom.StockRoom(); "
            "print(json.dumps({k: s.tag[k] for k in s.tag if k != 'neg0'}))"
        )
        done = subprocess.run((sys.executable, "-c", code), cwd=root, env=self.env, capture_output=True,
                              text=True, timeout=CHILD_TIMEOUT)
        assert done.returncode == 0, done.stderr
        want = {k: v for k, v in base_state()["tag"].items() if k != "neg0"} | extra_tags
        assert json.loads(done.stdout) == want


@pytest.fixture(scope="module")
def hook_lab(lab: Lab) -> HookLab:
    if not hooks_available():
        pytest.skip("the git hooks (stockroom.hook, `stock install`) are not there yet")
    return HookLab(lab)


def test_crash_inside_hooks(hook_lab: HookLab) -> None:
    fractions = [0.0, 0.5]
    hits = [hook_lab.kill_pre_commit(f) for f in fractions] + [hook_lab.kill_post_checkout(f) for f in fractions]
    assert hits[0] and hits[len(fractions)], "the kill at the hook's start must reach it"
    print(f"\nhook crash points tried: {len(hits)}, {sum(hits)} killed a running hook")


@pytest.mark.slow
def test_crash_inside_hooks_sweep(hook_lab: HookLab) -> None:
    fractions = [i / 20 for i in range(20)]
    hits = [hook_lab.kill_pre_commit(f) for f in fractions] + [hook_lab.kill_post_checkout(f) for f in fractions]
    print(f"\nhook crash points tried: {len(hits)}, {sum(hits)} killed a running hook")


def test_head_and_gitignore_writes_are_atomic(stock_repo: Path) -> None:
    """A reader polling head.stock and .gitignore while another process
    rewrites them never sees a partial file, and no temporary file shows up."""
    import stockroom
    from stockroom.headfile import HEAD_FILE, parse_head

    with stockroom.StockRoom() as stock:
        digests = []
        for i in range(3):
            stock.tag["i"] = i
            digests.append(stock.commit(f"c{i}"))
    ignores = [".hangar\n", ".hangar\n" + "".join(f"build{i}/\n" for i in range(2000))]
    script = textwrap.dedent(
        f"""
        from pathlib import Path
        from stockroom.headfile import atomic_write, write_head
        root = Path({str(stock_repo)!r})
        for i in range(400):
            write_head(root, {digests!r}[i % 3])
            atomic_write(root / ".gitignore", {ignores!r}[i % 2].encode())
        """
    )
    writer = subprocess.Popen((sys.executable, "-c", script))
    heads, gitignores = set(), set()
    try:
        while writer.poll() is None:
            heads.add(parse_head((stock_repo / HEAD_FILE).read_bytes()))
            gitignores.add((stock_repo / ".gitignore").read_text())
            status = subprocess.run(("git", "status", "--porcelain", "--untracked-files=all"), cwd=stock_repo,
                                    capture_output=True, text=True, check=True).stdout
            assert ".tmp" not in status, status
    finally:
        writer.wait(timeout=CHILD_TIMEOUT)
    assert writer.returncode == 0
    assert heads <= set(digests) and len(heads) >= 2, heads
    assert gitignores <= set(ignores), "a reader saw a partial .gitignore"
    assert not [p.name for p in stock_repo.iterdir() if p.name.endswith(".tmp")]


if __name__ == "__main__":
    mode, *rest = sys.argv[1:]
    if mode == "scenario":
        scenario(*rest)
    elif mode == "verify":
        print(json.dumps(verify(*rest)))
    elif mode == "switch":
        switch_scenario(*rest)
    elif mode == "verify-switch":
        print(json.dumps(verify_switch(*rest)))
    elif mode == "setup-switch":
        setup_switch(*rest)
    elif mode == "setup":
        setup_base(*rest)
    else:
        raise SystemExit(f"unknown mode {mode}")
