"""Nested training state in ``stock.model`` (SPEC 9): optimizer, scheduler, RNG, GradScaler."""

from __future__ import annotations

import json
import math
import random
from collections import OrderedDict
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

import stockroom
from stockroom.storages.model import column_name


def same(a: Any, b: Any, path: str = "state") -> None:
    """Structure, key types, container types, scalar types and tensor bits all equal."""
    assert type(a) is type(b), (path, type(a), type(b))
    if isinstance(a, dict):
        assert list(a.keys()) == list(b.keys()), path
        for (ka, va), kb in zip(a.items(), b.keys(), strict=True):
            assert type(ka) is type(kb), (path, ka)
            same(va, b[kb], f"{path}[{ka!r}]")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            same(x, y, f"{path}[{i}]")
    elif isinstance(a, torch.Tensor):
        assert a.dtype == b.dtype and a.shape == b.shape, path
        assert (
            a.reshape(-1).contiguous().view(torch.uint8).equal(b.reshape(-1).contiguous().view(torch.uint8))
        ), path
    elif isinstance(a, (np.ndarray, np.generic)):
        assert a.dtype == b.dtype and np.shape(a) == np.shape(b), path
        assert np.asarray(a).tobytes() == np.asarray(b).tobytes(), path
    elif isinstance(a, float):
        assert struct_bits(a) == struct_bits(b), path
    else:
        assert a == b, path


def struct_bits(x: float) -> bytes:
    import struct

    return struct.pack("<d", x)


def trained() -> tuple[nn.Module, torch.optim.Optimizer, Any]:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=0.1, total_steps=20)
    for _ in range(3):
        opt.zero_grad()
        net(torch.randn(5, 4)).pow(2).sum().backward()
        opt.step()
        sched.step()
    return net, opt, sched


def test_adam_and_onecycle_round_trip_and_load(stock: stockroom.StockRoom) -> None:
    net, opt, sched = trained()
    stock.model["opt"] = opt.state_dict()
    stock.model["sched"] = sched.state_dict()
    stock.commit("states")
    back = stock.model["opt"]
    same(opt.state_dict(), back)
    assert list(back["state"].keys()) == [0, 1, 2, 3]  # int keys stay int
    assert isinstance(back["param_groups"][0]["betas"], tuple)  # tuples stay tuples
    same(sched.state_dict(), stock.model["sched"])
    # the state loads into a fresh optimizer and scheduler, which then step identically
    net2 = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    net2.load_state_dict(net.state_dict())
    opt2 = torch.optim.Adam(net2.parameters(), lr=1e-2)
    sched2 = torch.optim.lr_scheduler.OneCycleLR(opt2, max_lr=0.1, total_steps=20)
    opt2.load_state_dict(stock.model["opt"])
    sched2.load_state_dict(stock.model["sched"])
    x = torch.randn(5, 4)
    for o, n, s in ((opt, net, sched), (opt2, net2, sched2)):
        o.zero_grad()
        n(x).pow(2).sum().backward()
        o.step()
        s.step()
    for a, b in zip(net.parameters(), net2.parameters(), strict=True):
        assert torch.equal(a, b)


def test_sgd_momentum_gradscaler_and_rng_states(stock: stockroom.StockRoom) -> None:
    net = nn.Linear(3, 3)
    opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
    net(torch.ones(2, 3)).sum().backward()
    opt.step()
    scaler = torch.amp.GradScaler("cpu", init_scale=1024.0)
    random.seed(3)
    np.random.seed(3)
    states = {
        "sgd": opt.state_dict(),
        "scaler": scaler.state_dict(),
        "torch_rng": torch.get_rng_state(),
        "py_rng": random.getstate(),
        "np_rng": np.random.get_state(),
    }
    for key, value in states.items():
        stock.model[key] = value
    stock.commit("rng")
    for key, value in states.items():
        same(value, stock.model[key], key)
    assert isinstance(stock.model["torch_rng"], torch.Tensor)
    random.setstate(stock.model["py_rng"])
    np.random.set_state(stock.model["np_rng"])
    torch.set_rng_state(stock.model["torch_rng"])
    a = (random.random(), np.random.rand(), torch.rand(1).item())
    random.setstate(states["py_rng"])
    np.random.set_state(states["np_rng"])
    torch.set_rng_state(states["torch_rng"])
    assert a == (random.random(), np.random.rand(), torch.rand(1).item())


