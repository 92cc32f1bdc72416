"""Batches of one or several modalities: a tensor, or a dict of tensors sharing a batch size."""

from __future__ import annotations

from collections.abc import Mapping

import torch

from hierclass.inputs import InputRange, check_inputs

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


def check_batch(x: Batch, *, input_range: InputRange = None, what: str = "input") -> int:
    """Validate a batch at a public boundary; returns the batch size.

    The batch must be non-empty, its modalities must agree on the batch size, and every
    floating-point value must be finite and inside the range in force
    (:func:`hierclass.inputs.check_inputs`: image-shaped tensors default to ``[0, 1]``,
    ``input_range`` declares others).

    Examples
    --------
    >>> check_batch(torch.zeros(2, 3))
    2
    >>> check_batch(torch.tensor([[0.0], [float("inf")]]))
    Traceback (most recent call last):
    ...
    ValueError: input must be finite, got 1 non-finite values (inf or nan) (samples [1])
    >>> check_batch(torch.full((1, 3, 4, 4), 255.0), input_range=(0, 255))
    1
    """
    n = batch_size(x)
    if n == 0:
        raise ValueError(f"empty batch: expected at least one sample in the {what}, got 0")
    check_inputs(x, input_range=input_range, what=what)
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


def slice_batch(x: Batch, start: int, stop: int, device: torch.device | None = None) -> Batch:
    """Rows ``start:stop`` of every modality of a batch, moved to ``device`` if given.

    Examples
    --------
    >>> slice_batch({"a": torch.arange(4)}, 1, 3)["a"]
    tensor([1, 2])
    """
    if isinstance(x, torch.Tensor):
        part = x[start:stop]
        return part if device is None else part.to(device)
    return {
        key: value[start:stop] if device is None else value[start:stop].to(device)
        for key, value in x.items()
    }


def select_modality(x: Batch, key: str | None, what: str = "x") -> torch.Tensor:
    """The tensor a node reads: ``x`` itself, or ``x[key]`` for a dict batch.

    Examples
    --------
    >>> select_modality({"image": torch.zeros(2, 3)}, "image", "x").shape
    torch.Size([2, 3])
    >>> select_modality({"image": torch.zeros(2, 3)}, None, "x")
    Traceback (most recent call last):
    ...
    ValueError: x is a dict of modalities ['image']; pass input_key= to say which one ...
    """
    if isinstance(x, Mapping):
        if key is None:
            raise ValueError(
                f"{what} is a dict of modalities {sorted(x)}; pass input_key= to say which one "
                "the model reads"
            )
        if key not in x:
            raise ValueError(f"input_key {key!r} not in {what}; available: {sorted(x)}")
        x = x[key]
    elif key is not None and isinstance(x, torch.Tensor):
        raise ValueError(f"input_key={key!r} was given but {what} is a tensor, not a dict")
    if not isinstance(x, torch.Tensor):
        raise TypeError(
            f"{what} must be a torch.Tensor or a dict of tensors, got {type(x).__name__}"
        )
    return x
