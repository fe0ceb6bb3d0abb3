"""stock.model (SPEC section 2): PyTorch state dicts and Keras weight lists in a
real Hangar store, exact to the bit, deduplicated, with MutableMapping
semantics; torch and tensorflow imported only when their weights are used."""

from __future__ import annotations

import os
import subprocess
import sys
import warnings
from collections import OrderedDict
from collections.abc import MutableMapping
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

import stockroom
from stockroom import StockroomError
from stockroom.storages.model import PIECE, SMALL, FrameworkVersionWarning

TORCH_DTYPES = [
    torch.bool, torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64,
    torch.float16, torch.bfloat16, torch.float32, torch.float64,
    torch.complex64, torch.uint16, torch.uint32, torch.uint64, torch.float8_e4m3fn,
]
# (), zero-size, small, packed with neighbours, and one spanning several units.
SHAPES: list[tuple[int, ...]] = [(), (0,), (2, 0, 3), (5,), (3, 4, 5)]
BIG_ELEMENTS = PIECE + 12_345  # at least PIECE bytes whatever the dtype: 2+ units


def raw_bytes(t: torch.Tensor) -> bytes:
    t = t.detach().cpu().contiguous()
    if t.numel() == 0:
        return b""
    return t.reshape(-1).view(torch.uint8).numpy().tobytes()


def random_tensor(dtype: torch.dtype, shape: tuple[int, ...], gen: torch.Generator) -> torch.Tensor:
    """Every bit pattern is fair game (nan payloads, -0.0, subnormals, extremes)."""
    if dtype == torch.bool:
        return torch.randint(0, 2, shape, generator=gen).bool()
    n = int(np.prod(shape)) * dtype.itemsize
    bits = torch.randint(0, 256, (n,), dtype=torch.uint8, generator=gen)
    return bits.view(dtype).reshape(shape) if n else torch.empty(shape, dtype=dtype)


def assert_same_state(got: Any, want: Any) -> None:
    assert isinstance(got, OrderedDict)
    assert list(got) == list(want)
    for key, value in want.items():
        assert got[key].dtype == value.dtype, key
        assert tuple(got[key].shape) == tuple(value.shape), key
        assert got[key].device.type == "cpu", key
        assert raw_bytes(got[key]) == raw_bytes(value), key


def assert_same_arrays(got: Any, want: list[np.ndarray]) -> None:
    assert isinstance(got, list) and len(got) == len(want)
    for g, w in zip(got, want, strict=True):
        assert isinstance(g, np.ndarray)
        assert g.dtype == w.dtype and g.shape == w.shape
        assert np.ascontiguousarray(g).tobytes() == np.ascontiguousarray(w).tobytes()


def allocated(path: Path) -> int:
    return sum(os.lstat(os.path.join(r, f)).st_blocks * 512 for r, _, fs in os.walk(path) for f in fs)


class SmallCNN(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3)
        self.bn1 = nn.BatchNorm2d(8)
        self.conv2 = nn.Conv2d(8, 4, 3)
        self.bn2 = nn.BatchNorm2d(4)
        self.head = nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.bn1(self.conv1(x)))
        x = torch.relu(self.bn2(self.conv2(x)))
        return self.head(x.mean(dim=(2, 3)))


def trained_cnn(seed: int) -> SmallCNN:
    """One SGD step: running stats move and num_batches_tracked becomes 1."""
    torch.manual_seed(seed)
    net = SmallCNN()
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    loss = net(torch.randn(4, 3, 10, 10)).square().mean()
    loss.backward()
    opt.step()
    return net.eval()


# ------------------------------------------------------------------ torch
def test_model_store_is_a_mutable_mapping(stock: stockroom.StockRoom) -> None:
    assert isinstance(stock.model, MutableMapping)