def test_scalars_exact_and_odd_leaves(stock: stockroom.StockRoom) -> None:
    state = OrderedDict(
        epoch=3,
        big=2**70,
        lr=0.1 + 0.2,
        neg_zero=-0.0,
        nan=float("nan"),
        inf=float("-inf"),
        flag=True,
        none=None,
        text="a\ud800b 'quoted' \"double\"",
        nested={"a": [1, (2.5, None), {7: np.float32(1.5)}], 5: np.arange(3, dtype=np.int16)},
        empty={"l": [], "t": (), "d": {}},
        t=torch.zeros(0, 3, dtype=torch.bfloat16),
    )
    stock.model["lightning"] = state
    stock.commit("odd")
    back = stock.model["lightning"]
    assert type(back) is OrderedDict
    same(state, back)
    assert math.isnan(back["nan"]) and back["big"] == 2**70 and back["flag"] is True
    assert isinstance(back["nested"]["a"][2][7], np.float32)


@pytest.mark.parametrize(
    ("value", "path"),
    [
        ({"state": {0: {"fn": len}}}, r"state\['state'\]\[0\]\['fn'\]"),
        ({"param_groups": [{"x": object()}]}, r"state\['param_groups'\]\[0\]\['x'\]"),
        ({"a": [1], (1, 2): 3}, r"key \(1, 2\)"),
        ({"a": [np.array(["x"])]}, r"state\['a'\]\[0\].*dtype"),
        ({"a": [1], "b": {1.5}}, r"state\['b'\] is a set"),
    ],
)
def test_anything_else_is_a_type_error_naming_its_path(
    stock: stockroom.StockRoom, value: Any, path: str
) -> None:
    with pytest.raises(TypeError, match=path):
        stock.model["bad"] = value
    assert "bad" not in stock.model


def test_tensors_dedup_as_layers_and_aliases_stay_one(stock: stockroom.StockRoom) -> None:
    big = torch.randn(300_000)  # over SMALL: units of its own
    stock.model["ck"] = {"model": {"w": big}, "step": 1, "again": [big]}
    stock.commit("one")
    back = stock.model["ck"]
    assert back["model"]["w"] is back["again"][0]  # the very same view stored once
    co = stock.get_hangar_checkout()
    units_one = {k for k in co.columns[column_name("ck")].keys() if not k.startswith("meta.")}
    stock.model["ck"] = {"model": {"w": big}, "step": 2, "again": [big]}
    stock.commit("two")
    co = stock.get_hangar_checkout()
    col = co.columns[column_name("ck")]
    units_two = {k for k in col.keys() if not k.startswith("meta.")}
    # the large tensor's units are the same; only the small pack (skeleton) changed
    assert len(units_one & units_two) >= 1
    meta = json.loads(b"".join(col[k] for k in sorted(k for k in col.keys() if k.startswith("meta."))))
    names = [t["name"] for t in meta["tensors"]]
    assert names == ["state['model']['w']", "state['again'][0]", "(structure)"]


def test_plain_state_dicts_keep_their_format(stock: stockroom.StockRoom) -> None:
    sd = nn.Linear(2, 2).state_dict()
    stock.model["net"] = sd
    stock.commit("plain")
    back = stock.model["net"]
    assert type(back) is OrderedDict and list(back) == list(sd)
    co = stock.get_hangar_checkout()
    meta = json.loads(co.columns[column_name("net")]["meta.0"])
    assert meta["kind"] == "torch"
