"""Rebuilding the saved models: by name from ``hierclass.models`` (checked on the ``meta``
device against the file's tensors before any memory is allocated) or from a ``model_factory``."""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from hierclass.models import available_models, build
from hierclass.persistence._format import SPEC_FILE, fail, is_int, short


def build_models(
    entries: list[dict[str, Any]],
    states: list[dict[str, torch.Tensor]],
    model_factory: Any,
    weights_path: Path,
) -> list[nn.Module]:
    """The saved models with their tensors loaded, in the order of the spec's ``models``."""
    by_name = [i for i, e in enumerate(entries) if e.get("spec")]
    if isinstance(model_factory, Mapping):
        wrong = [k for k in model_factory if not is_int(k) or not 0 <= k < len(entries)]
        if wrong:
            raise ValueError(
                f"model_factory keys {wrong} are not model indices (0..{len(entries) - 1})"
            )
        named = sorted(set(model_factory) & set(by_name))
        if named:
            raise ValueError(
                f"model_factory has entries for models {named}, which are rebuilt by name "
                f"from hierclass.models; give only the others"
            )
    elif model_factory is not None and not callable(model_factory):
        raise TypeError(
            f"model_factory must be a callable(entry) or a mapping index -> nn.Module, got "
            f"{type(model_factory).__name__}"
        )
    models = []
    for i, entry in enumerate(entries):
        where = f"model {i} ({entry['class']})"
        if entry.get("spec"):
            model = _build_named(entry["spec"], states[i], where, weights_path)
        else:
            model = _from_factory(entry, model_factory, where)
        try:
            model.load_state_dict(states[i])
        except RuntimeError as exc:
            raise fail(
                weights_path, f"the tensors of {where} do not fit it: {state_mismatch(exc)}"
            ) from None
        models.append(model)
    return models


def _from_factory(entry: dict[str, Any], model_factory: Any, where: str) -> nn.Module:
    if model_factory is None or (
        isinstance(model_factory, Mapping) and entry["index"] not in model_factory
    ):
        raise ValueError(
            f"{where} is not a hierclass model; pass model_factory=callable(entry) or "
            f"{{index: module}} to rebuild it"
        )
    if isinstance(model_factory, Mapping):
        model = model_factory[entry["index"]]
    else:
        model = model_factory(dict(entry))
    if not isinstance(model, nn.Module):
        raise TypeError(
            f"model_factory gave {type(model).__name__} for {where}, expected an nn.Module"
        )
    return model


def _build_named(
    spec: dict[str, Any], state: dict[str, torch.Tensor], where: str, weights_path: Path
) -> nn.Module:
    """Build a ``hierclass.models`` model, after checking on ``meta`` that it fits the file."""

    name, kwargs = spec["name"], spec.get("kwargs", {})
    if name not in available_models():
        raise ValueError(
            f"{where}: model name {name!r} is not registered in hierclass.models (known: "
            f"{available_models()}); register it with hierclass.models.register_model first"
        )
    try:
        with torch.device("meta"):
            shell = build(name, **kwargs)
    except (TypeError, ValueError) as exc:
        raise fail(
            weights_path.with_name(SPEC_FILE),
            f"{where}: spec {short(spec)} cannot be built ({exc})",
        ) from None
    except (NotImplementedError, RuntimeError):
        shell = None  # a model whose constructor cannot run on meta: the load check remains
    if shell is not None:
        expected = {k: tuple(v.shape) for k, v in shell.state_dict().items()}
        found = {k: tuple(v.shape) for k, v in state.items()}
        if expected != found:
            raise fail(
                weights_path,
                f"{where} built from {short(spec)} does not match the saved tensors: "
                f"{_shape_diff(expected, found)}",
            )
    return build(name, **kwargs)


def _shape_diff(expected: dict[str, tuple], found: dict[str, tuple]) -> str:
    missing = sorted(set(expected) - set(found))
    extra = sorted(set(found) - set(expected))
    shapes = [k for k in expected if k in found and expected[k] != found[k]]
    parts = []
    if missing:
        parts.append(f"missing {short(missing)}")
    if extra:
        parts.append(f"unexpected {short(extra)}")
    if shapes:
        k = shapes[0]
        parts.append(
            f"{k} has shape {list(found[k])} in the file but {list(expected[k])} in "
            f"the model ({len(shapes)} such)"
        )
    return "; ".join(parts)


def state_mismatch(exc: RuntimeError) -> str:
    text = str(exc).replace("\n", " ").replace("\t", "")
    text = re.sub(r"\s+", " ", text)
    return text if len(text) <= 300 else text[:297] + "..."