def test_cnn_with_batch_norm_round_trips_through_save_and_load_weights(stock: stockroom.StockRoom) -> None:
    net = trained_cnn(0)
    assert net.bn1.num_batches_tracked.item() == 1
    assert stock.model.save_weights("cnn", net) is None
    assert_same_state(stock.model["cnn"], net.state_dict())  # staged
    stock.commit("cnn")

    fresh = trained_cnn(1)
    assert not torch.equal(fresh.conv1.weight, net.conv1.weight)
    assert stock.model.load_weights("cnn", fresh) is None
    assert_same_state(fresh.state_dict(), net.state_dict())
    x = torch.randn(2, 3, 10, 10)
    assert torch.equal(fresh(x), net(x))

    counter = stock.model["cnn"]["bn1.num_batches_tracked"]
    assert counter.dtype == torch.int64 and counter.shape == () and counter.item() == 1


@pytest.mark.parametrize("dtype", TORCH_DTYPES, ids=lambda d: str(d).removeprefix("torch."))
def test_every_torch_dtype_and_shape_is_bit_exact(stock: stockroom.StockRoom, dtype: torch.dtype) -> None:
    gen = torch.Generator().manual_seed(7)
    want = OrderedDict(
        (f"t{i}", random_tensor(dtype, shape, gen)) for i, shape in enumerate([*SHAPES, (BIG_ELEMENTS,)])
    )
    stock.model["w"] = want
    assert_same_state(stock.model["w"], want)
    stock.commit(str(dtype))
    assert_same_state(stock.model["w"], want)


