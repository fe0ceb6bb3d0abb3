"""What stockroom's git hooks cost: `git commit` and a branch switch, in one run.

    python bench/bench_hooks.py [--runs 15] [--large-mb 200] [--no-framework]

Measures, on identical repositories built here in a temporary directory:

1. `git commit` (one changed code file) and `git checkout BRANCH` (a branch
   switch where the stock commit stays the same) with no hooks (the
   baseline), with stockroom's hooks installed by `stock install`, through
   the pre-commit framework running a hook that does nothing (what the
   framework itself costs), and through the framework running stockroom's
   hooks (`.pre-commit-hooks.yaml`);
2. a branch switch with stockroom's hooks on a repository holding 1 MB of
   stock data and one holding ``--large-mb`` MB, both where the stock commit
   stays the same and where it changes.

Runs are interleaved (one of each configuration per round) so that load on
the machine hits all of them alike; medians are printed with the time added
over the baseline and the ratio. The hook interpreter gets a bytecode cache
(PYTHONPYCACHEPREFIX in the temporary directory), as an installed package has.
The framework's environment is built once (not timed) under
bench/results/pre-commit, and reused by later runs of the same source.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import stockroom

PROJECT = Path(stockroom.__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results"
PROJECT_FILES = ("setup.cfg", "pyproject.toml", ".pre-commit-hooks.yaml", "README.md", "LICENSE")
FIXED_DATE = "2020-01-01T00:00:00+00:00"


def git(*args: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(("git", *args), cwd=cwd, env=env, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"git {' '.join(args)} failed in {cwd}:\n{proc.stdout}{proc.stderr}")
    return proc


def base_env(tmp: Path) -> dict[str, str]:
    """git configured in isolation (never the user's config), bytecode cached in tmp."""
    home = tmp / "home"
    home.mkdir(exist_ok=True)
    (home / ".gitconfig").write_text(
        "[user]\n\tname = Bench\n\temail = bench@example.com\n[init]\n\tdefaultBranch = main\n"
        "[advice]\n\tdetachedHead = false\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_") and k != "PYTHONDONTWRITEBYTECODE"}
    env.update(
        HOME=str(home),
        GIT_CONFIG_NOSYSTEM="1",
        GIT_CONFIG_GLOBAL=str(home / ".gitconfig"),
        PYTHONPYCACHEPREFIX=str(tmp / "pycache"),
        PRE_COMMIT_HOME=str(RESULTS / "pre-commit" / "home"),
        PIP_CACHE_DIR=str(RESULTS / "pre-commit" / "pip"),
        PRE_COMMIT_COLOR="never",
    )
    return env


def write_stock(repo: Path, megabytes: float, tag: int) -> None:
    """``megabytes`` of float32 samples (1 MB each) and one tag, committed to stock."""
    rng = np.random.default_rng(tag)
    with stockroom.StockRoom(repo) as room, room.optimize():
        for i in range(int(megabytes)):
            room.data["weights"][i] = rng.standard_normal(262_144, dtype=np.float32)
        room.tag["run"] = tag
        room.commit(f"{megabytes} MB, run {tag}")


def make_repo(path: Path, env: dict[str, str], megabytes: float, hooks: str) -> Path:
    """A stock repository with ``hooks`` ("none", "direct", "framework", "framework-no-op") and branches
    ``same`` (same stock commit as main, other code) and ``changed`` (another stock commit)."""
    path.mkdir(parents=True)
    git("init", "-q", cwd=path, env=env)
    saved = dict(os.environ)
    os.environ.update(env)  # stockroom reads git config (user.name) through git
    try:
        stockroom.init_repo(path=path, install_hooks=hooks == "direct")
        if hooks.startswith("framework"):
            use_framework(path, env, no_op=hooks == "framework-no-op")
        write_stock(path, megabytes, 1)
        (path / "train.py").write_text("print('train')\n")
        git("add", "-A", cwd=path, env=env)
        git("commit", "-q", "-m", "code and stock", cwd=path, env=env)
        git("checkout", "-q", "-b", "same", cwd=path, env=env)
        (path / "eval.py").write_text("print('eval')\n")
        git("add", "eval.py", cwd=path, env=env)
        git("commit", "-q", "-m", "eval", cwd=path, env=env)
        git("checkout", "-q", "-b", "changed", "main", cwd=path, env=env)
        with stockroom.StockRoom(path) as room:
            room.tag["run"] = 2
            room.commit("run 2")
        git("commit", "-q", "-am", "run 2", cwd=path, env=env)
        git("checkout", "-q", "main", cwd=path, env=env)
    finally:
        os.environ.clear()
        os.environ.update(saved)
    return path


