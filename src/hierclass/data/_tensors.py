"""One door from torch's data containers to the tensors the library's drivers take.

Training, certification, attacks and the CLI accept ``(x, y)`` tensors; torchvision users hold
a ``Dataset`` or a ``DataLoader``. :func:`as_tensors` turns either into ``(x, y)`` once, at the
boundary, so the drivers keep one code path. It never reorders, reshapes or drops samples: a
position in the result is the sample's position in the data set (and so its noise index).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

__all__ = ["as_tensors", "is_data_container"]


def is_data_container(data: Any) -> bool:
    """True for a ``torch.utils.data.Dataset`` or ``DataLoader`` (not for tensors).

    Examples
    --------
    >>> from torch.utils.data import TensorDataset
    >>> is_data_container(TensorDataset(torch.zeros(2, 3))), is_data_container(torch.zeros(2))
    (True, False)
    """
    from torch.utils.data import DataLoader, Dataset

    return isinstance(data, (Dataset, DataLoader))


def _tensor(value: Any, what: str) -> torch.Tensor:
    if isinstance(value, torch.Tensor):
        return value
    if isinstance(value, np.ndarray):
        return torch.from_numpy(value)
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return torch.tensor(int(value))
    raise TypeError(
        f"{what} must be a tensor (add transforms.ToTensor() to the data set for images), "
        f"got {type(value).__name__}"
    )


def _stack(values: list[Any], what: str, *, cat: bool) -> Any:
    """Stack (samples) or concatenate (batches) tensors, or dicts of tensors key by key."""
    if isinstance(values[0], Mapping):
        keys = list(values[0])
        for v in values:
            if not isinstance(v, Mapping) or list(v) != keys:
                got = list(v) if isinstance(v, Mapping) else type(v).__name__
                raise ValueError(f"every {what} must be a dict with keys {keys}, got {got}")
        return {k: _stack([v[k] for v in values], f"{what}[{k!r}]", cat=cat) for k in keys}
    tensors = [_tensor(v, what) for v in values]
    shapes = {tuple(t.shape[1:] if cat else t.shape) for t in tensors}
    if len(shapes) > 1:
        raise ValueError(
            f"every {what} must have the same shape to form one tensor, found {sorted(shapes)}"
        )
    return torch.cat(tensors) if cat else torch.stack(tensors)


def _pair(item: Any, where: str) -> tuple[Any, Any]:
    if not isinstance(item, (tuple, list)) or len(item) != 2:
        got = (
            f"{type(item).__name__} of length {len(item)}"
            if hasattr(item, "__len__")
            else (type(item).__name__)
        )
        raise ValueError(f"{where} must be an (input, label) pair, got a {got}")
    return item[0], item[1]


def as_tensors(data: Any, *, allow_shuffle: bool = False) -> tuple[Any, torch.Tensor]:
    """``(x, y)`` tensors from a ``Dataset``, a ``DataLoader`` or an ``(x, y)`` pair.

    Parameters
    ----------
    data : Dataset, DataLoader or (x, y)
        A map-style data set whose items are ``(input, label)`` (e.g. a torchvision data set
        with ``transform=ToTensor()``), a ``DataLoader`` yielding ``(inputs, labels)``
        batches, or a pair of tensors (returned as they are). Inputs may be dicts of tensors
        (one per modality).
    allow_shuffle : bool, default False
        A shuffling ``DataLoader`` gives another order on every pass, so positions (and the
        noise indices derived from them) would not name samples; it is refused unless the
        caller does not care about order (training).

    Returns
    -------
    x : Tensor [N, ...] or dict of Tensors
    y : LongTensor [N]

    Examples
    --------
    >>> from torch.utils.data import DataLoader, TensorDataset
    >>> ds = TensorDataset(torch.rand(5, 1, 4, 4), torch.tensor([0, 1, 2, 1, 0]))
    >>> x, y = as_tensors(DataLoader(ds, batch_size=2))
    >>> x.shape, y.tolist()
    (torch.Size([5, 1, 4, 4]), [0, 1, 2, 1, 0])
    """
    from torch.utils.data import DataLoader, Dataset, RandomSampler, TensorDataset

    if isinstance(data, DataLoader):
        if isinstance(data.sampler, RandomSampler) and not allow_shuffle:
            raise ValueError(
                "the DataLoader shuffles (shuffle=True): its order changes on every pass, so "
                "positions would not name samples; pass its dataset, or a DataLoader with "
                "shuffle=False"
            )
        if data.drop_last:
            # the last partial batch would vanish: rows for fewer inputs than the data set has
            raise ValueError(
                "the DataLoader drops its last partial batch (drop_last=True), so some samples "
                "would silently be left out; pass its dataset, or a DataLoader with "
                "drop_last=False"
            )
        batches = [_pair(b, f"batch {k} of the DataLoader") for k, b in enumerate(data)]
        if not batches:
            raise ValueError("the DataLoader yielded no batches")
        x = _stack([b[0] for b in batches], "batch of inputs", cat=True)
        y = _stack(
            [_tensor(b[1], "a batch of labels") for b in batches], "batch of labels", cat=True
        )
    elif isinstance(data, TensorDataset):
        if len(data.tensors) != 2:
            raise ValueError(
                f"a TensorDataset must hold (inputs, labels), got {len(data.tensors)} tensors"
            )
        x, y = data.tensors
    elif isinstance(data, Dataset):
        try:
            n = len(data)  # type: ignore[arg-type]
        except TypeError:
            raise TypeError(
                "an iterable-style Dataset has no length or positions; wrap it in a "
                "DataLoader with batch_size set"
            ) from None
        if n == 0:
            raise ValueError("the data set is empty")
        items = [_pair(data[i], f"item {i} of the data set") for i in range(n)]
        x = _stack([it[0] for it in items], "input", cat=False)
        y = _stack([_tensor(it[1], "a label") for it in items], "label", cat=False)
    elif isinstance(data, (tuple, list)) and len(data) == 2:
        x, y = data
        y = _tensor(y, "y")
    else:
        raise TypeError(
            "data must be a torch Dataset, a DataLoader or an (x, y) pair of tensors, got "
            f"{type(data).__name__}"
        )
    if isinstance(y, torch.Tensor):
        if y.is_floating_point() or y.dtype == torch.bool:
            raise TypeError(f"labels must be integers, got dtype {y.dtype}")
        y = y.long()
    return x, y
