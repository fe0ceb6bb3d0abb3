"""The Keras side of ``stock.model``.

Nothing here imports keras or tensorflow: a Keras model handed to stockroom
means keras is already imported, and versions of frameworks that are not
imported are read from the installed package metadata.
"""

from __future__ import annotations

import importlib.metadata
import sys
from typing import Any

EXTRA_HINT = 'install it with `pip install "stockroom[tensorflow]"`'

# Distributions that provide a module, first match wins.
_DISTRIBUTIONS = {
    "keras": ("keras",),
    "tensorflow": ("tensorflow", "tensorflow-cpu", "tensorflow-macos", "tensorflow-intel", "tf-nightly"),
    "jax": ("jax",),
    "torch": ("torch",),
}


def _public(version: str) -> str:
    return version.split("+", 1)[0]


def installed_version(module: str) -> str | None:
    """Version of ``module``: the imported one, else the installed one, else None."""
    loaded = sys.modules.get(module)
    if loaded is not None and isinstance(getattr(loaded, "__version__", None), str):
        return _public(loaded.__version__)
    for dist in _DISTRIBUTIONS.get(module, (module,)):
        try:
            return _public(importlib.metadata.version(dist))
        except importlib.metadata.PackageNotFoundError:
            continue
    return None


def _keras_model_classes() -> tuple[type, ...]:
    classes = []
    for module in ("keras", "tf_keras"):
        loaded = sys.modules.get(module)
        model = getattr(loaded, "Model", None) if loaded is not None else None
        if isinstance(model, type):
            classes.append(model)
    return tuple(classes)


def is_model(value: object) -> bool:
    classes = _keras_model_classes()
    return bool(classes) and isinstance(value, classes)


def versions() -> dict[str, str]:
    """Keras and its backend's versions, for the frameworks already imported."""
    found: dict[str, str] = {}
    keras = sys.modules.get("keras")
    if keras is not None:
        found["keras"] = _public(str(getattr(keras, "__version__", "")))
        backend = "tensorflow"
        with_backend = getattr(keras, "backend", None)
        if with_backend is not None and callable(getattr(with_backend, "backend", None)):
            backend = str(with_backend.backend())
        version = installed_version(backend)
        if version is not None:
            found[backend] = version
    elif "tensorflow" in sys.modules:
        version = installed_version("tensorflow")
        if version is not None:
            found["tensorflow"] = version
    return found


def weights_of(model: Any) -> tuple[list[str], list[Any]]:
    """Variable paths (stable names such as ``sequential/dense/kernel``) and values.

    An unbuilt model (no input shape yet) has no weights to store: refused
    here, instead of storing an empty list that fails only when loaded.
    """
    if not getattr(model, "built", True):
        raise ValueError(
            f"this {type(model).__name__} is not built yet, so it has no weights to store; build it "
            f"first (give it keras.Input(shape) or call it once on a batch), then save_weights"
        )
    values = list(model.get_weights())
    names = [str(getattr(v, "path", getattr(v, "name", i))) for i, v in enumerate(model.weights)]
    if len(names) != len(values):  # pragma: no cover - defensive, Keras keeps them aligned
        names = [str(i) for i in range(len(values))]
    return names, values


def load_into(model: Any, weights: list[Any], name: str) -> None:
    """``model.set_weights``, with a mismatch reported as ValueError saying what to do."""
    expected = len(model.weights)
    if expected != len(weights):
        raise ValueError(
            f"stock.model[{name!r}] holds {len(weights)} weights but this {type(model).__name__} "
            f"has {expected}; build the model (call it once or give it an Input) with the "
            f"architecture it was saved from"
        )
    try:
        model.set_weights(weights)
    except ValueError as exc:
        raise ValueError(
            f"stock.model[{name!r}] does not fit this {type(model).__name__}: {exc}; "
            f"load it into the architecture it was saved from"
        ) from None