def test_tied_weights_stay_tied(stock: stockroom.StockRoom) -> None:
    class TiedLM(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.emb = nn.Embedding(10, 6)
            self.head = nn.Linear(6, 10, bias=False)
            self.head.weight = self.emb.weight

    torch.manual_seed(0)
    model = TiedLM()
    stock.model.save_weights("lm", model)
    stock.commit("tied")
    got = stock.model["lm"]
    assert_same_state(got, model.state_dict())
    assert got["emb.weight"].data_ptr() == got["head.weight"].data_ptr()

    torch.manual_seed(1)
    fresh = TiedLM()
    stock.model.load_weights("lm", fresh)
    assert fresh.head.weight is fresh.emb.weight
    assert torch.equal(fresh.emb.weight, model.emb.weight)


def test_non_contiguous_and_overlapping_views_round_trip(stock: stockroom.StockRoom) -> None:
    base = torch.arange(24, dtype=torch.float32).reshape(4, 6)
    want = OrderedDict(
        base=base,
        transposed=base.t(),
        strided=base[:, ::2],
        row=base[1],  # shares base's storage without being the same view
        expanded=torch.arange(3.0).reshape(3, 1).expand(3, 4),  # stride 0
        neg=torch.tensor([1 + 2j, 3 - 4j]).conj(),  # a lazy conjugate view
    )
    assert not want["transposed"].is_contiguous() and want["neg"].is_conj()
    stock.model["views"] = want
    stock.commit("views")
    got = stock.model["views"]
    assert list(got) == list(want)
    for key, value in want.items():
        assert torch.equal(got[key], value.resolve_conj()), key
        assert got[key].is_contiguous()
    got["row"].fill_(-1)  # separate memory: the row was stored as its own tensor
    assert got["base"][1, 0].item() == 6.0


def test_gpu_tensors_are_stored_from_a_cpu_copy(stock: stockroom.StockRoom) -> None:
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device on this machine")
    want = OrderedDict(w=torch.randn(3, 4, device="cuda"), b=torch.randn(3, device="cuda").bfloat16())
    stock.model["gpu"] = want
    stock.commit("gpu")
    assert_same_state(stock.model["gpu"], OrderedDict((k, v.cpu()) for k, v in want.items()))
    net = nn.Linear(4, 3).cuda()
    stock.model.save_weights("gpu-net", net)
    fresh = nn.Linear(4, 3).cuda()
    stock.model.load_weights("gpu-net", fresh)
    assert torch.equal(fresh.weight, net.weight) and fresh.weight.device.type == "cuda"


def test_storing_a_name_again_replaces_it_wholly(stock: stockroom.StockRoom) -> None:
    stock.model["m"] = OrderedDict(a=torch.ones(3), b=torch.zeros(2), c=torch.arange(4))
    stock.commit("v1")
    new = OrderedDict(c=torch.arange(5), a=torch.full((2,), 7.0))
    stock.model["m"] = new
    assert_same_state(stock.model["m"], new)
    stock.commit("v2")
    assert_same_state(stock.model["m"], new)
    co = stock.get_hangar_checkout()
    try:  # one shared unit for the two small tensors, one meta piece: nothing stale
        keys = sorted(co.columns["model.m"].keys())
    finally:
        co.close()
    assert len(keys) == 2 and keys[1] == "meta.0"

    arrays = [np.arange(3.0), np.ones((2, 2), dtype=np.int8)]
    stock.model["m"] = arrays  # another kind replaces it too
    assert_same_arrays(stock.model["m"], arrays)


def test_many_tensors_and_long_names_need_several_meta_pieces(stock: stockroom.StockRoom) -> None:
    big = OrderedDict((f"layer{i}." + "x" * 240 + "/weight", torch.full((2,), float(i))) for i in range(9000))
    stock.model["many"] = big
    stock.commit("many")
    co = stock.get_hangar_checkout()
    try:
        assert "meta.1" in co.columns["model.many"]
    finally:
        co.close()
    assert_same_state(stock.model["many"], big)
    small = OrderedDict(only=torch.ones(1))
    stock.model["many"] = small  # the second meta piece must go with the old version
    stock.commit("few")
    assert_same_state(stock.model["many"], small)


def test_a_failed_write_stores_nothing(stock: stockroom.StockRoom) -> None:
    stock.model["m"] = OrderedDict(w=torch.ones(2))
    stock.commit("v1")
    with pytest.raises(TypeError, match="'bad'.*not a torch tensor"):
        stock.model["m"] = OrderedDict(w=torch.zeros(2), bad=3)
    with pytest.raises(TypeError):
        stock.model["new"] = OrderedDict(w=torch.zeros(2), bad="text")
    assert_same_state(stock.model["m"], OrderedDict(w=torch.ones(2)))
    assert "new" not in stock.model
    with pytest.raises(StockroomError, match="nothing to commit"):
        stock.commit("nothing happened")


@pytest.mark.parametrize(
    "value",
    [5, "weights", nn.Linear(2, 2), [torch.ones(2)], {"a": np.ones(3)}, {1: torch.ones(1)},
     {"s": torch.eye(3).to_sparse()}, [np.array(["a", "b"])], [np.array([object()])]],
    ids=["int", "str", "module", "list-of-tensors", "dict-of-arrays", "int-key", "sparse", "str-array", "object-array"],
)
def test_unsupported_values_are_type_errors(stock: stockroom.StockRoom, value: object) -> None:
    with pytest.raises(TypeError) as err:
        stock.model["x"] = value
    if isinstance(value, nn.Module):
        assert "save_weights" in str(err.value)
    assert "x" not in stock.model


def test_invalid_names_missing_names_and_wrong_targets(stock: stockroom.StockRoom) -> None:
    for bad in ("", 5, None, "n" * 100):
        with pytest.raises(ValueError):
            stock.model[bad] = OrderedDict(w=torch.ones(1))  # type: ignore[index]
        assert bad not in stock.model
    with pytest.raises(KeyError):
        stock.model["missing"]
    with pytest.raises(KeyError):
        del stock.model["missing"]
    with pytest.raises(TypeError, match="torch.nn.Module or a keras.Model"):
        stock.model.save_weights("x", object())
    with pytest.raises(TypeError, match="torch.nn.Module or a keras.Model"):
        stock.model.load_weights("x", {"w": torch.ones(1)})

    stock.model.save_weights("cnn", trained_cnn(0))
    with pytest.raises(ValueError, match="does not fit"):
        stock.model.load_weights("cnn", nn.Linear(3, 3))
    stock.model["arrays"] = [np.ones(3)]
    with pytest.raises(ValueError, match="Keras weight list"):
        stock.model.load_weights("arrays", nn.Linear(3, 1))
    with pytest.raises(KeyError):
        stock.model.load_weights("missing", nn.Linear(3, 1))


def test_names_list_delete_and_never_collide(stock: stockroom.StockRoom, stock_repo: Path) -> None:
    names = ["a/b", "a-2fb", "модель", "model.x", "data.x", "tag", "meta.0"]
    for i, name in enumerate(names):
        stock.model[name] = OrderedDict(w=torch.full((2,), float(i)))
    stock.data["x"][0] = np.ones(2)
    stock.tag["k"] = 1
    stock.commit("names")
    assert sorted(stock.model.keys()) == sorted(names) and len(stock.model) == len(names)
    for i, name in enumerate(names):
        assert name in stock.model
        assert stock.model[name]["w"][0].item() == float(i)
    del stock.model["a/b"]
    assert "a/b" not in stock.model and "a-2fb" in stock.model
    stock.commit("deleted")
    with stockroom.StockRoom(stock_repo) as again:
        assert sorted(again.model) == sorted(n for n in names if n != "a/b")
        assert list(again.data) == ["x"] and again.tag["k"] == 1


def test_writes_on_a_detached_head_fail_and_reads_work(stock: stockroom.StockRoom, stock_repo: Path) -> None:
    def run_git(*args: str, cwd: Path) -> None:
        subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True)

    stock.model["m"] = OrderedDict(w=torch.ones(2))
    stock.commit("v1")
    run_git("add", "head.stock", cwd=stock_repo)
    run_git("commit", "-q", "-m", "weights", cwd=stock_repo)
    run_git("checkout", "-q", "--detach", cwd=stock_repo)
    with pytest.raises(StockroomError, match="check out a branch"):
        stock.model["m"] = OrderedDict(w=torch.zeros(2))
    with pytest.raises(StockroomError, match="check out a branch"):
        stock.model.save_weights("net", nn.Linear(2, 2))
    assert_same_state(stock.model["m"], OrderedDict(w=torch.ones(2)))
    assert list(stock.model) == ["m"]