def hook_repository(where: Path, env: dict[str, str]) -> str:
    """This project's installable files as a git repository (for the framework); its commit."""
    if where.exists():
        shutil.rmtree(where)
    where.mkdir(parents=True)
    shutil.copytree(PROJECT / "stockroom", where / "stockroom", ignore=shutil.ignore_patterns("__pycache__"))
    for name in PROJECT_FILES:
        if (PROJECT / name).is_file():
            shutil.copy2(PROJECT / name, where / name)
    fixed = dict(env, GIT_AUTHOR_DATE=FIXED_DATE, GIT_COMMITTER_DATE=FIXED_DATE)
    git("init", "-q", cwd=where, env=fixed)
    git("add", "-A", cwd=where, env=fixed)
    git("commit", "-q", "-m", "stockroom", cwd=where, env=fixed)
    return git("rev-parse", "HEAD", cwd=where, env=fixed).stdout.strip()


# The framework running a hook that does nothing: what the framework itself costs.
NO_OP_CONFIG = """repos:
  - repo: local
    hooks:
      - id: no-op
        name: no-op
        entry: "true"
        language: system
        always_run: true
        pass_filenames: false
        stages: [pre-commit, post-checkout]
"""


def use_framework(repo: Path, env: dict[str, str], no_op: bool = False) -> None:
    if no_op:
        (repo / ".pre-commit-config.yaml").write_text(NO_OP_CONFIG)
    else:
        source = RESULTS / "pre-commit" / "stockroom-src"
        rev = hook_repository(source, env)
        (repo / ".pre-commit-config.yaml").write_text(
            f"repos:\n  - repo: {source}\n    rev: {rev}\n    hooks:\n"
            f"      - id: stockroom-pre-commit\n      - id: stockroom-post-checkout\n"
        )
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pre_commit",
            "install",
            "--hook-type",
            "pre-commit",
            "--hook-type",
            "post-checkout",
        ],
        cwd=repo,
        env=env,
        check=True,
        capture_output=True,
    )
    if not no_op:
        print("building the pre-commit framework's environment (first time: a minute or two) ...", flush=True)
    subprocess.run([sys.executable, "-m", "pre_commit", "install-hooks"], cwd=repo, env=env, check=True)


class Op:
    """One timed git command in one repository, alternating its setup each run."""

    def __init__(self, repo: Path, env: dict[str, str], kind: str) -> None:
        self.repo, self.env, self.kind, self.n = repo, env, kind, 0
        self.times: list[float] = []
        # The switch toggles between two branches; the commit edits a file each time.
        self.branches = {"switch-same": ("same", "main"), "switch-changed": ("changed", "main")}.get(kind)

    def run(self) -> None:
        self.n += 1
        if self.kind == "commit":
            (self.repo / "train.py").write_text(f"print('train {self.n}')\n")
            git("add", "train.py", cwd=self.repo, env=self.env)
            args: tuple[str, ...] = ("commit", "-q", "-m", f"edit {self.n}")
        else:
            assert self.branches is not None
            args = ("checkout", "-q", self.branches[self.n % 2])
        start = time.perf_counter()
        git(*args, cwd=self.repo, env=self.env)
        self.times.append(time.perf_counter() - start)

    @property
    def median_ms(self) -> float:
        return statistics.median(self.times) * 1000


