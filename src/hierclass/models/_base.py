"""Shared pieces of every hierclass model: input normalisation and the layer-one split.

Every model maps inputs in [0, 1] to logits and is built from two sub-modules,
``layer_one`` (input normalisation plus the first learned layer) and ``rest``, with
``model(x) == model.rest(model.layer_one(x))``. YOPO adversarial training differentiates
through ``layer_one`` separately, so the split is part of the public contract.
"""

from __future__ import annotations

import copy
import json
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from hierclass._utils.checks import positive_int

_SPEC_ATTR = "_hierclass_spec"


class Normalize(nn.Module):
    """Per-channel affine normalisation ``(x - mean) / std`` applied inside a model.

    Parameters
    ----------
    mean : sequence of float
        One value per channel (dimension 1 of the input). ``std`` must be positive.
    std : sequence of float
        One value per channel (dimension 1 of the input). ``std`` must be positive.
    persistent : bool, default True
        Whether ``mean`` and ``std`` are saved in the state dict (``False`` reproduces layers
        that hold them as plain attributes, such as those of the smoothing papers' files).

    Examples
    --------
    >>> norm = Normalize([0.5], [0.25])
    >>> norm(torch.full((1, 1, 2, 2), 0.75))[0, 0, 0, 0].item()
    1.0
    """

    def __init__(
        self, mean: Sequence[float], std: Sequence[float], *, persistent: bool = True
    ) -> None:
        super().__init__()
        mean_t = torch.as_tensor(list(mean), dtype=torch.float32)
        std_t = torch.as_tensor(list(std), dtype=torch.float32)
        if mean_t.ndim != 1 or mean_t.shape != std_t.shape or mean_t.numel() == 0:
            raise ValueError(
                "mean and std must be non-empty sequences of equal length, got "
                f"{len(mean_t)} and {len(std_t)} values"
            )
        if not bool((std_t > 0).all()):
            raise ValueError(f"std must be positive, got {std_t.tolist()}")
        self.register_buffer("mean", mean_t, persistent=persistent)
        self.register_buffer("std", std_t, persistent=persistent)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Broadcast over channel dimension 1 whatever the number of trailing dimensions.
        shape = (1, -1) + (1,) * (x.dim() - 2)
        return (x - self.mean.view(shape)) / self.std.view(shape)

    def extra_repr(self) -> str:
        return f"mean={self.mean.tolist()}, std={self.std.tolist()}"


def make_input_layer(
    first: nn.Module,
    mean: Sequence[float] | None,
    std: Sequence[float] | None,
    channels: int,
) -> nn.Sequential:
    """Return ``layer_one``: ``norm`` (:class:`Normalize` or identity) followed by ``first``.

    The children are named so that state-dict keys (``layer_one.first.weight``) do not depend
    on whether normalisation is used.
    """
    if (mean is None) != (std is None):
        raise ValueError("give both mean and std for input normalisation, or neither")
    norm: nn.Module = nn.Identity()
    if mean is not None:
        if len(mean) != channels or len(std) != channels:  # type: ignore[arg-type]
            raise ValueError(
                f"mean and std need one value per input channel ({channels}), got "
                f"{len(mean)} and {len(std)}"  # type: ignore[arg-type]
            )
        norm = Normalize(mean, std)  # type: ignore[arg-type]
    return nn.Sequential(OrderedDict(norm=norm, first=first))


def check_num_classes(num_classes: Any) -> int:
    """Validate a class count (a positive ``int``; ``bool`` is rejected)."""
    return positive_int(num_classes, "num_classes")


def _jsonable(value: Any) -> Any:
    if isinstance(value, tuple | list):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    return value


def record_spec(module: nn.Module, name: str, kwargs: dict[str, Any]) -> None:
    """Store the registry name and constructor kwargs on ``module`` for :func:`model_spec`.

    The kwargs must be JSON-serialisable (tuples become lists) because saved hierarchies
    store them in a JSON file.
    """
    clean = _jsonable(dict(kwargs))
    try:
        json.dumps(clean)
    except TypeError as err:
        raise TypeError(
            f"constructor kwargs of model {name!r} must be JSON-serialisable to be saved; "
            f"got {kwargs!r}"
        ) from err
    object.__setattr__(module, _SPEC_ATTR, {"name": name, "kwargs": clean})


def read_spec(module: nn.Module) -> dict[str, Any] | None:
    spec = getattr(module, _SPEC_ATTR, None)
    return copy.deepcopy(spec) if spec is not None else None


class SplitModel(nn.Module):
    """Base class: ``forward(x) = rest(layer_one(x))``.

    Subclasses set ``self.layer_one`` and ``self.rest``; ``rest`` is an ``nn.Sequential``
    whose last module is the classification head, so :meth:`embed` returns the
    penultimate representation (used by invariance discovery).
    """

    layer_one: nn.Module
    rest: nn.Sequential

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.rest(self.layer_one(x))

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate features ``[B, D]``: everything except the final linear head."""
        return self.rest[:-1](self.layer_one(x))