def test_writes_inside_optimize_are_readable_inside(stock: stockroom.StockRoom) -> None:
    with stock.optimize():
        for i in range(3):
            stock.model[f"m{i}"] = OrderedDict(w=torch.full((3,), float(i)))
        assert [stock.model[f"m{i}"]["w"][0].item() for i in range(3)] == [0.0, 1.0, 2.0]
    stock.commit("optimized")
    assert len(stock.model) == 3


def test_other_torch_version_warns_then_loads(stock: stockroom.StockRoom, monkeypatch: pytest.MonkeyPatch) -> None:
    want = OrderedDict(w=torch.randn(4))
    with monkeypatch.context() as patch:
        patch.setattr(torch, "__version__", "1.0.0+cu99")
        stock.model["old"] = want
    stock.model["same"] = want
    stock.commit("versions")
    with pytest.warns(FrameworkVersionWarning, match=r"torch 1\.0\.0 .*torch " + torch.__version__.split("+")[0]):
        got = stock.model["old"]
    assert_same_state(got, want)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert_same_state(stock.model["same"], want)


def test_unchanged_layers_add_no_bytes(stock: stockroom.StockRoom, stock_repo: Path) -> None:
    layer = 256 * 1024 * 4  # 1 MiB of float32: a tensor with units of its own
    assert layer >= SMALL
    torch.manual_seed(0)
    state = OrderedDict((f"l{i}", torch.randn(256, 1024)) for i in range(8))
    hangar = stock_repo / ".hangar"
    start = allocated(hangar)
    stock.model["m"] = state
    stock.commit("v1")
    full = allocated(hangar) - start
    assert full >= 8 * layer

    before = allocated(hangar)
    stock.model["m"] = state  # nothing changed: nothing to write
    assert allocated(hangar) - before < layer // 8

    for version in range(2, 5):
        state[f"l{version}"] = torch.randn(256, 1024)
        before = allocated(hangar)
        stock.model["m"] = state
        stock.commit(f"v{version}")
        grown = allocated(hangar) - before
        assert layer <= grown < 1.5 * layer, (version, grown)
    assert_same_state(stock.model["m"], state)


