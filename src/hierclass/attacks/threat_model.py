"""The threat model of an attack on a hierarchy: which inputs, and so which nodes, it may touch.

A batch is a tensor (perturbable as a whole) or a dict of modalities; ``perturbable`` names the
modalities the adversary can change. A node that reads only other modalities and a one-label
leaf are never attacked (their outputs cannot be moved by this adversary); a rule router on a
perturbable modality is attacked like any other node.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

import torch

from hierclass.batch import Batch
from hierclass.inputs import IMAGE_RANGE, check_inputs
from hierclass.nodes import Node, SingletonLeaf


def is_attackable(node: Node, x: Batch, perturbable: Collection[str] | None) -> bool:
    """Whether the threat model lets the adversary act on ``node``.

    False for nodes that read nothing (one-label leaves, ``node.reads_input``) and for nodes
    that read a modality outside ``perturbable``; a tensor batch is perturbable as a whole.
    A rule router that reads a perturbable modality *is* attackable: being deterministic does
    not make it robust (its gradient is zero, so gradient attacks rarely move it, but nothing
    forbids it).

    Examples
    --------
    >>> from hierclass import Leaf
    >>> leaf = Leaf(torch.nn.Linear(3, 2), [0, 1], input_key="lidar")
    >>> is_attackable(leaf, {"lidar": torch.zeros(1, 3)}, perturbable=["image"])
    False
    """
    if not getattr(node, "reads_input", True):
        return False
    if isinstance(x, torch.Tensor):
        return True
    return perturbable is not None and node.input_key in perturbable


def _check_threat_model(h: Any, x: Batch, perturbable: Any) -> frozenset[str] | None:
    """Validate a batch against a threat model; return the perturbable keys (None: a tensor).

    Every value must be finite, perturbable modalities must lie in [0, 1] (attacks work in
    that range; normalisation belongs inside the model), and every modality a node of ``h``
    reads must be in the batch.

    Examples
    --------
    >>> _check_threat_model(None, {"image": torch.rand(2, 3)}, ["image"])
    frozenset({'image'})
    >>> _check_threat_model(None, torch.rand(2, 3), ["image"])
    Traceback (most recent call last):
    ...
    ValueError: perturbable=['image'] names modalities but the batch is a plain tensor (which is the one perturbable input); pass perturbable=None
    """  # noqa: E501
    if isinstance(x, torch.Tensor):
        if perturbable is not None:
            raise ValueError(
                f"perturbable={sorted(perturbable)} names modalities but the batch is a plain "
                "tensor (which is the one perturbable input); pass perturbable=None"
            )
        _check_floats({"x": x})
        check_inputs(x, input_range=IMAGE_RANGE, what="x")
        return None
    if not isinstance(x, Mapping):
        raise TypeError(f"a batch is a tensor or a dict of tensors, got {type(x).__name__}")
    if perturbable is None:
        raise ValueError(
            f"the batch has modalities {sorted(x)}: name the ones the adversary can perturb "
            "with perturbable=[...] (the threat model)"
        )
    if isinstance(perturbable, str) or not isinstance(perturbable, Collection):
        raise TypeError(
            f"perturbable must be a collection of modality names such as ['image'], got "
            f"{perturbable!r}"
        )
    keys = frozenset(perturbable)
    unknown = sorted(keys - set(x))
    if unknown:
        raise ValueError(f"perturbable modalities {unknown} are not in the batch {sorted(x)}")
    if h is not None:
        read = {
            node.input_key
            for _, node in h.nodes()
            if node.input_key is not None and not isinstance(node, SingletonLeaf)
        }
        missing = sorted(read - set(x))
        if missing:
            raise ValueError(
                f"the hierarchy's nodes read modalities {missing} that the batch {sorted(x)} "
                "does not have"
            )
    _check_floats({k: x[k] for k in keys})
    check_inputs(x, input_range={k: IMAGE_RANGE for k in keys}, what="x")
    return keys


def _check_floats(tensors: Mapping[str, Any]) -> None:
    for name, t in tensors.items():
        label = name if name == "x" else f"x[{name!r}]"
        if not torch.is_tensor(t):
            raise TypeError(f"{label} must be a torch.Tensor, got {type(t).__name__}")
        if not t.is_floating_point():
            raise TypeError(f"{label} must be a floating-point tensor in [0, 1], got {t.dtype}")
