"""A team as a state machine: random sequences over real clones, checked against a model.

Hypothesis drives two or three clones of one project (installed hooks, real
git, real Hangar), a bare git origin and a directory stock remote through
writes, ``stock.commit``, ``git commit``, ``stock push``, ``git push``,
``git pull`` (merge and rebase), ``stock pull`` (full, ``--lazy`` and
``--column`` for a fresh clone), ``git switch``, ``stock fetch`` and a push to
a mirror remote. After every step every clone's stock (the head and every
other local branch) is read and compared with a plain-Python model (SPEC 6a):
in a full or lazy clone every value reads back exactly (a lazy one fetches on
demand); after a partial pull a value reads back exactly or raises
``StockroomError`` naming ``stock pull``, and what that pull fetched or this
clone wrote always reads.

How the model stays simple while merges stay real: a clone writes only keys
named after itself and the branch it is on (``B_exp_t0``, sample
``B_exp_1``, model ``B_exp_net``), so every key has one writer and one line
of history, and the merge driver's three-way result (SPEC 7) is, key by key,
the side holding the later write. Values come from small pools shared by all
clones, so a write often repeats content that an older commit of someone
else holds (issue 21, defect 1); data and models can also be fresh content,
so a lazy clone that downloads more than records is seen (defect 7).

``pytest --slow`` runs many more, randomized sequences; the default is a
short derandomized run for CI.
"""

from __future__ import annotations

import collections
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

import stockroom

torch = pytest.importorskip("torch")

Key = tuple[str, str]  # (kind, name): kind is tag, img, lbl or net
Value = tuple[int, Any]  # (version: the global write counter, content)
State = dict[Key, Value]

TAG_POOL = [1, 2, 3, "x", "y"]
POOL = 4  # pooled contents 0..POOL-1 for img, lbl and net; fresh contents are 1000 + version
BRANCHES = ("main", "exp")
# What `stock diff` says in a fully pulled clone about an older commit whose data
# `stock pull` left on the remote (see cli_reads); `stock log --tags` marks its row
# "(not fetched)" and names `stock fetch a=...`.
HISTORY_NOT_PULLED = (
    "this sample's data was not fetched",
    "part of the stock data being compared is not here",
)
LAZY_SLACK = 4096  # bytes a lazy clone's .hangar/data may grow by on a records-only fetch (one img is 8 KiB)


# ------------------------------------------------------------------ contents
def img(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((32, 64)).astype(np.float32)


def lbl(seed: int) -> np.ndarray:
    return np.array(seed, dtype=np.int64)


def net(seed: int) -> collections.OrderedDict[str, Any]:
    gen = torch.Generator().manual_seed(seed)
    return collections.OrderedDict(w=torch.randn(8, 8, generator=gen), b=torch.randn(8, generator=gen))


def same(kind: str, got: Any, content: Any) -> bool:
    if kind == "tag":
        return type(got) is type(content) and got == content
    if kind == "img":
        return got.dtype == np.float32 and np.array_equal(got, img(content))
    if kind == "lbl":
        return got.dtype == np.int64 and np.array_equal(got, lbl(content))
    want = net(content)
    return list(got) == list(want) and all(torch.equal(got[k], want[k]) for k in want)


def merged(*states: State) -> State:
    """The merge driver's result when every key has one writer: the later write wins."""
    out: State = {}
    for state in states:
        for key, value in state.items():
            if key not in out or value[0] > out[key][0]:
                out[key] = value
    return out


def contents(state: State) -> dict[Key, Any]:
    return {k: v[1] for k, v in state.items()}


# ------------------------------------------------------------------ processes
def git(*args: str, cwd: Path, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(("git", *args), cwd=cwd, capture_output=True, text=True, check=False)
    if check and proc.returncode != 0:
        raise AssertionError(
            f"git {' '.join(args)} in {cwd.name}: {proc.returncode}\n{proc.stdout}{proc.stderr}"
        )
    return proc


def stock_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "stockroom", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        env=os.environ.copy(),
    )


def ok(proc: subprocess.CompletedProcess[str], what: str) -> str:
    assert proc.returncode == 0, f"{what}: exit {proc.returncode}\n{proc.stdout}{proc.stderr}"
    assert "Traceback" not in proc.stderr, f"{what}:\n{proc.stderr}"
    return proc.stdout + proc.stderr


def data_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in (path / ".hangar" / "data").rglob("*") if p.is_file())


