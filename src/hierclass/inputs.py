"""The input contract, in one place: finite values inside the model's input range.

Noise (randomized smoothing) and perturbations (attacks) are added in the model's input space,
so the range of that space is part of the contract, and a value outside it is a mistake in
the caller's units (float images in 0..255, images normalised twice), never something to
clamp. The rules:

* non-finite values (``nan``, ``+-inf``) are always an error, in inputs and in logits;
* an *image-shaped* tensor (a channel dimension of 1 or 3 followed by two spatial
  dimensions) must lie in ``[0, 1]`` unless a range is declared for it;
* any modality may declare its range once, with ``input_range``: one ``(low, high)`` pair for
  every floating-point modality, or a mapping ``{key: (low, high) or None}`` (``None``: no
  range for that modality); a plain-tensor input uses the key ``None``;
* other inputs (point clouds, audio features, tabular data) have no range unless declared.

Every public boundary (prediction, certification, data-set drivers, attacks, training) calls
:func:`check_inputs` once; private code behind it assumes valid input.

Examples
--------
>>> check_inputs(torch.rand(2, 1, 4, 4))  # image-shaped, inside [0, 1]
>>> check_inputs(255 * torch.ones(2, 1, 4, 4))
Traceback (most recent call last):
...
ValueError: input must lie in [0, 1] (the default for image-shaped inputs; ...), got values in
[255, 255] (samples [0, 1])
>>> check_inputs({"lidar": 40 * torch.ones(2, 16, 3)}, input_range={"lidar": (-50, 50)})
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch

__all__ = [
    "IMAGE_RANGE",
    "InputRange",
    "check_input_range",
    "check_inputs",
    "check_logits",
    "is_image_shaped",
    "range_for",
]

InputRange = tuple[float, float] | Mapping[Any, tuple[float, float] | None] | None

#: The range image-shaped inputs default to.
IMAGE_RANGE = (0.0, 1.0)


def _check_pair(value: Any, what: str) -> tuple[float, float]:
    if isinstance(value, (str, bytes)):  # "01" would otherwise read as the pair (0, 1)
        raise ValueError(f"{what} must be a pair (low, high) of numbers, got the string {value!r}")
    try:
        lo, hi = (float(v) for v in value)
    except (TypeError, ValueError):
        raise ValueError(f"{what} must be a pair (low, high) of numbers, got {value!r}") from None
    if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
        raise ValueError(f"{what} must be (low, high) with finite low < high, got {value!r}")
    return lo, hi


def check_input_range(input_range: Any) -> InputRange:
    """Validate an ``input_range`` argument once, at a constructor or public boundary.

    Returns ``None``, a ``(low, high)`` pair of floats, or a dict ``key -> pair or None``.

    Examples
    --------
    >>> check_input_range((0, 255)), check_input_range({"audio": None, "image": [0, 1]})
    ((0.0, 255.0), {'audio': None, 'image': (0.0, 1.0)})
    >>> check_input_range((1, 0))
    Traceback (most recent call last):
    ...
    ValueError: input_range must be (low, high) with finite low < high, got (1, 0)
    """
    if input_range is None:
        return None
    if isinstance(input_range, Mapping):
        return {
            k: None if v is None else _check_pair(v, f"input_range[{k!r}]")
            for k, v in input_range.items()
        }
    return _check_pair(input_range, "input_range")


def is_image_shaped(t: torch.Tensor, batched: bool = True) -> bool:
    """True for ``[B, C, H, W]`` (or ``[C, H, W]`` unbatched) with ``C`` in ``{1, 3}``.

    Examples
    --------
    >>> is_image_shaped(torch.zeros(5, 3, 8, 8)), is_image_shaped(torch.zeros(5, 16, 3))
    (True, False)
    >>> is_image_shaped(torch.zeros(1, 28, 28), batched=False)
    True
    """
    dims = t.dim() - (1 if batched else 0)
    return dims == 3 and t.shape[-3] in (1, 3)


def range_for(key: Any, t: torch.Tensor, input_range: InputRange, batched: bool = True):
    """The range in force for modality ``key`` (``None`` for a plain tensor), or ``None``.

    A declared range wins; otherwise image-shaped tensors get :data:`IMAGE_RANGE`.

    Examples
    --------
    >>> image, cloud = torch.zeros(2, 1, 4, 4), torch.zeros(2, 16, 3)
    >>> range_for(None, image, None), range_for("lidar", cloud, {"lidar": (-50.0, 50.0)})
    ((0.0, 1.0), (-50.0, 50.0))
    >>> range_for("lidar", cloud, None) is None
    True
    """
    if isinstance(input_range, Mapping):
        if key in input_range:
            return input_range[key]
    elif input_range is not None:
        return input_range
    return IMAGE_RANGE if is_image_shaped(t, batched) else None


def _bad_samples(mask: torch.Tensor, batched: bool) -> str:
    if not batched or mask.dim() == 0:
        return ""
    rows = mask.reshape(mask.shape[0], -1).any(1).nonzero().flatten().tolist()
    shown = ", ".join(map(str, rows[:10])) + (", ..." if len(rows) > 10 else "")
    return f" (samples [{shown}])"


def _fmt(v: float, bounds: tuple[float, ...] = ()) -> str:
    """4 significant digits, more when rounding would print a value past a bound as the bound."""
    for digits in range(4, 18):
        text = f"{v:.{digits}g}"
        if not any(float(text) == b != v for b in bounds):
            break
    return text


def check_inputs(
    x: Any,
    *,
    input_range: InputRange = None,
    batched: bool = True,
    what: str = "input",
) -> None:
    """Raise ``ValueError`` unless every floating-point value is finite and inside its range.

    Parameters
    ----------
    x : Tensor or dict of Tensors
        A batch ``[B, ...]`` (or one sample ``[...]`` with ``batched=False``).
    input_range : (low, high), dict or None
        Declared ranges (see the module docstring); already validated with
        :func:`check_input_range`, or a literal pair.
    batched : bool
        Whether the leading dimension is the batch (shapes the image-shape rule and the
        sample positions named in the error).
    what : str
        How the error names the input.

    Examples
    --------
    >>> check_inputs(torch.tensor([[0.5], [float("inf")]]))
    Traceback (most recent call last):
    ...
    ValueError: input must be finite, got 1 non-finite values (inf or nan) (samples [1])
    """
    if isinstance(input_range, (tuple, list)):
        input_range = _check_pair(input_range, "input_range")
    items = [(None, x)] if isinstance(x, torch.Tensor) else list(x.items())
    if isinstance(input_range, Mapping) and not isinstance(x, torch.Tensor):
        # a misspelt modality would silently leave the real one unchecked
        unknown = sorted(
            str(k) for k, v in input_range.items() if k is not None and v is not None and k not in x
        )
        if unknown:
            raise ValueError(
                f"input_range names modalities {unknown} that the {what} does not have; its "
                f"modalities are {sorted(map(str, x))}"
            )
    for key, t in items:
        if not isinstance(t, torch.Tensor) or not t.is_floating_point() or t.numel() == 0:
            continue
        name = what if key is None else f"{what} modality {key!r}"
        finite = torch.isfinite(t)
        if not bool(finite.all()):
            bad = ~finite
            raise ValueError(
                f"{name} must be finite, got {int(bad.sum())} non-finite values (inf or nan)"
                f"{_bad_samples(bad, batched)}"
            )
        rng = range_for(key, t, input_range, batched)
        if rng is None:
            continue
        lo, hi = torch.aminmax(t.detach())
        lo, hi = float(lo), float(hi)
        if lo < rng[0] or hi > rng[1]:
            default = rng == IMAGE_RANGE and range_for(key, t, None, batched) == rng
            why = (
                "the default for image-shaped inputs; declare another range with input_range="
                if default
                else "the declared input_range"
            )
            outside = (t < rng[0]) | (t > rng[1])
            raise ValueError(
                f"{name} must lie in [{_fmt(rng[0])}, {_fmt(rng[1])}] ({why}), got values in "
                f"[{_fmt(lo, rng)}, {_fmt(hi, rng)}]{_bad_samples(outside, batched)}"
            )


def check_logits(out: torch.Tensor, what: str = "the model") -> torch.Tensor:
    """Raise ``ValueError`` when a model's scores hold ``nan`` or ``inf``; return them.

    A model that returns non-finite scores has no argmax worth certifying.

    Examples
    --------
    >>> check_logits(torch.tensor([[0.0, float("nan")]]), "the base classifier")
    Traceback (most recent call last):
    ...
    ValueError: the base classifier returned non-finite scores (nan or inf) for 1 of 1 rows; ...
    """
    finite = torch.isfinite(out)
    if not bool(finite.all()):
        rows = int((~finite).reshape(out.shape[0], -1).any(1).sum()) if out.dim() else 1
        total = out.shape[0] if out.dim() else 1
        raise ValueError(
            f"{what} returned non-finite scores (nan or inf) for {rows} of {total} rows; check "
            f"the model and its input"
        )
    return out
