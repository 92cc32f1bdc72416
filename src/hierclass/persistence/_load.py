"""Loading a hierarchy: check both untrusted files, rebuild the models, then build the tree."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from hierclass.persistence._build import Builder
from hierclass.persistence._format import SPEC_FILE, WEIGHTS_FILE, fail
from hierclass.persistence._models import build_models
from hierclass.persistence._spec import read_spec
from hierclass.persistence._weights import read_weights, split_weights


def load_tree(
    path: str | Path,
    make_tree: Any,
    model_factory: Any = None,
    rules: Mapping[str, Any] | None = None,
    map_location: str | torch.device = "cpu",
    node_classes: Mapping[str, Any] | None = None,
) -> Any:
    """Rebuild a hierarchy written by :func:`~hierclass.persistence.save_hierarchy`; users call
    :meth:`Hierarchy.load <hierclass.Hierarchy.load>`, which passes itself as ``make_tree``.

    ``make_tree(router, children, input_range=...)`` builds each (sub)tree, so this package
    needs nothing from :mod:`hierclass.hierarchy`, which imports it.

    Tensors are read with ``torch.load(weights_only=True)``; models are rebuilt by name from
    ``hierclass.models`` or, for models that have no name there, by ``model_factory``; rules
    come from ``rules`` and user-defined node classes from ``node_classes`` (class name ->
    the class, or ``callable(model, labels, input_key)`` for a leaf and
    ``callable(model, partition, input_key)`` for a router). Every node's whole
    ``state_dict`` is restored, its own buffers and parameters included.

    Raises
    ------
    FileNotFoundError
        ``path`` holds no ``hierarchy.json`` or no ``weights.pt``.
    ValueError
        Either file is corrupt, tampered or inconsistent with the other (the message names
        the file and the problem), or an argument needed to rebuild it is missing.

    Examples
    --------
    >>> import tempfile
    >>> from torch import nn
    >>> from hierclass import Hierarchy, LabelPartition, Router
    >>> from hierclass.persistence import save_hierarchy
    >>> h = Hierarchy(Router(nn.Linear(3, 2), LabelPartition([[0], [1]])), [None, None])
    >>> folder = save_hierarchy(h, tempfile.mkdtemp())
    >>> loaded = load_tree(folder, Hierarchy, model_factory=lambda entry: nn.Linear(3, 2))
    >>> x = torch.rand(4, 3)
    >>> torch.equal(loaded.predict(x), h.predict(x))
    True
    """
    path = Path(path)
    spec_path, weights_path = path / SPEC_FILE, path / WEIGHTS_FILE
    if not spec_path.is_file():
        raise FileNotFoundError(f"no {SPEC_FILE} in {path}: expected a directory from save()")
    try:
        torch.device(map_location)
    except (RuntimeError, TypeError):
        raise ValueError(
            f"map_location must name a device such as 'cpu' or 'cuda:0', got {map_location!r}"
        ) from None
    spec = read_spec(spec_path)
    rules = _check_mapping(rules, "rules")
    node_classes = _check_mapping(node_classes, "node_classes")
    missing = [name for name in spec["rules"] if name not in rules]
    if missing:
        raise ValueError(
            f"the hierarchy uses rules {missing}; pass them as rules={{name: callable}}"
        )
    if not weights_path.is_file():
        raise FileNotFoundError(f"no {WEIGHTS_FILE} in {path}: expected a directory from save()")
    weights = read_weights(weights_path, map_location)
    model_states, node_states = split_weights(weights, spec, weights_path)
    models = build_models(spec["models"], model_states, model_factory, weights_path)
    for model in models:
        model.to(map_location)
        model.eval()
    builder = Builder(
        spec_path, weights_path, models, node_states, rules, node_classes, make_tree
    )
    hierarchy = builder.tree(spec["tree"])
    stray = sorted(set(node_states) - builder.used)
    if stray:
        raise fail(weights_path, f"holds state for nodes {stray} that {SPEC_FILE} does not have")
    return hierarchy


def _check_mapping(value: Any, name: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise TypeError(f"{name} must be a mapping name -> callable, got {type(value).__name__}")
    return dict(value)
