"""Benchmark of ``stock ui`` (SPEC 11, issue 25) in a real headless Chromium. One run.

    PYTHONPATH=. python bench/bench_ui.py [--commits 1000] [--tags 20]

Measures:
  * first paint of Experiments with 1,000 commits x 20 tags (target < 1 s):
    from the navigation to the token URL until the table is painted;
  * Curves for 100 runs x 10,000 steps (target < 1 s): 100 real training
    runs (``stock.run``, 10,000 ``run.log`` steps and one checkpoint each),
    read from the runs' metric store by ``stock ui`` in its own process; from
    navigation until the chart is drawn, reading, min/max downsampling and
    transfer included;
  * ``stock ui --export`` of the 1,000 commits (target < 10 s), and of the
    100 runs (their curves included), the command's wall time;
  * the server's memory (VmHWM, peak resident set) with the 1,000 commits
    loaded and the table served (target < 200 MB).

The 1,000-commit repository is built once and kept under build/bench-ui/:
one stock commit per git commit through the Python API (no hooks: they
would only do the same), the git commits written by one ``git fast-import``.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / "build" / "bench-ui"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
BRANCHES = 5


def git(*args: str, cwd: Path, data: bytes | None = None) -> str:
    return subprocess.run(
        ("git", *args), cwd=cwd, check=True, capture_output=True, input=data
    ).stdout.decode()


def build_repo(commits: int, tags: int) -> Path:
    """``commits`` git commits over BRANCHES branches, each recording its own
    stock commit with ``tags`` numeric tags (cached by size)."""
    repo = CACHE / f"repo-{commits}x{tags}"
    if (repo / ".built").exists():
        return repo
    import stockroom

    shutil.rmtree(repo, ignore_errors=True)
    repo.mkdir(parents=True)
    git("init", "-q", "-b", "main", cwd=repo)
    git("config", "user.email", "bench@example.com", cwd=repo)
    git("config", "user.name", "bench", cwd=repo)
    cwd = os.getcwd()
    os.chdir(repo)
    try:
        stockroom.init_repo(install_hooks=False)
        git("add", "-A", cwd=repo)
        git("commit", "-qm", "stock init", cwd=repo)
        rng = np.random.default_rng(0)
        heads: list[bytes] = []
        start = time.perf_counter()
        with stockroom.StockRoom() as stock:
            for i in range(commits):
                stock.tag.update(
                    {f"t{k:02d}": float(rng.random()) for k in range(tags - 1)}
                )  # and loss: `tags` in all
                stock.tag["loss"] = float(1.0 / (1 + i // BRANCHES) + 0.01 * (i % BRANCHES))
                stock.commit(f"run {i}")
                heads.append((repo / "head.stock").read_bytes())
        print(f"  built {commits} stock commits in {time.perf_counter() - start:.1f} s", file=sys.stderr)
    finally:
        os.chdir(cwd)
    # The git side: BRANCHES branches from `main`, commit i on branch i % BRANCHES.
    base = git("rev-parse", "HEAD", cwd=repo).strip()
    stream = []
    mark = 0
    last = {b: base for b in range(BRANCHES)}
    stamp = 1_700_000_000
    for i, head in enumerate(heads):
        b = i % BRANCHES
        mark += 1
        ref = "refs/heads/main" if b == 0 else f"refs/heads/exp{b}"
        msg = f"experiment {i}".encode()
        parent = last[b]
        stream.append(
            f"commit {ref}\nmark :{mark}\ncommitter bench <bench@example.com> {stamp + i} +0000\n".encode()
            + b"data %d\n%s\n" % (len(msg), msg)
            + f"from {parent}\n".encode()
            + b"M 100644 inline head.stock\ndata %d\n%s\n" % (len(head), head)
        )
        last[b] = f":{mark}"
    git("fast-import", "--quiet", "--force", cwd=repo, data=b"".join(stream))
    git("reset", "-q", "--hard", "main", cwd=repo)
    (repo / ".built").write_text("ok")
    return repo


def build_runs(runs: int, steps: int) -> Path:
    """``runs`` training runs of ``steps`` logged steps and one checkpoint each (cached by size)."""
    repo = CACHE / f"runs-{runs}x{steps}"
    if (repo / ".built").exists():
        return repo
    import stockroom

    shutil.rmtree(repo, ignore_errors=True)
    repo.mkdir(parents=True)
    git("init", "-q", "-b", "main", cwd=repo)
    git("config", "user.email", "bench@example.com", cwd=repo)
    git("config", "user.name", "bench", cwd=repo)
    cwd = os.getcwd()
    os.chdir(repo)
    try:
        stockroom.init_repo(install_hooks=False)
        git("add", "-A", cwd=repo)
        git("commit", "-qm", "stock init", cwd=repo)
        rng = np.random.default_rng(1)
        start = time.perf_counter()
        with stockroom.StockRoom() as stock:
            for r in range(runs):
                run = stock.run(f"run{r:03d}", background=False)
                noise = 0.02 * rng.standard_normal(steps)
                for i in range(steps):
                    run.log(i, loss=float(np.exp(-i / (2000 + 30 * r)) + noise[i]))
                run.save(steps - 1, metrics={"val_loss": float(noise[-1])}, w=np.zeros(4))
                run.close()
        print(f"  built {runs} runs x {steps} steps in {time.perf_counter() - start:.1f} s", file=sys.stderr)
    finally:
        os.chdir(cwd)
    (repo / ".built").write_text("ok")
    return repo


def serve(stock_bin: str, repo: Path, env: dict[str, str]) -> tuple[subprocess.Popen[str], str, float]:
    """``stock ui`` on ``repo`` in its own process: the process, its URL, the time to the URL."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        (stock_bin, "ui", "--port", "0", "--no-browser"), cwd=repo, env=env, stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    url = re.search(r"(http://\S+)", proc.stdout.readline())
    assert url, "no URL printed"
    return proc, url.group(1), time.perf_counter() - t0


def export_time(stock_bin: str, repo: Path, env: dict[str, str]) -> tuple[float, float]:
    """Seconds for ``stock ui --export`` of ``repo`` (process start included), and MB written."""
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        subprocess.run((stock_bin, "ui", "--export", tmp), cwd=repo, env=env, check=True, capture_output=True)
        took = time.perf_counter() - start
        size = sum(f.stat().st_size for f in Path(tmp).rglob("*") if f.is_file()) / 1e6
    return took, size


def vm(pid: int, field: str) -> float:
    text = Path(f"/proc/{pid}/status").read_text()
    m = re.search(rf"^{field}:\s+(\d+) kB", text, re.M)
    return int(m.group(1)) / 1024 if m else float("nan")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--commits", type=int, default=1000)
    ap.add_argument("--tags", type=int, default=20)
    ap.add_argument("--runs", type=int, default=100)
    ap.add_argument("--steps", type=int, default=10_000)
    opts = ap.parse_args()
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    stock_bin = shutil.which("stock", path=str(Path(sys.executable).parent)) or shutil.which("stock")
    if chromium is None or stock_bin is None:
        sys.exit("bench_ui needs Debian's chromium and the stock script (scripts/env.sh installs them)")
    from playwright.sync_api import sync_playwright

    repo = build_repo(opts.commits, opts.tags)
    runs_repo = build_runs(opts.runs, opts.steps)
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    results: list[tuple[str, float, str, str]] = []

    # --- the server, in its own process, as a user runs it
    proc, url, startup = serve(stock_bin, repo, env)
    runs_proc, runs_url, _ = serve(stock_bin, runs_repo, env)
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium, args=ARGS)
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.goto(url)  # warm-up: browser start, cookie, caches
            page.wait_for_function("() => window.stockUI && window.stockUI.painted")
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            start = time.perf_counter()
            page.goto(url)
            page.wait_for_function("() => window.stockUI && window.stockUI.painted")
            wall = time.perf_counter() - start
            painted = page.evaluate("window.stockUI.painted")  # ms since this page's navigation began
            rows = page.locator("#runs tbody tr").count()
            results.append(
                (
                    "Experiments first paint",
                    painted / 1000,
                    "< 1 s",
                    f"{rows} rows x {len(page.evaluate('window.stockUI.table.tags'))} tags; wall {wall:.2f} s",
                )
            )
            rss, hwm = vm(proc.pid, "VmRSS"), vm(proc.pid, "VmHWM")
            results.append(
                (
                    "server memory (peak RSS)",
                    hwm,
                    "< 200 MB",
                    f"now {rss:.0f} MB; startup to URL {startup:.1f} s",
                )
            )

            # --- Curves: 100 real runs x 10,000 steps from the metric store
            names = ",".join(f"run{r:03d}" for r in range(opts.runs))
            curl = runs_url.replace("/?token=", f"/curves?runs={names}&metric=loss&token=")
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.goto(curl)  # warm-up (and the cookie)
            page.wait_for_function("() => window.stockUI && window.stockUI.painted")
            times = []
            for _ in range(3):
                page = browser.new_page(viewport={"width": 1400, "height": 900})
                start = time.perf_counter()
                page.goto(curl)
                page.wait_for_function("() => window.stockUI && window.stockUI.painted")
                wall = time.perf_counter() - start
                times.append((page.evaluate("window.stockUI.painted"), wall, page))
            times.sort(key=lambda t: t[0])
            painted, wall, page = times[len(times) // 2]  # the median of 3
            timing = page.evaluate("window.stockUI.timing")
            start_js = page.evaluate("window.stockUI.started")
            n = page.evaluate("window.stockUI.curves.series.length")
            pts = page.evaluate("window.stockUI.curves.x")
            logged = sum(s["points"] for s in page.evaluate("window.stockUI.curves.series"))
            results.append(
                (
                    f"Curves {opts.runs} runs x {opts.steps} steps",
                    painted / 1000,
                    "< 1 s",
                    f"median of 3 ({', '.join(f'{t[0] / 1000:.2f}' for t in times)} s); {n} curves of "
                    f"{logged:,} logged points from the metric store, {pts} points each after min/max "
                    f"downsampling; script start {start_js:.0f} ms, first data asked {timing['begin']:.0f} ms, data {timing['load']:.0f} ms, chart "
                    f"and table {timing['draw']:.0f} ms; wall {wall:.2f} s",
                )
            )
            browser.close()
    finally:
        for pr in (proc, runs_proc):
            pr.terminate()
            pr.wait(10)

    # --- export
    took, size = export_time(stock_bin, repo, env)
    results.append(
        (
            f"export of {opts.commits} commits",
            took,
            "< 10 s",
            f"{size:.1f} MB written, process start included",
        )
    )
    took, size = export_time(stock_bin, runs_repo, env)
    results.append(
        (
            f"export of {opts.runs} runs x {opts.steps} steps",
            took,
            "< 10 s",
            f"{size:.1f} MB written (their curves, checkpoints as rows), process start included",
        )
    )

    print(
        f"\nstock ui bench: {opts.commits} commits x {opts.tags} tags, {BRANCHES} branches; chromium headless\n"
    )
    print("| measure | result | target | notes |\n|---|---|---|---|")
    for name, value, target, note in results:
        unit = "MB" if "memory" in name else "s"
        print(f"| {name} | {value:.2f} {unit} | {target} | {note} |")


if __name__ == "__main__":
    main()