def interleave(ops: list[Op], runs: int, warmup: int = 2) -> None:
    for _ in range(warmup):
        for op in ops:
            op.run()
    for op in ops:
        op.times.clear()
    for i in range(runs):
        order = ops[i % len(ops) :] + ops[: i % len(ops)]
        for op in order:
            op.run()


def du(path: Path) -> int:
    """Bytes on disk under ``path`` (Hangar preallocates sparse files: sizes would mislead)."""
    return sum(f.stat().st_blocks * 512 for f in path.rglob("*") if f.is_file())


def row(label: str, base: Op, others: list[Op]) -> str:
    cells = [f"{label:<34}{base.median_ms:>9.2f}"]
    for op in others:
        cells.append(
            f"{op.median_ms:>9.2f} {op.median_ms - base.median_ms:>+8.2f} {op.median_ms / base.median_ms:>6.2f}x"
        )
    return "  ".join(cells)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=15, help="timed runs per configuration (median)")
    parser.add_argument("--large-mb", type=float, default=200, help="stock data in the large repository")
    parser.add_argument("--no-framework", action="store_true", help="skip the pre-commit framework")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="stockroom-bench-hooks-") as name:
        tmp = Path(name)
        env = base_env(tmp)
        print(f"building repositories in {tmp} ...", flush=True)
        plain = make_repo(tmp / "no-hooks", env, 1, "none")
        direct = make_repo(tmp / "direct", env, 1, "direct")
        configs = [("no hooks", plain), ("stockroom hooks", direct)]
        if not args.no_framework:
            configs.append(("framework, no-op hook", make_repo(tmp / "no-op", env, 1, "framework-no-op")))
            configs.append(("framework, stockroom", make_repo(tmp / "framework", env, 1, "framework")))
            # Drop the framework's environments of earlier sources (this run's is in use).
            subprocess.run(
                [sys.executable, "-m", "pre_commit", "gc"], env=env, check=True, capture_output=True
            )
        start = time.perf_counter()
        large = make_repo(tmp / "large", env, args.large_mb, "direct")
        print(f"wrote {args.large_mb:g} MB of stock data in {time.perf_counter() - start:.1f} s", flush=True)
        stored = {path.name: du(path / ".hangar") for path in (direct, large)}

        table: list[tuple[str, list[Op]]] = []
        for kind, label in (("commit", "git commit"), ("switch-same", "branch switch (same stock commit)")):
            ops = [Op(repo, env, kind) for _, repo in configs]
            interleave(ops, args.runs)
            table.append((label, ops))
        sizes: list[tuple[str, list[Op]]] = []
        for kind, label in (("switch-same", "same stock commit"), ("switch-changed", "stock commit changes")):
            ops = [Op(plain, env, kind), Op(direct, env, kind), Op(large, env, kind)]
            interleave(ops, args.runs)
            sizes.append((label, ops))

    print()
    print(
        f"medians of {args.runs} runs, ms; +ms and ratio against 'no hooks'  (python {sys.version.split()[0]})"
    )
    header = f"{'':<34}{'no hooks':>9}"
    for name, _ in configs[1:]:
        header += f"  {name:>26}"
    print(header)
    for label, ops in table:
        print(row(label, ops[0], ops[1:]))
    print()
    print(
        f"branch switch with stockroom hooks: 1 MB vs {args.large_mb:g} MB of stock data (baseline: no hooks, 1 MB;"
        f" .hangar holds {stored['direct'] / 1e6:.0f} MB vs {stored['large'] / 1e6:.0f} MB)"
    )
    print(f"{'':<34}{'no hooks':>9}  {'hooks, 1 MB':>26}  {f'hooks, {args.large_mb:g} MB':>26}")
    for label, ops in sizes:
        print(row(label, ops[0], ops[1:]))
        print(f"{'':<34}{'':>9}  large / small: {ops[2].median_ms / ops[1].median_ms:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
