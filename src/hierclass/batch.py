"""Batches of one or several modalities: a tensor, or a dict of tensors sharing a batch size."""

from __future__ import annotations

from collections.abc import Mapping

import torch

Batch = torch.Tensor | Mapping[str, torch.Tensor]


def batch_size(x: Batch) -> int:
    """Number of samples in a batch; validates a dict batch's entries agree.

    Examples
    --------
    >>> batch_size({"image": torch.zeros(3, 1, 4, 4), "lidar": torch.zeros(3, 16, 3)})
    3
    """
    if isinstance(x, torch.Tensor):
        if x.dim() == 0:
            raise ValueError("a batch needs a leading batch dimension, got a 0-d tensor")
        return x.shape[0]
    if isinstance(x, Mapping):
        if not x:
            raise ValueError("a dict batch needs at least one modality, got an empty dict")
        sizes = {}
        for key, value in x.items():
            if not isinstance(value, torch.Tensor):
                raise TypeError(
                    f"modality {key!r} must be a torch.Tensor, got {type(value).__name__}"
                )
            if value.dim() == 0:
                raise ValueError(f"modality {key!r} needs a leading batch dimension, got 0-d")
            sizes[key] = value.shape[0]
        if len(set(sizes.values())) != 1:
            raise ValueError(f"modalities disagree on the batch size: {sizes}")
        return next(iter(sizes.values()))
    raise TypeError(f"a batch is a tensor or a dict of tensors, got {type(x).__name__}")


def index_batch(x: Batch, index: torch.Tensor) -> Batch:
    """Rows ``index`` of every modality of a batch.

    Examples
    --------
    >>> index_batch({"a": torch.arange(4)}, torch.tensor([0, 2]))["a"]
    tensor([0, 2])
    """
    if isinstance(x, torch.Tensor):
        return x[index.to(x.device)]
    return {key: value[index.to(value.device)] for key, value in x.items()}


def check_batch(x: Batch) -> int:
    """Validate a batch at a public boundary: non-empty, no NaN, consistent sizes.

    Returns the batch size.

    Examples
    --------
    >>> check_batch(torch.zeros(2, 3))
    2
    >>> check_batch(torch.tensor([[0.0], [float("nan")]]))
    Traceback (most recent call last):
    ...
    ValueError: input contains NaN in samples [1]
    """
    n = batch_size(x)
    if n == 0:
        raise ValueError("empty batch: expected at least one sample, got 0")
    tensors = [("input", x)] if isinstance(x, torch.Tensor) else list(x.items())
    for key, value in tensors:
        if value.is_floating_point() and bool(torch.isnan(value).any()):
            bad = torch.isnan(value.reshape(value.shape[0], -1)).any(1).nonzero().flatten()
            raise ValueError(f"{key} contains NaN in samples {bad.tolist()[:10]}")
    return n


def batch_device(x: Batch) -> torch.device:
    """Device of the (first) tensor of a batch.

    Examples
    --------
    >>> batch_device({"image": torch.zeros(1, 3)})
    device(type='cpu')
    """
    if isinstance(x, torch.Tensor):
        return x.device
    return next(iter(x.values())).device
