"""Training data at the boundary: tensors, dict batches, or a torch ``Dataset``/``DataLoader``.

Everything the trainers accept is turned once into ``(x, y)`` tensors of the modality the
model reads, validated by the input contract (:mod:`hierclass.inputs`), before any training.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset

from hierclass._utils.checks import check_labels
from hierclass.batch import select_modality
from hierclass.inputs import InputRange, check_inputs

Inputs = torch.Tensor | Mapping[str, torch.Tensor]
Data = Inputs | Dataset | DataLoader


def _stack(parts: list[Any], what: str) -> Any:
    first = parts[0]
    if isinstance(first, Mapping):
        return {k: _stack([p[k] for p in parts], f"{what}[{k!r}]") for k in first}
    try:
        return torch.stack([torch.as_tensor(p) for p in parts])
    except (TypeError, RuntimeError, ValueError) as err:
        raise TypeError(
            f"{what}: the data set's samples must be tensors (or arrays) of one shape, got "
            f"{type(first).__name__} ({err}); give the data set a transform such as "
            "torchvision.transforms.ToTensor()"
        ) from None


def _cat(parts: list[Any], what: str) -> Any:
    first = parts[0]
    if isinstance(first, Mapping):
        return {k: _cat([p[k] for p in parts], f"{what}[{k!r}]") for k in first}
    return torch.cat([torch.as_tensor(p) for p in parts])


def _pairs(items: Iterable[Any], what: str) -> tuple[list[Any], list[Any]]:
    xs, ys = [], []
    for item in items:
        if not isinstance(item, tuple | list) or len(item) != 2:
            raise TypeError(
                f"{what} must yield (input, label) pairs, got {type(item).__name__}"
                + (f" of length {len(item)}" if isinstance(item, tuple | list) else "")
            )
        xs.append(item[0])
        ys.append(item[1])
    if not xs:
        raise ValueError(f"{what} is empty: expected at least one sample")
    return xs, ys


def as_tensors(data: Any, labels: Any, what: str = "x") -> tuple[Any, Any]:
    """``(inputs, labels)`` from tensors, or from a ``Dataset``/``DataLoader`` of pairs.

    A data set carries its labels, so ``labels`` must then be ``None``.

    Examples
    --------
    >>> from torch.utils.data import TensorDataset
    >>> x, y = as_tensors(TensorDataset(torch.zeros(3, 2), torch.tensor([0, 1, 0])), None)
    >>> x.shape, y.tolist()
    (torch.Size([3, 2]), [0, 1, 0])
    """
    if not isinstance(data, Dataset | DataLoader):
        if labels is None:
            raise TypeError(
                f"labels are missing: pass y with {what}, or a Dataset/DataLoader of "
                "(input, label) pairs"
            )
        return data, labels
    kind = type(data).__name__
    if labels is not None:
        raise TypeError(
            f"{what} is a {kind}, which carries its labels; pass y=None (got a "
            f"{type(labels).__name__})"
        )
    tensors = getattr(data, "tensors", None)
    if isinstance(data, Dataset) and isinstance(tensors, tuple) and len(tensors) == 2:
        return tensors  # a TensorDataset: already the tensors
    if isinstance(data, DataLoader):
        xs, ys = _pairs(data, f"{what} ({kind})")
        return _cat(xs, what), _cat([torch.as_tensor(y).reshape(-1) for y in ys], f"{what} labels")
    try:
        items: Iterable[Any] = (data[i] for i in range(len(data)))  # type: ignore[arg-type]
    except TypeError:
        items = iter(data)  # an IterableDataset
    xs, ys = _pairs(items, f"{what} ({kind})")
    return _stack(xs, what), _stack([torch.as_tensor(y).reshape(()) for y in ys], f"{what} labels")


def training_tensors(
    x: Any,
    y: Any,
    *,
    input_key: str | None,
    input_range: InputRange,
    what: str = "x",
    label_name: str = "y",
) -> tuple[torch.Tensor, torch.Tensor]:
    """The modality the model reads and its labels, checked once: finite values inside the
    range in force, float inputs ``[N, ...]`` with ``N >= 1``, integer labels ``>= 0``."""
    x, y = as_tensors(x, y, what)
    xs = select_modality(x, input_key, what)
    if not xs.is_floating_point():
        raise TypeError(f"{what} must be a floating-point tensor, got dtype {xs.dtype}")
    if xs.dim() < 2 or xs.shape[0] == 0:
        raise ValueError(f"{what} must have shape [N, ...] with N >= 1, got {list(xs.shape)}")
    check_inputs({input_key: xs} if input_key is not None else xs, input_range=input_range,
                 what=what)  # fmt: skip
    ys = check_labels(y, xs, label_name)
    if int(ys.min()) < 0:
        raise ValueError(f"{label_name} must be >= 0, got a label {int(ys.min())}")
    return xs, ys