# ------------------------------------------------------------------- numpy
def test_numpy_weight_lists_round_trip(stock: stockroom.StockRoom) -> None:
    rng = np.random.default_rng(0)
    shared = rng.standard_normal((3, 3))
    arrays = [
        rng.standard_normal((4, 5)).astype(np.float32),
        np.array(2.5, dtype=np.float64),  # 0-dim
        np.zeros((0, 3), dtype=np.float16),
        rng.integers(-100, 100, (7,)).astype(np.int8),
        rng.integers(0, 2**63, (3,), dtype=np.uint64),
        np.array([True, False]),
        np.asfortranarray(rng.standard_normal((3, 4))),
        rng.standard_normal(6)[::2],
        np.array([1, 2, 3], dtype=">i4"),  # big-endian comes back native
        np.array([1 + 2j], dtype=np.complex128),
        rng.standard_normal(PIECE // 4 + 1000),  # units of its own
        shared,
        shared,
        np.float32(1.5),  # numpy scalar
    ]
    stock.model["arrays"] = arrays
    stock.commit("arrays")
    got = stock.model["arrays"]
    want = [np.asarray(a).astype(np.asarray(a).dtype.newbyteorder("=")) for a in arrays]
    assert_same_arrays(got, want)
    assert got[8].dtype == np.dtype("<i4")
    assert got[11] is got[12]


# ------------------------------------------------------------------- keras
@pytest.fixture(scope="module")
def keras() -> Any:
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import keras

    assert keras.backend.backend() == "tensorflow"
    return keras


def small_mlp(keras: Any, seed: int, trained: bool = True) -> Any:
    keras.utils.set_random_seed(seed)
    model = keras.Sequential(
        [
            keras.Input((6,)),
            keras.layers.Dense(8, activation="relu"),
            keras.layers.BatchNormalization(),
            keras.layers.Dense(3),
        ]
    )
    if trained:  # moves the batch-norm moving statistics off their initial values
        model.compile(optimizer="sgd", loss="mse")
        rng = np.random.default_rng(seed)
        model.fit(rng.standard_normal((16, 6)), rng.standard_normal((16, 3)), epochs=1, verbose=0)
    return model


def test_keras_mlp_round_trips_through_save_and_load_weights(stock: stockroom.StockRoom, keras: Any) -> None:
    model = small_mlp(keras, 0)
    assert stock.model.save_weights("mlp", model) is None
    stock.commit("mlp")
    fresh = small_mlp(keras, 1, trained=False)
    assert stock.model.load_weights("mlp", fresh) is None
    assert_same_arrays(fresh.get_weights(), model.get_weights())
    x = np.random.default_rng(2).standard_normal((4, 6)).astype(np.float32)
    assert np.array_equal(fresh.predict(x, verbose=0), model.predict(x, verbose=0))
    assert_same_arrays(stock.model["mlp"], model.get_weights())

    stock.model["list"] = model.get_weights()
    stock.commit("list")
    assert_same_arrays(stock.model["list"], model.get_weights())


def test_keras_bfloat16_weights_are_exact(stock: stockroom.StockRoom, keras: Any) -> None:
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(5, dtype="bfloat16")])
    weights = model.get_weights()
    assert weights[0].dtype.name == "bfloat16"
    stock.model.save_weights("bf16", model)
    stock.commit("bf16")
    assert_same_arrays(stock.model["bf16"], weights)
    fresh = keras.Sequential([keras.Input((4,)), keras.layers.Dense(5, dtype="bfloat16")])
    stock.model.load_weights("bf16", fresh)
    assert_same_arrays(fresh.get_weights(), weights)


def test_keras_errors_and_version_warning(
    stock: stockroom.StockRoom, keras: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = small_mlp(keras, 0, trained=False)
    with monkeypatch.context() as patch:
        patch.setattr(keras, "__version__", "3.0.0")
        stock.model.save_weights("old", model)
    stock.model.save_weights("mlp", model)
    stock.model.save_weights("torch-into-keras", trained_cnn(0))
    stock.commit("keras")
    with pytest.warns(FrameworkVersionWarning, match=r"keras 3\.0\.0"):
        got = stock.model["old"]
    assert_same_arrays(got, model.get_weights())

    with pytest.raises(ValueError, match="PyTorch state_dict"):
        stock.model.load_weights("torch-into-keras", model)
    other = keras.Sequential([keras.Input((6,)), keras.layers.Dense(2)])
    with pytest.raises(ValueError, match="holds 8 weights but this Sequential has 2"):
        stock.model.load_weights("mlp", other)
    with pytest.raises(TypeError, match="save_weights"):
        stock.model["m"] = model


# --------------------------------------------------------- optional imports
def run_python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)


