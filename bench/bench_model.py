"""Benchmark: stock.model against torch.save/torch.load and safetensors.

    python bench/bench_model.py [--layers 25] [--size 1024] [--runs 5]

One run, one process, one ~100 MB float32 state dict (``layers`` tensors of
``size x size``). Every timing is the median of ``runs`` warm runs (one
warm-up run first is not counted); the contenders take turns inside each
run, so they share the machine's conditions. Each run changes every
weight before saving, so no contender can skip work because the content
was seen before (a separate row shows stockroom's re-save of unchanged
weights). Loads read what that run saved.

Disk: a fresh stock repository gets 5 versions of the model, committed
one by one: the first full, each later one with one layer changed. Its
``.hangar/`` growth is set against one torch.save file and against 5.

Targets (issue 3): save and load within 1.5x of torch.save/torch.load;
5 versions at most 1.3x the disk of one full copy. Issue 21 #25: the first
read after a commit, in the process that committed, at most 1.0x torch.load.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

import stockroom

safetensors: Any
try:
    import safetensors.torch as safetensors
except ImportError:  # the baseline is optional
    safetensors = None


def disk_bytes(path: Path) -> tuple[int, int]:
    """(allocated, apparent) bytes of the file ``path`` or of everything under it."""
    if path.is_file():
        st = os.lstat(path)
        return st.st_blocks * 512, st.st_size
    allocated = apparent = 0
    for root, _, files in os.walk(path):
        for name in files:
            st = os.lstat(os.path.join(root, name))
            allocated += st.st_blocks * 512
            apparent += st.st_size
    return allocated, apparent


def new_stock(where: Path, name: str) -> stockroom.StockRoom:
    root = where / name
    root.mkdir()
    subprocess.run(["git", "init", "-q", str(root)], check=True)
    stockroom.init_repo(name="bench", email="bench@example.com", path=root, install_hooks=False)
    return stockroom.StockRoom(root)


def timed(fn: Callable[[], Any]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def hangar_alone(stock: stockroom.StockRoom, pieces: list[bytes]) -> float:
    """Seconds Hangar itself takes to store ``pieces`` as samples of a bytes column.

    The floor under any stock.model layout on Hangar's bytes backend: the
    pieces are cut and copied to ``bytes`` before the clock starts; opening
    and closing the writer checkout count, as they do for stock.model.
    """
    start = time.perf_counter()
    co = stock.get_hangar_checkout(write=True)
    try:
        if "floor" not in co.columns:
            co.add_bytes_column("floor", backend="31")
        col = co.columns["floor"]
        with col:
            for i, piece in enumerate(pieces):
                col[i] = piece
    finally:
        co.close()
    return time.perf_counter() - start


def as_pieces(state: dict[str, torch.Tensor], size: int = 2_000_000) -> list[bytes]:
    pieces: list[bytes] = []
    for t in state.values():
        raw = t.detach().reshape(-1).view(torch.uint8).numpy()
        pieces.extend(raw[i : i + size].tobytes() for i in range(0, raw.size, size))
    return pieces


def profile_save(stock: stockroom.StockRoom, state: dict[str, torch.Tensor]) -> list[str]:
    """Where one save of new weights spends its time (main thread; hashing threads show as waits)."""
    import cProfile
    import pstats

    with torch.no_grad():
        for t in state.values():
            t.add_(1.0)
    profiler = cProfile.Profile()
    start = time.perf_counter()
    profiler.enable()
    stock.model["m"] = state
    profiler.disable()
    wall = time.perf_counter() - start
    stats = pstats.Stats(profiler).stats  # type: ignore[attr-defined]
    groups = {
        "Hangar: blake2b content hash (typesystem data_hash_digest)": ("data_hash_digest",),
        "Hangar: LMDB write transaction commit + fsync (per sample)": ("__exit__' of 'Transaction",),
        "Hangar: LMDB put (copy into the map)": ("put' of 'Transaction",),
        "Hangar: xxh64 checksum": ("xxh64_hexdigest",),
        "stockroom: waiting for sha256 + tobytes threads": ("acquire' of '_thread.lock",),
    }
    lines = [f"\nprofile of one save of new weights: {wall:.3f} s wall"]
    accounted = 0.0
    for label, needles in groups.items():
        seconds = sum(v[2] for k, v in stats.items() if any(n in str(k) for n in needles))
        accounted += seconds
        lines.append(f"  {label:62} {seconds:7.3f} s {100 * seconds / wall:5.1f} %")
    lines.append(
        f"  {'everything else':62} {wall - accounted:7.3f} s {100 * (wall - accounted) / wall:5.1f} %"
    )
    return lines


def torch_save_fsync(state: dict[str, torch.Tensor], path: Path) -> None:
    with open(path, "wb") as handle:
        torch.save(state, handle)
        handle.flush()
        os.fsync(handle.fileno())


class Net(torch.nn.Module):
    def __init__(self, layers: int, size: int) -> None:
        super().__init__()
        self.layers = torch.nn.ModuleList(torch.nn.Linear(size, size, bias=False) for _ in range(layers))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--layers", type=int, default=25)
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument(
        "--profile", action="store_true", help="also break one save down by where it spends time"
    )
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="bench_model_"))
    try:
        run(work, args.layers, args.size, args.runs, args.profile)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def run(work: Path, layers: int, size: int, runs: int, profile: bool) -> None:
    torch.manual_seed(0)
    net = Net(layers, size)
    state = net.state_dict()
    nbytes = sum(t.numel() * t.element_size() for t in state.values())
    print(
        f"state dict: {layers} x {size}x{size} float32 = {nbytes / 1e6:.1f} MB; "
        f"median of {runs} warm runs; torch {torch.__version__}; {os.cpu_count()} CPUs\n"
    )

    stock = new_stock(work, "speed")
    floor = new_stock(work, "floor")
    pt, st = work / "w.pt", work / "w.safetensors"
    times: dict[str, list[float]] = {}

    def record(label: str, seconds: float, warm: bool) -> None:
        if warm:
            times.setdefault(label, []).append(seconds)

    target = Net(layers, size)

    def change_all() -> None:
        with torch.no_grad():
            for t in state.values():
                t.add_(1.0)  # new content: nothing can be deduplicated

    for i in range(runs + 1):
        warm = i > 0
        change_all()
        record("torch.save", timed(lambda: torch.save(state, pt)), warm)
        record("torch.save + fsync", timed(lambda: torch_save_fsync(state, pt)), warm)
        if safetensors is not None:
            record("safetensors save", timed(lambda: safetensors.save_file(state, st)), warm)
        record("Hangar alone, 2 MB bytes samples", hangar_alone(floor, as_pieces(state)), warm)
        record("stock.model[name] = sd", timed(lambda: stock.model.__setitem__("m", state)), warm)
        record("stock.commit", timed(lambda: stock.commit("new weights")), warm)
        record("stock re-save, unchanged", timed(lambda: stock.model.__setitem__("m", state)), warm)
        with torch.no_grad():
            next(iter(state.values())).add_(1.0)
        record("stock re-save, 1 layer changed", timed(lambda: stock.model.__setitem__("m", state)), warm)
        stock.commit("one layer changed")
        torch.save(state, pt)
        if safetensors is not None:
            safetensors.save_file(state, st)

        record("torch.load", timed(lambda: torch.load(pt, weights_only=True)), warm)
        if safetensors is not None:
            record("safetensors load (lazy mmap)", timed(lambda: safetensors.load_file(st)), warm)
        # The first read after a commit opens Hangar's reader checkout on it.
        record("stock.model[name], first after commit", timed(lambda: stock.model["m"]), warm)
        record("stock.model[name]", timed(lambda: stock.model["m"]), warm)
        record(
            "torch.load + load_state_dict",
            timed(lambda: target.load_state_dict(torch.load(pt, weights_only=True))),
            warm,
        )
        record("stock.model.load_weights", timed(lambda: stock.model.load_weights("m", target)), warm)
        change_all()

        def save_weights_and_commit() -> None:
            stock.model.save_weights("m", net)
            stock.commit("save_weights")

        record("stock.model.save_weights + commit", timed(save_weights_and_commit), warm)
    got = stock.model["m"]
    assert all(torch.equal(got[k], state[k]) for k in state), "round trip is not exact"
    profile_lines = profile_save(stock, state) if profile else []
    stock.close()
    floor.close()

    med = {label: statistics.median(values) for label, values in times.items()}
    med["stock save + commit"] = statistics.median(
        a + b for a, b in zip(times["stock.model[name] = sd"], times["stock.commit"], strict=True)
    )
    rows = [
        ("stock.model[name] = sd", "torch.save"),
        ("stock save + commit", "torch.save"),
        ("stock.model[name] = sd", "torch.save + fsync"),
        ("stock save + commit", "torch.save + fsync"),
        ("Hangar alone, 2 MB bytes samples", "torch.save"),
        ("stock.model[name] = sd", "Hangar alone, 2 MB bytes samples"),
        ("stock.model.save_weights + commit", "torch.save"),
        ("stock.model.save_weights + commit", "torch.save + fsync"),
        ("stock re-save, unchanged", "torch.save"),
        ("stock re-save, 1 layer changed", "torch.save"),
        ("safetensors save", "torch.save"),
        ("stock.model[name]", "torch.load"),
        ("stock.model[name], first after commit", "torch.load"),
        ("stock.model.load_weights", "torch.load + load_state_dict"),
        ("safetensors load (lazy mmap)", "torch.load"),
    ]
    print(f"{'operation':38} {'median s':>9} {'baseline':30} {'median s':>9} {'ratio':>6}")
    for label, base in rows:
        if label in med and base in med:
            print(f"{label:38} {med[label]:9.3f} {base:30} {med[base]:9.3f} {med[label] / med[base]:6.2f}")

    first, load = med["stock.model[name], first after commit"], med["torch.load"]
    print(
        f"\nfirst stock.model[name] after stock.commit (same process) vs torch.load: {first / load:.2f}x "
        f"(target <= 1.0x, issue 21 #25; later reads {med['stock.model[name]'] / load:.2f}x)"
    )

    # ------------------------------------------------------------- disk
    disk = new_stock(work, "disk")
    hangar = disk.path / ".hangar"
    before = disk_bytes(hangar)
    torch.manual_seed(1)
    versions = Net(layers, size).state_dict()
    files = []
    for v in range(5):
        if v:
            with torch.no_grad():
                list(versions.values())[v].add_(1.0)
        disk.model["m"] = versions
        disk.commit(f"version {v}")
        files.append(work / f"v{v}.pt")
        torch.save(versions, files[-1])
    after = disk_bytes(hangar)
    disk.close()
    one = disk_bytes(files[0])[0]
    five = sum(disk_bytes(f)[0] for f in files)
    grown, grown_apparent = after[0] - before[0], after[1] - before[1]
    print("\ndisk after 5 versions (1 full + 4 with one layer changed), allocated bytes:")
    print(f"{'':38} {'MB':>9} {'x one full torch.save':>22}")
    print(f"{'one torch.save file':38} {one / 1e6:9.1f} {1.0:22.2f}")
    print(f"{'5 torch.save files':38} {five / 1e6:9.1f} {five / one:22.2f}")
    print(f"{'.hangar/ growth':38} {grown / 1e6:9.1f} {grown / one:22.2f}")
    print(f"{'.hangar/ growth (apparent size)':38} {grown_apparent / 1e6:9.1f} {grown_apparent / one:22.2f}")
    print("\n".join(profile_lines))


if __name__ == "__main__":
    main()