def digest_of(path: Path, rev: str | None = None) -> str:
    if rev is None:
        text = (path / "head.stock").read_text(encoding="utf-8")
    else:
        text = git("show", f"{rev}:head.stock", cwd=path).stdout
    return text.strip().splitlines()[0] if text.strip() else ""


@dataclass
class Clone:
    name: str
    path: Path
    kind: str  # full, lazy or partial
    staged: State = field(default_factory=dict)
    must_read: set[tuple[Key, int]] = field(default_factory=set)  # in a partial clone: what always reads
    mirror: bool = False
    notes: int = 0


def write(stock: stockroom.StockRoom, key: Key, content: Any) -> None:
    kind, name = key
    if kind == "tag":
        stock.tag[name] = content
    elif kind == "img":
        stock.data["img"][name] = img(content)
    elif kind == "lbl":
        stock.data["lbl"][name] = lbl(content)
    else:
        stock.model[name] = net(content)


# ------------------------------------------------------------------ the machine
class TeamModel(RuleBasedStateMachine):
    """Clones A and B (B made by a full `stock pull`), and a third made by a rule."""

    root: Path  # set by the test; every run copies root/template to root/run
    template: dict[str, Any]

    def __init__(self) -> None:
        super().__init__()
        self.run_dir = self.root / "run"
        if self.run_dir.exists():
            shutil.rmtree(self.run_dir)
        shutil.copytree(self.root / "template", self.run_dir, symlinks=True)
        tpl = self.template
        self.states: dict[str, State] = {d: dict(s) for d, s in tpl["states"].items()}
        self.version = tpl["version"]
        self.clones = [Clone(n, self.run_dir / n, "full") for n in ("A", "B")]
        self.bare = self.run_dir / "code.git"
        self.remote = self.run_dir / "stock-remote"
        self.mirror = self.run_dir / "mirror"

    # -------------------------------------------------------- helpers
    def pick(self, i: int) -> Clone:
        return self.clones[i % len(self.clones)]

    def branch(self, c: Clone) -> str:
        return git("branch", "--show-current", cwd=c.path).stdout.strip()

    def clean(self, c: Clone) -> bool:
        """Nothing staged in the stock and nothing uncommitted in git."""
        if c.staged:
            return False
        return git("status", "--porcelain", cwd=c.path).stdout.strip() == ""

    def on_origin(self, branch: str) -> bool:
        return (
            git("rev-parse", "-q", "--verify", f"refs/heads/{branch}", cwd=self.bare, check=False).returncode
            == 0
        )

    def register(self, digest: str, state: State, how: str) -> None:
        if digest in self.states:
            assert contents(self.states[digest]) == contents(state), f"{how}: {digest} holds other values"
        else:
            self.states[digest] = state

    def next_version(self) -> int:
        self.version += 1
        return self.version

    def lazy_watch(self, c: Clone) -> int:
        return data_bytes(c.path) if c.kind == "lazy" else 0

    def lazy_check(self, c: Clone, before: int, what: str) -> None:
        if c.kind == "lazy":
            grown = data_bytes(c.path) - before
            assert grown < LAZY_SLACK, (
                f"lazy clone {c.name}: {what} downloaded {grown} bytes of data, not records only"
            )

    # -------------------------------------------------------- writes and commits
    @rule(
        i=st.integers(0, 2),
        writes=st.lists(
            st.tuples(
                st.sampled_from(["tag", "img", "lbl", "net"]),
                st.integers(0, 1),
                st.integers(0, POOL),  # POOL: fresh content (for tags: a pooled value)
            ),
            min_size=1,
            max_size=3,
        ),
    )
    def write_values(self, i: int, writes: list[tuple[str, int, int]]) -> None:
        c = self.pick(i)
        branch = self.branch(c)
        with stockroom.StockRoom(c.path) as stock:
            for kind, slot, choice in writes:
                version = self.next_version()
                if kind == "tag":
                    name, content = f"{c.name}_{branch}_t{slot}", TAG_POOL[choice % len(TAG_POOL)]
                else:
                    name = f"{c.name}_{branch}_{'net' if kind == 'net' else slot}"
                    content = choice if choice < POOL else 1000 + version
                write(stock, (kind, name), content)
                c.staged[(kind, name)] = (version, content)

    @precondition(lambda self: any(c.staged for c in self.clones))
    @rule(i=st.integers(0, 2))
    def stock_commit(self, i: int) -> None:
        c = self.pick(i)
        if not c.staged:
            c = next(c for c in self.clones if c.staged)
        old = digest_of(c.path)
        with stockroom.StockRoom(c.path) as stock:
            digest = stock.commit(f"{c.name} stock commit")
        self.register(digest, {**self.states[old], **c.staged}, "stock.commit")
        c.must_read |= {(k, v[0]) for k, v in c.staged.items()}
        c.staged = {}

    @rule(i=st.integers(0, 2))
    def git_commit(self, i: int) -> None:
        c = self.pick(i)
        c.notes += 1
        with open(c.path / f"notes-{c.name}.txt", "a", encoding="utf-8") as fh:
            fh.write(f"note {c.notes}\n")
        git("add", "-A", cwd=c.path)
        proc = git("commit", "-q", "-m", f"{c.name} note {c.notes}", cwd=c.path, check=False)
        if c.staged:  # pre-commit refuses staged stock writes, naming the command
            assert proc.returncode != 0 and "stock commit" in proc.stderr, proc.stderr
            git("reset", "-q", cwd=c.path)
        else:
            ok(proc, f"git commit in {c.name}")

    # -------------------------------------------------------- sharing
    @rule(i=st.integers(0, 2))
    def stock_push(self, i: int) -> None:
        c = self.pick(i)
        proc = stock_cli("push", cwd=c.path)
        if c.kind == "partial":
            assert "Traceback" not in proc.stderr, proc.stderr
        else:
            ok(proc, f"stock push in {c.name}")

    @rule(i=st.integers(0, 2))
    def git_push(self, i: int) -> None:
        c = self.pick(i)
        branch = self.branch(c)
        proc = git("push", "-q", "-u", "origin", branch, cwd=c.path, check=False)
        if proc.returncode != 0 and c.kind != "partial":
            # Only git's own refusal (the origin moved on) is expected; never the pre-push hook's.
            # (The pre-push hook may have pushed the stock first and said so.)
            assert "rejected" in proc.stderr and "push refused" not in proc.stderr, proc.stderr
        assert "Traceback" not in proc.stderr, proc.stderr

    @rule(i=st.integers(0, 2), how=st.sampled_from(["--no-rebase", "--rebase"]))
    def git_pull(self, i: int, how: str) -> None:
        c = self.pick(i)
        branch = self.branch(c)
        if not self.clean(c) or not self.on_origin(branch):
            return
        old = git("rev-parse", "HEAD", cwd=c.path).stdout.strip()
        before = self.lazy_watch(c)
        proc = git("pull", "-q", how, "origin", branch, cwd=c.path, check=False)
        ok(proc, f"git pull {how} in {c.name}")
        self.lazy_check(c, before, f"git pull {how}")
        new = git("rev-parse", "HEAD", cwd=c.path).stdout.strip()
        onto = git("rev-parse", f"origin/{branch}", cwd=c.path).stdout.strip()
        if how == "--rebase":
            base = git("merge-base", old, onto, cwd=c.path).stdout.strip()
            mine = git("rev-list", "--reverse", "--no-merges", f"{base}..{old}", cwd=c.path).stdout.split()
            replayed = git("rev-list", "--reverse", f"{onto}..{new}", cwd=c.path).stdout.split()
            upstream = self.states[digest_of(c.path, onto)]
            # The replayed commits pair with the originals from the tip down (one git drops,
            # such as a replay with nothing left to change, shortens the front only).
            for orig, now in zip(reversed(mine), reversed(replayed), strict=False):
                self.register(
                    digest_of(c.path, now), merged(upstream, self.states[digest_of(c.path, orig)]), "rebase"
                )
            if new != onto and digest_of(c.path, new) not in self.states:
                self.register(
                    digest_of(c.path, new), merged(upstream, self.states[digest_of(c.path, old)]), "rebase"
                )
        else:
            parents = git("rev-list", "--parents", "-n", "1", new, cwd=c.path).stdout.split()[1:]
            if len(parents) == 2:
                sides = [self.states[digest_of(c.path, p)] for p in parents]
                self.register(digest_of(c.path, new), merged(*sides), "merge")

    @rule(
        i=st.integers(0, 2),
        j=st.integers(0, 2),
        choice=st.integers(0, len(TAG_POOL) - 1),
        how=st.sampled_from(["--no-rebase", "--rebase"]),
    )
    def teammate_round(self, i: int, j: int, choice: int, how: str) -> None:
        """The round a team makes all day, in one step so that short runs reach
        it: one clone commits a tag and publishes (stock + git push), another
        commits its own stock, then `git pull`s, merging the two stocks."""
        a, b = self.pick(i), self.pick(j)
        if a is b or a.kind == "partial" or b.kind == "partial" or self.branch(a) != self.branch(b):
            return
        for c in (a, b):
            branch = self.branch(c)
            version = self.next_version()
            key = ("tag", f"{c.name}_{branch}_r")
            # A pooled value (often one an older commit holds) unless it is the current one.
            current = self.states[digest_of(c.path)].get(key, (0, None))[1]
            content = TAG_POOL[choice] if TAG_POOL[choice] != current else 1000 + version
            with stockroom.StockRoom(c.path) as stock:
                write(stock, key, content)
            c.staged[key] = (version, content)
            self.stock_commit(self.clones.index(c))
            self.git_commit(self.clones.index(c))
        a_push = git("push", "-q", "-u", "origin", self.branch(a), cwd=a.path, check=False)
        if a_push.returncode != 0:  # the origin moved on: git's refusal, after the hook pushed the stock
            assert "rejected" in a_push.stderr and "push refused" not in a_push.stderr, a_push.stderr
            return
        self.git_pull(self.clones.index(b), how)

    @rule(i=st.integers(0, 2))
    def stock_pull(self, i: int) -> None:
        c = self.pick(i)
        if c.staged:
            return
        ok(stock_cli("pull", cwd=c.path), f"stock pull in {c.name}")
        if c.kind == "partial":  # now the head's commit is here whole
            c.must_read |= {(k, v[0]) for k, v in self.states[digest_of(c.path)].items()}

    @rule(i=st.integers(0, 2), what=st.sampled_from(["local", "origin/main", "origin/exp"]))
    def stock_fetch(self, i: int, what: str) -> None:
        c = self.pick(i)
        before = self.lazy_watch(c)
        if what == "local":
            ok(stock_cli("fetch", cwd=c.path), f"stock fetch in {c.name}")
        else:
            git("fetch", "-q", "origin", cwd=c.path)
            if git("rev-parse", "-q", "--verify", what, cwd=c.path, check=False).returncode != 0:
                return
            ok(stock_cli("fetch", "origin", what, cwd=c.path), f"stock fetch origin {what} in {c.name}")
        self.lazy_check(c, before, f"stock fetch {what}")

    @rule(i=st.integers(0, 2), branch=st.sampled_from(BRANCHES))
    def git_switch(self, i: int, branch: str) -> None:
        c = self.pick(i)
        if branch == self.branch(c) or not self.clean(c):
            return
        git("fetch", "-q", "origin", cwd=c.path)
        before = self.lazy_watch(c)
        exists = (
            git("rev-parse", "-q", "--verify", f"refs/heads/{branch}", cwd=c.path, check=False).returncode
            == 0
        )
        if exists or self.on_origin(branch):
            ok(git("switch", "-q", branch, cwd=c.path, check=False), f"git switch {branch} in {c.name}")
        else:
            ok(
                git("switch", "-q", "-c", branch, cwd=c.path, check=False),
                f"git switch -c {branch} in {c.name}",
            )
        self.lazy_check(c, before, f"git switch {branch}")

    @rule(i=st.integers(0, 2))
    def push_to_mirror(self, i: int) -> None:
        """Anything readable can be shared: a push to a new, empty remote."""
        c = self.pick(i)
        if not c.mirror:
            self.mirror.mkdir(exist_ok=True)
            ok(stock_cli("remote", "add", "mirror", str(self.mirror), "--local", cwd=c.path), "remote add")
            c.mirror = True
        proc = stock_cli("push", "mirror", cwd=c.path)
        if c.kind == "partial":
            assert "Traceback" not in proc.stderr, proc.stderr
        else:
            ok(proc, f"stock push mirror in {c.name}")

    @precondition(lambda self: len(self.clones) < 3)
    @rule(how=st.sampled_from(["full", "lazy", "column img", "column lbl"]))
    def fresh_clone(self, how: str) -> None:
        path = self.run_dir / "C"
        git("clone", "-q", str(self.bare), str(path), cwd=self.run_dir)
        args = {"full": [], "lazy": ["--lazy"]}.get(how, ["--column", how.split()[-1]])
        ok(stock_cli("pull", *args, cwd=path), f"stock pull {' '.join(args)} in a fresh clone")
        c = Clone("C", path, how if how in ("full", "lazy") else "partial")
        if c.kind == "partial":  # what the pull was told to fetch reads
            column = how.split()[-1]
            c.must_read = {(k, v[0]) for k, v in self.states[digest_of(path)].items() if k[0] == column}
        self.clones.append(c)

    @rule(i=st.integers(0, 2))
    def cli_reads(self, i: int) -> None:
        """`stock status`, `stock log --tags`, `stock diff HEAD~1 HEAD` on whatever is there."""
        c = self.pick(i)
        out = stock_cli("status", cwd=c.path)
        if c.kind != "partial":
            assert "not fetched" not in ok(out, f"stock status in {c.name}")
        runs = [("log", "--tags")]
        if git("rev-parse", "-q", "--verify", "HEAD~1", cwd=c.path, check=False).returncode == 0:
            runs.append(("diff", "HEAD~1", "HEAD"))
        for args in runs:
            proc = stock_cli(*args, cwd=c.path)
            assert "Traceback" not in proc.stderr, (args, proc.stderr)
            if c.kind == "partial" or (
                proc.returncode == 1 and any(m in proc.stderr for m in HISTORY_NOT_PULLED)
            ):
                # Known, reported with this test: a full `stock pull` fetches the data of the
                # head's commit only, so history (log, diff) fails on older commits; merged
                # commits are checked by the reads of every step instead.
                continue
            out = ok(proc, f"stock {' '.join(args)} in {c.name}")
            if args[0] == "log":  # history rows may be "(not fetched)"; HEAD's, written or pulled here, not
                rows = out.splitlines()[1:]
                assert rows and "(not fetched)" not in rows[0], (args, out)
            else:
                assert "not fetched" not in out, (args, out)

    # -------------------------------------------------------- the check
    @invariant()
    def every_value_reads_as_modelled(self) -> None:
        for c in self.clones:
            digest = digest_of(c.path)
            assert digest in self.states, f"{c.name}: head.stock names {digest}, which no step made"
            with stockroom.StockRoom(c.path) as stock:
                self.check_view(
                    c, stock, self.states[digest], "head"
                )  # committed only: staged writes stay private
                current = self.branch(c)
                for branch in git("branch", "--format=%(refname:short)", cwd=c.path).stdout.split():
                    if branch != current:
                        view = stock.at(branch)
                        self.check_view(c, view, self.states[digest_of(c.path, branch)], branch)

    def check_view(self, c: Clone, stock: Any, expected: State, where: str) -> None:
        place = f"clone {c.name} ({c.kind}), {where}"
        storages = {"tag": stock.tag, "img": stock.data["img"], "lbl": stock.data["lbl"], "net": stock.model}
        for kind, storage in storages.items():
            want = {name: v for (k, name), v in expected.items() if k == kind}
            if c.kind == "partial":
                try:
                    set(storage.keys())
                except stockroom.StockroomError as err:  # tag keys are read with their values
                    assert "stock pull" in str(err), f"{place}: {kind} keys: {err}"
                    continue
            assert set(storage.keys()) == set(want), (
                f"{place}: {kind} keys {sorted(storage.keys())} != {sorted(want)}"
            )
        if c.kind != "partial":
            tags = dict(stock.tag)  # one read of them all, as a user does
            assert {n: tags[n] for n in tags} == {n: v[1] for (k, n), v in expected.items() if k == "tag"}, (
                place
            )
        for (kind, name), (version, content) in sorted(expected.items()):
            try:
                got = storages[kind][name]
            except stockroom.StockroomError as err:
                if (
                    c.kind == "partial"
                    and ((kind, name), version) not in c.must_read
                    and "stock pull" in str(err)
                ):
                    continue  # left out by the partial pull, and the error names the fix
                raise AssertionError(
                    f"{place}: {kind} {name!r} (written as version {version}): {err}"
                ) from err
            assert same(kind, got, content), (
                f"{place}: {kind} {name!r} reads {got!r}, expected content {content!r}"
            )


