"""stockroom._compat: each patch that lets hangar 0.5.2 run on today's stack
has a test that fails without it (a fresh interpreter with the patch turned
off) and one that shows it working, and no patch leaks into the user's
numpy, protobuf or environment (SPEC section 5)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import stockroom
from stockroom import _compat
from stockroom.errors import StockroomError

# The user's environment as SPEC section 5 means it: no variable set to help.
CLEAN_ENV = {k: v for k, v in os.environ.items() if k != "PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION"}


def python(code: str, cwd: Path, timeout: int = 180) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a fresh interpreter: import state is what the test says."""
    return subprocess.run(
        (sys.executable, "-c", textwrap.dedent(code)),
        cwd=cwd, env=CLEAN_ENV, capture_output=True, text=True, timeout=timeout,
    )


def ok(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


# ------------------------------------------------------------ protobuf pb2
def test_import_stockroom_then_hangar_works_and_stays_light(tmp_path: Path) -> None:
    """`import stockroom` arms the patches without loading them (hooks import it)."""
    code = """
        import sys
        import stockroom
        assert "stockroom._compat" not in sys.modules
        assert "numpy" not in sys.modules and "hangar" not in sys.modules
        import hangar
        from hangar.remote import hangar_service_pb2 as pb2
        assert pb2.PingReply(result="x").SerializeToString() == b"\\n\\x01x"
        print("ok")
    """
    assert ok(python(code, tmp_path)).strip() == "ok"


def test_import_hangar_fails_without_the_patch(tmp_path: Path) -> None:
    proc = python("import hangar", tmp_path)
    assert proc.returncode != 0
    assert "TypeError" in proc.stderr and "Descriptors cannot be created directly" in proc.stderr


def test_import_hangar_works_with_the_patch(tmp_path: Path) -> None:
    code = """
        import stockroom._compat as compat
        compat.install()
        import hangar
        from google.protobuf.internal import api_implementation
        from hangar.remote import hangar_service_pb2 as pb2, hangar_service_pb2_grpc as grpc_mod
        # The messages are real protobuf classes that serialize.
        msg = pb2.PingRequest()
        assert pb2.PingReply(result="pong").SerializeToString() == b"\\n\\x04pong"
        assert grpc_mod.HangarServiceStub
        print(api_implementation.Type())
    """
    # Without the patch, the default backend is what refuses hangar's module.
    assert ok(python(code, tmp_path)).strip() == "upb"


# -------------------------------------------------------- import orders
ROUND_TRIP = """
    stock = stockroom.StockRoom()
    stock.tag["framework"] = FRAMEWORK
    stock.data["x"][0] = SAMPLE
    # A column in Hangar's HDF5 backend 00 (its pick for a 1-D array of 512):
    # h5py loaded beside the framework.
    co = stock.get_hangar_checkout(write=True)
    co.add_ndarray_column("bias", prototype=np.zeros(512, dtype=np.float32))[0] = np.arange(512, dtype=np.float32)
    co.close()
    digest = stock.commit("from " + FRAMEWORK)
    stock.close()
    with stockroom.StockRoom() as again:
        assert again.head == digest
        assert again.tag["framework"] == FRAMEWORK
        co = again.get_hangar_checkout()
        bias = co.columns["bias"]
        print(again.data["x"][0].tolist(), float(bias[0].sum()), bias.backend)
        co.close()
    assert "PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION" not in os.environ
"""


# tensorflow's own protobuf messages still work after hangar's were served.
TF_PROTOBUF = (
    "graph = tf.function(lambda x: x * 2).get_concrete_function(tf.TensorSpec([2])).graph\n"
    "proto = graph.as_graph_def()\n"
    "assert len(tf.compat.v1.GraphDef.FromString(proto.SerializeToString()).node) == len(proto.node) > 0\n"
)


@pytest.mark.parametrize(
    "prelude, sample, framework",
    [
        ("import tensorflow as tf, stockroom", "tf.constant([1.0, 2.0])", "tensorflow"),
        ("import stockroom\nstockroom.StockRoom().close()\nimport tensorflow as tf\n" + TF_PROTOBUF,
         "tf.constant([1.0, 2.0])", "tensorflow-after"),
        ("import torch, stockroom", "torch.tensor([1.0, 2.0])", "torch"),
        ("import stockroom\nstockroom.StockRoom().close()\nimport torch", "torch.tensor([1.0, 2.0])",
         "torch-after"),
    ],
    ids=["tensorflow-first", "stockroom-then-tensorflow", "torch-first", "stockroom-then-torch"],
)
def test_any_import_order_works_without_env_vars(
    stock_repo: Path, prelude: str, sample: str, framework: str
) -> None:
    module = framework.split("-")[0]
    pytest.importorskip(module)
    code = f"import os\nimport numpy as np\n{prelude}\nFRAMEWORK = {framework!r}\nSAMPLE = {sample}\n"
    code += textwrap.dedent(ROUND_TRIP)
    assert ok(python(code, stock_repo)).strip() == "[1.0, 2.0] 130816.0 00"


# ------------------------------------------------------------ numpy shims
NUMPY_00 = """
    import numpy, stockroom._compat as compat
    DISABLE
    import stockroom
    had_math = hasattr(numpy, "math")
    with stockroom.StockRoom() as stock:
        co = stock.get_hangar_checkout(write=True)
        # Hangar picks its HDF5 backend 00 for 1-D arrays of 400 to 10M elements.
        col = co.add_ndarray_column("bias", prototype=numpy.zeros(1000))
        col[0] = numpy.arange(1000, dtype=numpy.float64)
        print(col.backend, float(col[0].sum()), hasattr(numpy, "math") == had_math)
        co.close()
"""


def test_numpy_math_in_hdf5_backend_fails_without_the_shim(stock_repo: Path) -> None:
    proc = python(NUMPY_00.replace("DISABLE", "compat.NUMPY_SHIM_MODULES = frozenset()"), stock_repo)
    assert proc.returncode != 0
    assert "has no attribute 'math'" in proc.stderr


def test_numpy_math_in_hdf5_backend_works_with_the_shim(stock_repo: Path) -> None:
    assert ok(python(NUMPY_00.replace("DISABLE", ""), stock_repo)).strip() == "00 499500.0 True"


def test_variable_shape_column_and_real_numpy_untouched(stock: stockroom.StockRoom) -> None:
    """hangar puts every variable-shape column in backend 00 (np.math.ceil)."""
    had_math, had_typedict = hasattr(np, "math"), hasattr(np, "typeDict")
    co = stock.get_hangar_checkout(write=True)
    try:
        col = co.add_ndarray_column("var", shape=(10, 10), dtype=np.float32, variable_shape=True)
        assert col.backend == "00"
        col[0] = np.ones((3, 4), dtype=np.float32)
        col[1] = np.ones((10, 2), dtype=np.float32)
        co.commit("variable shape")
    finally:
        co.close()
    assert (hasattr(np, "math"), hasattr(np, "typeDict")) == (had_math, had_typedict)
    import hangar.backends.hdf5_00 as h5

    assert h5.np is not np and h5.np.math.ceil(2.5) == 3 and h5.np.float32 is np.float32


TYPEDICT = """
    import numpy as np, stockroom._compat as compat
    DISABLE
    compat.install()
    from hangar.remote.chunks import _deserialize_arr, _serialize_arr
    for dtype in (np.bool_, np.uint8, np.int32, np.int64, np.float16, np.float32, np.float64):
        arr = (np.arange(6) % 2).astype(dtype).reshape(2, 3)
        back = _deserialize_arr(_serialize_arr(arr))
        assert back.dtype == arr.dtype and (back == arr).all(), dtype
    print("ok")
"""
NO_TYPEDICT = """
    real_shim = compat._numpy_shim
    def shim_without_typedict():
        module = real_shim()
        del module.typeDict
        return module
    compat._numpy_shim = shim_without_typedict
"""


def test_type_dict_by_number_fails_without_the_shim(tmp_path: Path) -> None:
    proc = python(TYPEDICT.replace("    DISABLE", textwrap.indent(textwrap.dedent(NO_TYPEDICT), "    ")), tmp_path)
    assert proc.returncode != 0 and "typeDict" in proc.stderr


def test_type_dict_by_number_works_with_the_shim(tmp_path: Path) -> None:
    """hangar's remote chunks decode arrays with np.typeDict[dtype number]."""
    assert ok(python(TYPEDICT.replace("DISABLE", ""), tmp_path)).strip() == "ok"


# ------------------------------------------------------------ lmdb sharing
LMDB = """
    import stockroom, stockroom._compat as compat
    DISABLE
    with stockroom.StockRoom() as one, stockroom.StockRoom() as two:
        # Through reader checkouts (stock.tag reads committed tags from a cache).
        a, b = one.get_hangar_checkout(), two.get_hangar_checkout()
        print(a.columns["tag"]["a"], b.columns["tag"]["a"])
"""


def test_two_readers_of_one_str_column_fail_without_the_lmdb_shim(stock: stockroom.StockRoom, stock_repo: Path) -> None:
    stock.tag["a"] = 1
    stock.commit("one tag")
    proc = python(LMDB.replace("DISABLE", "compat.LMDB_SHIM_MODULES = frozenset()"), stock_repo)
    assert proc.returncode != 0 and "already open in this process" in proc.stderr
    assert ok(python(LMDB.replace("DISABLE", ""), stock_repo)).strip() == "i:1 i:1"


def test_lmdb_environments_are_shared_and_reference_counted(stock: stockroom.StockRoom, stock_repo: Path) -> None:
    stock.tag["a"] = "x"
    stock.commit("one tag")
    other = stockroom.StockRoom()
    expert = stock.get_hangar_checkout()
    try:
        assert stock.tag["a"] == other.tag["a"] == "x"
        assert expert.columns["tag"]["a"] == "s:x"  # stockroom's typed encoding of "x"
    finally:
        expert.close()
    assert stock.tag["a"] == "x"  # closing one user leaves the shared environment open
    other.close()
    assert stock.tag["a"] == "x"
    # A writer reading back its own str writes opens the staged file twice.
    stock.tag["b"] = "y"
    assert stock.tag["b"] == "y" and other is not stock


# ------------------------------------------------------------ lazy loaders
LAZY = """
    import sys, stockroom._compat as compat
    DISABLE
    import stockroom.store
    print("torch" in sys.modules, "tensorflow" in sys.modules)
"""


def test_importing_hangar_loads_torch_without_the_lazy_loader(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    assert ok(python(LAZY.replace("DISABLE", "compat.LAZY_MODULES = {}"), tmp_path)).split()[0] == "True"


def test_import_stockroom_store_does_not_import_torch(tmp_path: Path) -> None:
    assert ok(python(LAZY.replace("DISABLE", ""), tmp_path)).split() == ["False", "False"]


def test_lazy_torch_loader_still_works(stock: stockroom.StockRoom, stock_repo: Path) -> None:
    pytest.importorskip("torch")
    stock.data["x"].update({i: np.full(2, i, dtype=np.float32) for i in range(4)})
    stock.commit("four samples")
    code = """
        import sys, stockroom
        with stockroom.StockRoom() as stock:
            from hangar import make_torch_dataset
            assert "torch" not in sys.modules
            co = stock.get_hangar_checkout()
            dataset = make_torch_dataset([co.columns["data.x"]], field_names=["x"])
            print(len(dataset), "torch" in sys.modules, type(dataset).__mro__[1].__module__)
            co.close()
    """
    assert ok(python(code, stock_repo)).split() == ["4", "True", "torch.utils.data.dataset"]


def test_install_is_idempotent_and_only_touches_hangar() -> None:
    _compat.install()
    _compat.install()
    finders = [f for f in sys.meta_path if isinstance(f, _compat.HangarCompatFinder)]
    assert len(finders) == 1
    assert finders[0].find_spec("json", None) is None
    assert finders[0].find_spec("numpy", None) is None


# ------------------------------------------------------- scratch commit copies
def test_commit_copies_skip_fsync_repository_files_keep_it(stock: stockroom.StockRoom) -> None:
    """Reader checkouts unpack a commit into a scratch LMDB: no fsync there,
    while the repository's own databases stay durable."""
    stock.tag["lr"] = 0.5
    digest = stock.commit("one")
    assert stock.tag["lr"] == 0.5
    assert stock._store.reader() is not None  # opens a reader checkout on the new commit
    env = stock._store.repo._env
    scratch = env.cmtenv[digest]
    assert os.path.basename(scratch.path()) == f"{digest}.lmdb"
    assert scratch.flags()["sync"] is False and scratch.flags()["metasync"] is False
    for durable in (env.refenv, env.branchenv, env.hashenv, env.stageenv, env.stagehashenv):
        assert durable.flags()["sync"] is True
    # Committed records keep both syncs; staged ones skip the meta-page sync
    # (integrity kept, the last staged transaction may be lost to a power cut).
    for committed in (env.refenv, env.branchenv, env.hashenv):
        assert committed.flags()["metasync"] is True
    for staged in (env.stageenv, env.stagehashenv):
        assert staged.flags()["metasync"] is False


def test_scratch_open_only_matches_commit_copies() -> None:
    assert _compat._COMMIT_COPY_RE.fullmatch("a=" + "0" * 40 + ".lmdb")
    for name in ("ref.lmdb", "branch.lmdb", "a=123.lmdb", "a=" + "0" * 40 + ".lmdb.bak"):
        assert not _compat._COMMIT_COPY_RE.fullmatch(name)


# ------------------------------------------------------- given bytes digests
def test_given_bytes_digest_is_hangars_and_taken_only_for_that_object(stock: stockroom.StockRoom) -> None:
    from hangar.records import hash_func_from_tcode

    co = stock.get_hangar_checkout(write=True)
    try:
        schema = co.add_bytes_column("b", backend="31")._schema
        data = bytes(range(256)) * 1000
        assert _compat.bytes_digest(data) == hash_func_from_tcode("3")(data) == schema.data_hash_digest(data)
        equal_copy = bytes(bytearray(data))
        _compat.give_digest(data, "3=" + "ab" * 20)
        try:
            assert schema.data_hash_digest(data) == "3=" + "ab" * 20  # the very object: not hashed again
            assert schema.data_hash_digest(equal_copy) == _compat.bytes_digest(data)  # any other: hashed
        finally:
            _compat.take_digest(data)
        assert schema.data_hash_digest(data) == _compat.bytes_digest(data)
    finally:
        co.close()


def test_model_units_are_stored_under_hangars_digest(stock: stockroom.StockRoom) -> None:
    weights = [np.arange(600_000, dtype=np.float32)]
    stock.model["m"] = weights
    co = stock.get_hangar_checkout(write=True)
    try:
        col = co.columns["model.m"]
        units = [k for k in col.keys() if not k.startswith("meta.")]
        assert units
        for key in units:
            # Hangar's own record of the unit names the same digest it is keyed by.
            assert _compat.bytes_digest(col[key]) == "3=" + key
    finally:
        co.close()
    assert np.array_equal(stock.model["m"][0], weights[0])


def test_read_bytes_into_reads_lmdb_in_place_and_checks_hangars_checksum(stock: stockroom.StockRoom) -> None:
    """Model units are copied once, from LMDB's map into the tensor, after
    Hangar's own xxh64 check: a unit changed on disk is an error, never data."""
    weights = [np.random.default_rng(3).standard_normal(600_000).astype(np.float32)]
    stock.model["m"] = weights
    stock.commit("m")
    co = stock.get_hangar_checkout()
    try:
        col = co.columns["model.m"]
        key = next(k for k in col.keys() if not k.startswith("meta."))
        expected = col[key]
        assert col._samples[key].backend == "31"  # the in-place path, not the fallback
        out = np.zeros(len(expected) + 7, dtype=np.uint8)
        assert _compat.read_bytes_into(col, key, out) == len(expected)
        assert out[: len(expected)].tobytes() == expected and not out[len(expected) :].any()
        with pytest.raises(ValueError, match="more than"):
            _compat.read_bytes_into(col, key, np.zeros(len(expected) - 1, dtype=np.uint8))
        # Change the stored bytes (same length) behind Hangar's back.
        spec = col._samples[key]
        env = col._be_fs["31"].Fp[spec.uid]
        path = env.path()
    finally:
        co.close()
    stock.close()
    import lmdb

    raw = lmdb.open(path, lock=False)
    with raw.begin(write=True) as txn:
        txn.put(spec.row_idx.encode(), bytes(len(expected)))
    raw.close()
    stock2 = stockroom.StockRoom(stock.path)
    with pytest.raises(StockroomError, match="DATA CORRUPTION|damaged"):
        stock2.model["m"]
    stock2.close()


# ------------------------------------------------------- staged LMDB data files
def test_staged_writes_append_to_one_lmdb_data_file(stock: stockroom.StockRoom, stock_repo: Path) -> None:
    """Tags that reach Hangar's staging area one by one (each logged write
    folded at once, as `stock status` between writes does) share one staged
    data file; a committed file is never written again."""
    data_dir = stock_repo / ".hangar" / "data" / "30"
    for i in range(30):
        stock.tag[f"t{i}"] = f"value {i}"
        assert stock._store.staged_status() == "DIRTY"  # folds the staged tag log into Hangar
        assert stock.tag[f"t{i}"] == f"value {i}"  # a read between writes, as a notebook does
    assert len(list(data_dir.iterdir())) == 1
    stock.commit("thirty tags")
    committed = {p.name: (p / "data.mdb").stat().st_mtime_ns for p in data_dir.iterdir()}
    for i in range(30, 40):
        stock.tag[f"t{i}"] = f"value {i}"
        stock._store.staged_status()
    after = {p.name: (p / "data.mdb").stat().st_mtime_ns for p in data_dir.iterdir()}
    assert len(after) == 2 and all(after[name] == mtime for name, mtime in committed.items())
    assert stock.reset()
    stock.tag["again"] = "x"
    stock.commit("after a reset")
    with stockroom.StockRoom() as other:
        assert [other.tag[f"t{i}"] for i in range(30)] == [f"value {i}" for i in range(30)]
        assert other.tag["again"] == "x" and "t35" not in other.tag
