"""Benchmark: ``stock diff`` of two model versions, and ``stock log --tags`` over many commits.

    python bench/bench_diff.py [--layers 25] [--size 1024] [--runs 5] [--commits 200]

One run, one process. A fresh git + stock repository gets two versions of a
~105 MB float32 state dict (``layers`` tensors of ``size x size``) in two
git commits; the second changes one layer. The same two state dicts are
also written with ``torch.save``.

Rows (medians of ``runs`` warm runs, contenders alternating):

* in process: ``stock diff HEAD~1 HEAD`` (the command's function, output
  captured: git lookups, records, the changed layer read piece by piece)
  against ``torch.load`` of both files and a loop that finds the changed
  layers and computes the same two numbers per changed layer;
* end to end: the ``stock`` console script against ``python -c`` doing
  that torch baseline (each pays its interpreter and imports);
* ``stock log --tags`` over ``commits`` git commits, each with its own
  stock commit and four tags, end to end: the first time (every tag value
  read from its data file) and again (values found in the digest-keyed
  cache the first run left in ``.hangar``).

Targets (issue 11): diff at most 1.0x the torch baseline; the table of
200 commits under 1 s.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

import stockroom

BASELINE = """
import sys, torch
a = torch.load(sys.argv[1], weights_only=True)
b = torch.load(sys.argv[2], weights_only=True)
out = []
for name, old in a.items():
    new = b.get(name)
    if new is None or new.shape != old.shape or new.dtype != old.dtype:
        out.append((name, None, None))
    elif not torch.equal(old, new):
        d = (new.double() - old.double())
        out.append((name, float(d.norm() / old.double().norm()), float(d.abs().max())))
print(out)
"""


def git(*args: str, cwd: Path) -> None:
    subprocess.run(("git", *args), cwd=cwd, check=True, capture_output=True)


def median_time(fn: Callable[[], Any], runs: int) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def torch_baseline(a: Path, b: Path) -> list[tuple[str, float | None, float | None]]:
    namespace: dict[str, Any] = {}
    with contextlib.redirect_stdout(io.StringIO()):
        sys.argv[1:3] = [str(a), str(b)]
        exec(compile(BASELINE, "baseline", "exec"), namespace)
    return namespace["out"]  # type: ignore[no-any-return]


def stock_diff_in_process(root: Path) -> str:
    from stockroom.commands.diff import diff

    cwd = os.getcwd()
    os.chdir(root)
    try:
        buffer = io.StringIO()
        with contextlib.redirect_stdout(buffer):
            diff("HEAD~1", "HEAD", "text", False, False)
        return buffer.getvalue()
    finally:
        os.chdir(cwd)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--layers", type=int, default=25)
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--commits", type=int, default=200)
    args = parser.parse_args()
    stock_script = shutil.which("stock", path=str(Path(sys.executable).parent)) or "stock"

    with tempfile.TemporaryDirectory(prefix="bench-diff-") as tmp:
        where = Path(tmp)
        root = where / "repo"
        root.mkdir()
        git("init", "-q", cwd=root)
        git("config", "user.name", "bench", cwd=root)
        git("config", "user.email", "bench@example.com", cwd=root)
        stockroom.init_repo(path=root, install_hooks=False)
        gen = torch.Generator().manual_seed(0)
        state = {
            f"layer{i}.weight": torch.randn(args.size, args.size, generator=gen) for i in range(args.layers)
        }
        with stockroom.StockRoom(root) as stock:
            for version in (1, 2):
                if version == 2:
                    state = dict(state)
                    state["layer3.weight"] = state["layer3.weight"] + 0.01
                stock.model["net"] = state
                stock.commit(f"model v{version}")
                torch.save(state, where / f"v{version}.pt")
                git("add", "-A", cwd=root)
                git("commit", "-q", "-m", f"model v{version}", cwd=root)
        mb = sum(t.numel() * t.element_size() for t in state.values()) / 1e6
        a, b = where / "v1.pt", where / "v2.pt"

        found = stock_diff_in_process(root)  # warm-up, and a check that it sees the layer
        assert "layer3.weight" in found and "changed" in found, found
        base = torch_baseline(a, b)
        assert [name for name, *_ in base] == ["layer3.weight"], base
        ours_in, base_in = [], []
        for _ in range(args.runs):
            ours_in.append(median_time(lambda: stock_diff_in_process(root), 1))
            base_in.append(median_time(lambda: torch_baseline(a, b), 1))

        # Peak memory the diff allocates (numpy and bytes objects, which
        # tracemalloc sees): far below one model, let alone two.
        tracemalloc.start()
        stock_diff_in_process(root)
        peak_mb = tracemalloc.get_traced_memory()[1] / 1e6
        tracemalloc.stop()

        def cli() -> None:
            subprocess.run(
                (stock_script, "diff", "HEAD~1", "HEAD"), cwd=root, check=True, capture_output=True
            )

        def cli_base() -> None:
            subprocess.run((sys.executable, "-c", BASELINE, str(a), str(b)), check=True, capture_output=True)

        cli()
        cli_base()
        ours_cli, base_cli = [], []
        for _ in range(args.runs):
            ours_cli.append(median_time(cli, 1))
            base_cli.append(median_time(cli_base, 1))

        # ---------------------------------------------------------- log --tags
        table = where / "table"
        table.mkdir()
        git("init", "-q", cwd=table)
        git("config", "user.name", "bench", cwd=table)
        git("config", "user.email", "bench@example.com", cwd=table)
        stockroom.init_repo(path=table, install_hooks=False)
        with stockroom.StockRoom(table) as stock:
            for i in range(args.commits):
                stock.tag.update(
                    {"lr": 0.1 / (i + 1), "acc": i / args.commits, "run": f"run-{i}", "epochs": i}
                )
                stock.commit(f"run {i}")
                git("add", "head.stock", cwd=table)
                git("commit", "-q", "-m", f"run {i}", cwd=table)

        def log_tags() -> None:
            subprocess.run(
                (stock_script, "log", "--tags", "-n", str(args.commits)),
                cwd=table,
                check=True,
                capture_output=True,
            )

        cache = table / ".hangar" / "stockroom-text-cache.json"

        def log_tags_cold() -> None:
            cache.unlink(missing_ok=True)  # as on the first table after these commits
            log_tags()

        log_tags()
        log_cold = median_time(log_tags_cold, args.runs)
        log_tags()
        log_warm = median_time(log_tags, args.runs)

    rows = [
        (f"diff in process ({mb:.0f} MB model, 1 of {args.layers} layers changed)", ours_in, base_in),
        ("diff end to end (console script vs python -c)", ours_cli, base_cli),
    ]
    print(f"{'measurement':<62} {'stockroom':>10} {'torch':>10} {'ratio':>7}")
    for label, ours, theirs in rows:
        o, t = statistics.median(ours), statistics.median(theirs)
        print(f"{label:<62} {o * 1e3:>8.1f}ms {t * 1e3:>8.1f}ms {o / t:>6.2f}x")
    print(
        f"{f'stock log --tags, {args.commits} commits, first time (end to end)':<62} {log_cold * 1e3:>8.1f}ms"
    )
    print(
        f"{f'stock log --tags, {args.commits} commits, values cached (end to end)':<62} {log_warm * 1e3:>8.1f}ms"
    )
    print(f"{'peak memory allocated by one in-process diff':<62} {peak_mb:>8.1f}MB (model: {mb:.0f} MB)")
    print(f"targets: diff <= 1.0x; log --tags < 1000 ms (medians of {args.runs} runs)")


if __name__ == "__main__":
    main()