# ------------------------------------------------------------------ setup
def build_template(root: Path) -> dict[str, Any]:
    """Alice (A) with two stock commits pushed, and Bob (B) made by `git clone` + `stock pull`."""
    tpl = root / "template"
    (tpl / "stock-remote").mkdir(parents=True)
    bare = tpl / "code.git"
    git("init", "-q", "--bare", str(bare), cwd=tpl)
    alice = tpl / "A"
    alice.mkdir()
    git("init", "-q", cwd=alice)
    stockroom.init_repo(path=alice)
    ok(stock_cli("remote", "add", "origin", str(tpl / "stock-remote"), cwd=alice), "remote add")
    states: dict[str, State] = {}
    version = 0
    state: State = {}
    # Older contents that the head no longer holds: what a later write may repeat.
    for n, values in enumerate(
        (
            {
                ("tag", "A_main_t0"): 1,
                ("tag", "A_main_t1"): "x",
                ("img", "A_main_0"): 0,
                ("img", "A_main_1"): 1,
                ("lbl", "A_main_0"): 0,
                ("lbl", "A_main_1"): 1,
                ("net", "A_main_net"): 0,
            },
            {
                ("tag", "A_main_t0"): 2,
                ("tag", "A_main_t1"): "y",
                ("img", "A_main_0"): 2,
                ("lbl", "A_main_0"): 2,
                ("net", "A_main_net"): 1,
            },
        )
    ):
        with stockroom.StockRoom(alice) as stock:
            for key, content in values.items():
                write(stock, key, content)
                version += 1
                state = {**state, key: (version, content)}
            digest = stock.commit("alice")
        states[digest] = state
        git("add", "-A", cwd=alice)
        git("commit", "-q", "-m", "alice", cwd=alice)
        if n == 0:
            git("remote", "add", "origin", str(bare), cwd=alice)
        git("push", "-q", "-u", "origin", "main", cwd=alice)  # pre-push uploads the stock
    git("clone", "-q", str(bare), str(tpl / "B"), cwd=tpl)
    ok(stock_cli("pull", cwd=tpl / "B"), "stock pull in B")
    return {"states": states, "version": version}


# The --slow run (and shrinking a failure) takes far longer than the suite's default 900 s.
@pytest.mark.timeout(3 * 3600)
def test_team_model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> None:
    monkeypatch.setenv("GIT_MERGE_AUTOEDIT", "no")
    monkeypatch.chdir(tmp_path)
    slow = request.config.getoption("--slow")
    TeamModel.root = tmp_path
    TeamModel.template = build_template(tmp_path)
    if slow:
        run = settings(max_examples=30, stateful_step_count=35, derandomize=False)
    else:
        run = settings(max_examples=4, stateful_step_count=18, derandomize=True)
    run_state_machine_as_test(
        TeamModel,
        settings=settings(
            run,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
            print_blob=True,
        ),
    )
