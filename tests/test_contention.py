"""Contention: 4 writer and 4 reader processes on one stock repository.

For a few seconds, writers commit (inside ``optimize()``, holding the writer
for write and commit) or stage single samples (taking the writer per
write), with a short lock timeout; readers list and read what is
committed. Then:

* every process finished (hard timeouts: no deadlock);
* every write that returned is in the store after a final commit, bit for
  bit, and every commit that returned is in the history;
* the only failures are ``StockroomError`` naming the holder of the writer;
* every value a reader saw was exactly what a writer wrote (no torn or
  corrupt read), and readers never failed.

This file, run as a script, is the writer/reader process.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

HERE = Path(__file__).resolve()
WRITERS = 4
READERS = 4
SECONDS = 4.0
START_TIMEOUT = 120.0  # for the processes to import stockroom on a loaded machine


def sample(key: str) -> np.ndarray:
    seed = int.from_bytes(key.encode(), "little") % (2**32)
    return np.random.default_rng(seed).standard_normal((16, 16)).astype(np.float32)


def tag_value(key: str) -> str:
    return f"value of {key}"


def wait_for_go(go: Path, out: str) -> None:
    # Pay the imports (hangar is imported lazily) before the clock starts.
    import stockroom.storages.data  # noqa: F401
    import stockroom.storages.tag  # noqa: F401
    import stockroom.store  # noqa: F401

    Path(out + ".ready").touch()
    deadline = time.monotonic() + START_TIMEOUT
    while not go.exists():
        if time.monotonic() > deadline:
            raise SystemExit("never told to start")
        time.sleep(0.01)


def writer(root: str, ident: str, go: str, out: str) -> None:
    import stockroom
    from stockroom import StockroomError

    result: dict[str, Any] = {"staged": [], "committed": [], "tags": [], "commits": [], "refused": [], "bad": []}
    wait_for_go(Path(go), out)
    end = time.monotonic() + SECONDS
    pause = np.random.default_rng(int(ident))
    n = 0
    while time.monotonic() < end:
        n += 1
        key = f"w{ident}-{n}"
        try:
            with stockroom.StockRoom(root, lock_timeout=0.5) as stock:
                if n % 3:
                    with stock.optimize():
                        stock.data["c"][key] = sample(key)
                        stock.tag[key] = tag_value(key)
                        digest = stock.commit(f"writer {ident} #{n}")
                    result["committed"].append(key)
                    result["tags"].append(key)
                    result["commits"].append(digest)
                else:
                    stock.data["c"][key] = sample(key)
                    result["staged"].append(key)
        except StockroomError as exc:
            result["refused"].append(str(exc))
        except Exception as exc:  # noqa: BLE001 - every other failure is a finding
            result["bad"].append(f"{type(exc).__name__}: {exc}")
        # Other work between writes (the lock is not fair: a writer that
        # re-takes it at once can starve the others, which poll).
        time.sleep(pause.uniform(0.02, 0.2))
    Path(out).write_text(json.dumps(result))


def reader(root: str, ident: str, go: str, out: str) -> None:
    import stockroom

    result: dict[str, Any] = {"reads": 0, "heads": [], "bad": []}
    wait_for_go(Path(go), out)
    end = time.monotonic() + SECONDS
    rng = np.random.default_rng(int(ident))
    with stockroom.StockRoom(root) as stock:  # long-lived, like a data loader
        while time.monotonic() < end:
            try:
                head = stock.head
                if head and head not in result["heads"]:
                    result["heads"].append(head)
                keys = list(stock.data["c"]) if "c" in stock.data else []
                for key in rng.permutation(keys)[:10] if keys else []:
                    got = stock.data["c"][str(key)]
                    result["reads"] += 1
                    if got.dtype != np.float32 or got.tobytes() != sample(str(key)).tobytes():
                        result["bad"].append(f"sample {key} read back wrong")
                for key in list(stock.tag)[:5]:
                    result["reads"] += 1
                    if stock.tag[key] != tag_value(key):
                        result["bad"].append(f"tag {key} read back wrong")
            except Exception as exc:  # noqa: BLE001 - readers must never fail
                result["bad"].append(f"{type(exc).__name__}: {exc}")
    Path(out).write_text(json.dumps(result))


def test_four_writers_four_readers(stock_repo: Path, tmp_path: Path) -> None:
    import stockroom

    with stockroom.StockRoom() as stock:
        stock.data["c"]["seed"] = sample("seed")
        stock.tag["seed"] = tag_value("seed")
        stock.commit("seed")
    go = tmp_path / "go"
    env = {k: v for k, v in os.environ.items() if k != "STOCKROOM_LOCK_TIMEOUT"}
    procs = []
    for role, count in (("writer", WRITERS), ("reader", READERS)):
        for i in range(count):
            out = tmp_path / f"{role}{i}.json"
            proc = subprocess.Popen(
                (sys.executable, str(HERE), role, str(stock_repo), str(i), str(go), str(out)),
                env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            )
            procs.append((role, out, proc))
    deadline = time.monotonic() + START_TIMEOUT
    while not all(Path(str(out) + ".ready").exists() for _, out, _ in procs):
        dead = [p.stderr.read() for _, _, p in procs if p.poll() is not None and p.stderr]
        assert not dead, dead
        assert time.monotonic() < deadline, "processes did not start"
        time.sleep(0.05)
    go.touch()
    finish_by = time.monotonic() + SECONDS + 60.0
    results: dict[str, list[dict[str, Any]]] = {"writer": [], "reader": []}
    try:
        for role, out, proc in procs:
            _, err = proc.communicate(timeout=max(1.0, finish_by - time.monotonic()))
            assert proc.returncode == 0, f"{role} failed: {err[-3000:]}"
            results[role].append(json.loads(out.read_text()))
    except subprocess.TimeoutExpired:
        for _, _, proc in procs:
            proc.kill()
        pytest.fail("a writer or reader hung: deadlock")

    writers, readers = results["writer"], results["reader"]
    for w in writers:
        assert not w["bad"], w["bad"]
        for message in w["refused"]:
            assert "held by pid" in message and "lock_timeout" in message, message
    committed = [k for w in writers for k in w["committed"]]
    staged = [k for w in writers for k in w["staged"]]
    assert sum(bool(w["committed"]) for w in writers) >= 2, "writers did not take turns"
    for r in readers:
        assert not r["bad"], r["bad"][:5]
    assert sum(r["reads"] for r in readers) > 0

    # Stage-only writes that nobody committed since: commit them now.
    with stockroom.StockRoom() as stock:
        if stock._store.staged_changes():
            stock.commit("left over")
    with stockroom.StockRoom() as stock:
        column = stock.data["c"]
        keys = set(column)
        for key in committed + staged + ["seed"]:
            assert key in keys, f"write {key} lost"
            assert column[key].tobytes() == sample(key).tobytes(), key
        assert keys == set(committed + staged + ["seed"])
        for key in [k for w in writers for k in w["tags"]]:
            assert stock.tag[key] == tag_value(key)
        history = {entry["digest"] for entry in stock._store.log()}
    for digest in [d for w in writers for d in w["commits"]]:
        assert digest in history, f"commit {digest} is not in the history"
    # Readers saw only commits that the writers made (or the seed).
    seen = {h for r in readers for h in r["heads"]}
    assert seen <= history
    refused = sum(len(w["refused"]) for w in writers)
    print(f"\ncontention: {len(committed)} committed, {len(staged)} staged writes, {refused} refused "
          f"(holder named), {sum(r['reads'] for r in readers)} reads, 0 lost")


if __name__ == "__main__":
    role, *rest = sys.argv[1:]
    {"writer": writer, "reader": reader}[role](*rest)
