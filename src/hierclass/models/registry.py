"""Build models by name, and read back the name and kwargs a model was built with.

A saved hierarchy stores ``model_spec(model)`` (JSON) next to the weights; loading calls
``build_from_spec(spec)`` and then ``load_state_dict`` -- no pickled code is ever executed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import nn

from ._base import read_spec, record_spec
from .pointnet import PointNet
from .preact_resnet import PreActResNet18
from .resnet_cifar import CifarResNet, resnet20, resnet110
from .small_cnn import SmallCNN
from .smoothing_archs import smoothing_arch

_REGISTRY: dict[str, Callable[..., nn.Module]] = {
    "small_cnn": SmallCNN,
    "cifar_resnet": CifarResNet,
    "resnet20": resnet20,
    "resnet110": resnet110,
    "preact_resnet18": PreActResNet18,
    "pointnet": PointNet,
    "smoothing_arch": smoothing_arch,
}


def available_models() -> list[str]:
    """Names accepted by :func:`build`, sorted.

    Examples
    --------
    >>> "resnet20" in available_models()
    True
    """
    return sorted(_REGISTRY)


def register_model(
    name: str, factory: Callable[..., nn.Module], *, overwrite: bool = False
) -> None:
    """Make a user model buildable by name (so hierarchies using it can be saved and loaded).

    Parameters
    ----------
    name : str
        Registry name.
    factory : callable
        ``factory(**kwargs) -> nn.Module``; the kwargs must be JSON-serialisable.
    overwrite : bool, default False
        Replace an existing registration of ``name`` instead of raising ``ValueError``.

    Examples
    --------
    >>> from torch import nn
    >>> register_model("tiny_linear", lambda d, k: nn.Sequential(nn.Flatten(), nn.Linear(d, k)),
    ...                overwrite=True)
    >>> model_spec(build("tiny_linear", d=4, k=2))
    {'name': 'tiny_linear', 'kwargs': {'d': 4, 'k': 2}}
    """
    if not isinstance(name, str) or not name:
        raise TypeError(f"name must be a non-empty str, got {name!r}")
    if not callable(factory):
        raise TypeError(f"factory must be callable, got {type(factory).__name__}")
    if name in _REGISTRY and not overwrite:
        raise ValueError(f"model name {name!r} is already registered; pass overwrite=True")
    _REGISTRY[name] = factory


def build(name: str, **kwargs: Any) -> nn.Module:
    """Construct a registered model by name.

    Parameters
    ----------
    name : str
        One of :func:`available_models`.
    **kwargs
        Constructor arguments (JSON-serialisable).

    Returns
    -------
    nn.Module
        The model, carrying its spec so that ``model_spec(model)`` round-trips.

    Examples
    --------
    >>> model = build("small_cnn", num_classes=10, image_size=8)
    >>> spec = model_spec(model)
    >>> model_spec(build(spec["name"], **spec["kwargs"])) == spec
    True
    """
    if name not in _REGISTRY:
        raise ValueError(f"unknown model name {name!r}; valid names: {available_models()}")
    model = _REGISTRY[name](**kwargs)
    if not isinstance(model, nn.Module):
        raise TypeError(f"factory for {name!r} returned {type(model).__name__}, not nn.Module")
    spec = read_spec(model)
    # Built-in classes record their full kwargs (defaults included); user factories get the
    # kwargs they were called with.
    if spec is None or spec["name"] != name:
        record_spec(model, name, kwargs)
    return model


def model_spec(model: nn.Module) -> dict[str, Any]:
    """Return ``{"name": ..., "kwargs": {...}}``; ``build_from_spec(spec)`` rebuilds ``model``.

    Raises ``TypeError`` for models that were neither built by :func:`build` nor constructed
    from a hierclass model class (their constructor arguments are unknown).

    Examples
    --------
    >>> model_spec(resnet20(num_classes=4))
    {'name': 'resnet20', 'kwargs': {'num_classes': 4, 'in_channels': 3, 'mean': None, 'std': None}}
    """
    spec = read_spec(model)
    if spec is None:
        raise TypeError(
            f"{type(model).__name__} carries no model spec: construct it with "
            "hierclass.models.build(name, **kwargs) (register custom factories with "
            "register_model) so that it can be saved and rebuilt"
        )
    return spec


def build_from_spec(spec: dict[str, Any]) -> nn.Module:
    """Rebuild a model from ``model_spec(model)``: ``build(spec["name"], **spec["kwargs"])``.

    The result has freshly initialised weights; load the saved ``state_dict`` into it.

    Examples
    --------
    >>> spec = {"name": "small_cnn", "kwargs": {"num_classes": 3, "image_size": 8}}
    >>> model = build_from_spec(spec)
    >>> type(model).__name__
    'SmallCNN'
    """
    if not isinstance(spec, dict) or set(spec) != {"name", "kwargs"}:
        got = sorted(spec) if isinstance(spec, dict) else type(spec).__name__
        raise ValueError(f"spec must be a dict with keys 'name' and 'kwargs', got {got}")
    if not isinstance(spec["kwargs"], dict):
        raise TypeError(f"spec['kwargs'] must be a dict, got {type(spec['kwargs']).__name__}")
    return build(spec["name"], **spec["kwargs"])
