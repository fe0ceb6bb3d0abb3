"""What `git merge` costs when both branches changed the stock, in one run.

    python bench/bench_merge.py [--runs 5] [--small 1000] [--large 10000]

Builds, in a temporary directory, a stock repository with the hooks and the
merge driver (`stock install`), then for N in (--small, --large): a branch
and main that each add N samples (float32, 16 values) to one data column and
one tag, committed with git. Times `git merge` of the branch into main (the
driver three-way merges the stock commits), reset back between runs, and,
as the baseline, `git merge` of two branches that changed only a code file
in the same repository. Prints medians and the ratio to the baseline.
The target (issue 10): the 10,000-sample merge under 5 s.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import stockroom


def git(*args: str, cwd: Path, env: dict[str, str]) -> str:
    proc = subprocess.run(("git", *args), cwd=cwd, env=env, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"git {' '.join(args)} failed in {cwd}:\n{proc.stdout}{proc.stderr}")
    return proc.stdout


def stock_commit(root: Path, env: dict[str, str], tag: str, start: int, n: int, message: str) -> None:
    rng = np.random.default_rng(start)
    with stockroom.StockRoom(root) as stock, stock.optimize():
        stock.tag[tag] = n
        column = stock.data["features"]
        for i in range(start, start + n):
            column[i] = rng.standard_normal(16).astype(np.float32)
        stock.commit(message)
    git("add", "-A", cwd=root, env=env)
    git("commit", "-q", "-m", message, cwd=root, env=env)


def build(root: Path, env: dict[str, str], n: int) -> None:
    """main and branch `side`, each with n new samples and a tag; `code-a`/`code-b` change code only."""
    root.mkdir()
    git("init", "-q", "-b", "main", cwd=root, env=env)
    stockroom.init_repo(path=root)
    stock_commit(root, env, "base", 0, 10, "base")
    for name, text in (("code-a", "a"), ("code-b", "b")):
        git("checkout", "-q", "-b", name, "main", cwd=root, env=env)
        (root / f"{name}.py").write_text(text)
        git("add", "-A", cwd=root, env=env)
        git("commit", "-q", "-m", name, cwd=root, env=env)
    git("checkout", "-q", "-b", "side", "main", cwd=root, env=env)
    stock_commit(root, env, "side", 1_000_000, n, "side")
    git("checkout", "-q", "main", cwd=root, env=env)
    stock_commit(root, env, "main", 2_000_000, n, "main")


def timed_merge(root: Path, env: dict[str, str], into: str, other: str) -> float:
    git("checkout", "-q", into, cwd=root, env=env)
    start = time.perf_counter()
    git("merge", "-q", "--no-edit", other, cwd=root, env=env)
    took = time.perf_counter() - start
    git("reset", "-q", "--hard", "HEAD~1", cwd=root, env=env)
    return took


def heads(root: Path, env: dict[str, str]) -> tuple[str, str, str]:
    """head.stock at the merge base, on main and on side."""
    base = git("merge-base", "main", "side", cwd=root, env=env).strip()
    return tuple(  # type: ignore[return-value]
        git("show", f"{rev}:head.stock", cwd=root, env=env).strip() for rev in (base, "main", "side")
    )


def timed_store_merge(root: Path, digests: tuple[str, str, str]) -> float:
    """The three-way merge of records alone, in this process (no git, no start-up)."""
    from stockroom.store.merge import merge

    start = time.perf_counter()
    result = merge(root, *digests)
    took = time.perf_counter() - start
    assert result.digest and not result.conflicts
    return took


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--small", type=int, default=1000)
    parser.add_argument("--large", type=int, default=10_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "home"
        home.mkdir()
        (home / ".gitconfig").write_text("[user]\n\tname = Bench\n\temail = bench@example.com\n")
        env = dict(
            os.environ, HOME=str(home), GIT_CONFIG_NOSYSTEM="1", GIT_CONFIG_GLOBAL=str(home / ".gitconfig")
        )
        os.environ.update(env)
        rows = []
        for n in (args.small, args.large):
            root = Path(tmp) / f"repo{n}"
            build(root, env, n)
            git("merge", "-q", "--no-edit", "side", cwd=root, env=env)
            with stockroom.StockRoom(root) as check:  # the merge holds both sides
                assert len(check.data["features"]) == 10 + 2 * n and check.tag["side"] == n
            git("reset", "-q", "--hard", "HEAD~1", cwd=root, env=env)
            base, stock, records = [], [], []
            digests = heads(root, env)
            for _ in range(args.runs):  # interleaved: load hits all alike
                base.append(timed_merge(root, env, "code-a", "code-b"))
                stock.append(timed_merge(root, env, "main", "side"))
                records.append(timed_store_merge(root, digests))
            with stockroom.StockRoom(root) as check:
                assert len(check.data["features"]) == 10 + n  # not merged yet (reset)
            rows.append((n, statistics.median(base), statistics.median(stock), statistics.median(records)))
    print(
        f"{'samples added per side':>24} | {'git merge, code only':>20} | {'git merge, stock':>16} | ratio "
        f"| {'records merge alone':>19} | share"
    )
    print("-" * 24 + "-|-" + "-" * 20 + "-|-" + "-" * 16 + "-|-------|-" + "-" * 19 + "-|------")
    for n, base_s, stock_s, rec_s in rows:
        print(
            f"{n:>24,} | {base_s:>18.3f} s | {stock_s:>14.3f} s | {stock_s / base_s:5.1f}x "
            f"| {rec_s:>17.3f} s | {rec_s / stock_s:5.0%}"
        )
    print(f"(medians of {args.runs} runs, {sys.platform}, python {sys.version.split()[0]})")


if __name__ == "__main__":
    main()