def test_stockroom_does_not_import_torch_or_tensorflow(stock_repo: Path) -> None:
    result = run_python(
        "import sys\n"
        "import numpy as np\n"
        "import stockroom\n"
        f"stock = stockroom.StockRoom({str(stock_repo)!r})\n"
        "stock.model['arrays'] = [np.arange(3.0)]\n"
        "stock.commit('numpy only')\n"
        "print(list(stock.model), stock.model['arrays'][0].tolist(), 'arrays' in stock.model)\n"
        "print(sorted(m for m in ('torch', 'tensorflow', 'keras') if m in sys.modules))\n"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["['arrays'] [0.0, 1.0, 2.0] True", "[]"]


def test_missing_torch_is_an_import_error_naming_the_extra(stock: stockroom.StockRoom, stock_repo: Path) -> None:
    stock.model.save_weights("cnn", trained_cnn(0))
    stock.commit("cnn")
    result = run_python(
        "import sys\n"
        "sys.modules['torch'] = None  # as if torch were not installed\n"
        "import stockroom\n"
        f"stock = stockroom.StockRoom({str(stock_repo)!r})\n"
        "print(list(stock.model))\n"
        "try:\n"
        "    stock.model['cnn']\n"
        "except ImportError as exc:\n"
        "    print(exc)\n"
    )
    assert result.returncode == 0, result.stderr
    listed, message = result.stdout.splitlines()
    assert listed == "['cnn']"
    assert 'pip install "stockroom[torch]"' in message


def test_keras_unbuilt_model_is_refused_at_save(stock: stockroom.StockRoom, keras: Any) -> None:
    """Issue 14.11: saving an unbuilt model said nothing and stored an empty list."""
    unbuilt = keras.Sequential([keras.layers.Dense(3)])
    with pytest.raises(ValueError, match="not built yet.*keras.Input"):
        stock.model.save_weights("nb", unbuilt)
    assert "nb" not in stock.model
    unbuilt.build((None, 4))  # once built, it saves
    stock.model.save_weights("nb", unbuilt)
    assert len(stock.model["nb"]) == 2


def test_large_state_first_read_after_commit_is_exact_and_checked(
    stock: stockroom.StockRoom, stock_repo: Path
) -> None:
    """Issue 21 #25: the units of a large state are read in several threads,
    each copied from LMDB and checked in the copy; a damaged unit is still
    refused (through Hangar's own check), never handed out."""
    gen = torch.Generator().manual_seed(7)
    state = OrderedDict((f"w{i}", torch.randn(1000, 1500, generator=gen)) for i in range(4))  # 24 MB
    state["bias"] = torch.arange(10, dtype=torch.float32)
    stock.model["big"] = state
    stock.commit("big")
    got = stock.model["big"]  # the first read after the commit, same process
    assert list(got) == list(state)
    assert all(torch.equal(got[k], state[k]) for k in state)
    stock.close()
    # Flip one byte of the third unit of w2 where LMDB keeps it.
    needle = state["w2"].numpy().tobytes()[2 * PIECE : 2 * PIECE + 64]
    found = []
    for path in (stock_repo / ".hangar" / "data").rglob("*.mdb"):
        if path.is_file():
            data = path.read_bytes()
            at = data.find(needle)
            if at >= 0:
                found.append((path, at))
    assert len(found) == 1, found
    path, at = found[0]
    with open(path, "r+b") as f:
        f.seek(at + 10)
        byte = f.read(1)
        f.seek(at + 10)
        f.write(bytes([byte[0] ^ 0xFF]))
    with stockroom.StockRoom(stock_repo) as again:
        with pytest.raises(StockroomError, match="damaged"):
            again.model["big"]
