"""The PyTorch side of ``stock.model``.

Imported only when a torch model or state dict is stored or loaded, so that
``import stockroom`` never imports torch. Tensors travel as their raw bytes:
every dtype (bfloat16 and the float8 types included, which numpy lacks) is
viewed as ``uint8`` for storing and viewed back for loading, bit for bit.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

import numpy as np

EXTRA_HINT = 'install it with `pip install "stockroom[torch]"`'

try:
    import torch
except ImportError:  # pragma: no cover - exercised only where torch is absent
    raise ImportError(f"this model was stored from PyTorch, which is not installed; {EXTRA_HINT}") from None


def version() -> str:
    """The running torch release, without the local build tag (``2.3.1+cpu`` -> ``2.3.1``)."""
    return str(torch.__version__).split("+", 1)[0]


def is_tensor(value: object) -> bool:
    return isinstance(value, torch.Tensor)


def is_module(value: object) -> bool:
    return isinstance(value, torch.nn.Module)


def alias_key(tensor: torch.Tensor) -> tuple[Any, ...] | None:
    """Identity of the memory ``tensor`` views; equal keys mean the very same view (tied weights)."""
    if tensor.numel() == 0 or tensor.is_meta or tensor.layout != torch.strided:
        return None
    return (
        str(tensor.device),
        tensor.untyped_storage().data_ptr(),
        tensor.storage_offset(),
        tuple(tensor.shape),
        tuple(tensor.stride()),
        tensor.dtype,
    )


def flatten(tensor: torch.Tensor, where: str) -> tuple[str, tuple[int, ...], np.ndarray]:
    """``(dtype name, shape, flat uint8 array of the raw bytes)`` of a dense tensor.

    GPU tensors are copied to the CPU, non-contiguous ones made contiguous
    (values and shape are kept; strides are not).
    """
    if tensor.layout != torch.strided or tensor.is_nested:
        raise TypeError(f"{where} is a {tensor.layout} tensor; store dense tensors (call .to_dense() first)")
    if tensor.is_quantized:
        raise TypeError(f"{where} is a quantized tensor; store .dequantize() or .int_repr() instead")
    if tensor.is_meta:
        raise TypeError(f"{where} is on the 'meta' device and has no values; materialise the model first")
    dtype = str(tensor.dtype).removeprefix("torch.")
    shape = tuple(int(n) for n in tensor.shape)
    t = tensor.detach()
    if t.device.type != "cpu":
        t = t.cpu()
    # Lazy conjugate/negative views would be resolved by .numpy() anyway;
    # resolving them here keeps the raw-byte view below valid for them too.
    t = t.resolve_conj().resolve_neg().contiguous()
    if t.numel() == 0:
        return dtype, shape, np.empty(0, dtype=np.uint8)
    return dtype, shape, t.reshape(-1).view(torch.uint8).numpy()


def unflatten(raw: np.ndarray, dtype: str, shape: tuple[int, ...]) -> torch.Tensor:
    """Inverse of :func:`flatten`; ``raw`` (writable uint8) becomes the tensor's memory."""
    tdtype = getattr(torch, dtype, None)
    if not isinstance(tdtype, torch.dtype):
        raise TypeError(
            f"this model holds torch dtype {dtype!r}, which torch {torch.__version__} does not "
            f"have; load it with the torch version that saved it (or a newer one)"
        )
    if raw.size == 0:
        return torch.empty(shape, dtype=tdtype)
    return torch.from_numpy(raw).view(tdtype).reshape(shape)


def state_dict_of(module: object) -> Mapping[str, Any]:
    return module.state_dict()  # type: ignore[attr-defined]


def load_into(module: Any, state_dict: OrderedDict[str, torch.Tensor], name: str) -> None:
    """``module.load_state_dict`` (strict), with a mismatch reported as ValueError."""
    try:
        module.load_state_dict(state_dict)
    except RuntimeError as exc:
        raise ValueError(
            f"stock.model[{name!r}] does not fit this {type(module).__name__}: {exc}\n"
            f"load it into the architecture it was saved from"
        ) from None
