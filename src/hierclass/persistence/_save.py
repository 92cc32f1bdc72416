"""Writing a hierarchy: its tree as ``hierarchy.json``, its tensors as ``weights.pt``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

from hierclass.models import model_spec
from hierclass.nodes import Node, RuleRouter, SingletonLeaf
from hierclass.persistence._format import (
    FORMAT,
    MODEL_PREFIX,
    SPEC_FILE,
    WEIGHTS_FILE,
    encode_range,
)


def save_hierarchy(hierarchy: Any, path: str | Path) -> Path:
    """Write ``hierarchy.json`` and ``weights.pt`` into directory ``path``; returns it.

    Distinct models are stored once (a flat model shared by renormalised leaves too), with
    their ``hierclass.models`` spec when they have one. Each node's own buffers and
    parameters (those of a custom :class:`~hierclass.nodes.Leaf` subclass) are stored with
    it, so the whole ``state_dict`` of every node comes back on load.

    Examples
    --------
    >>> import tempfile
    >>> from hierclass import Hierarchy, LabelPartition, Router, RenormalizedLeaf
    >>> from hierclass.models import SmallCNN
    >>> flat = SmallCNN(4, image_size=8).eval()
    >>> p = LabelPartition([[0, 1], [2, 3]])
    >>> h = Hierarchy(Router(SmallCNN(2, image_size=8).eval(), p),
    ...               [RenormalizedLeaf(flat, [0, 1]), RenormalizedLeaf(flat, [2, 3])])
    >>> folder = save_hierarchy(h, tempfile.mkdtemp())
    >>> sorted(f.name for f in folder.iterdir())
    ['hierarchy.json', 'weights.pt']
    >>> x = torch.rand(3, 1, 8, 8)
    >>> torch.equal(Hierarchy.load(folder).predict(x), h.predict(x))
    True
    """
    path = Path(path)
    writer = _Writer()
    spec = {"format": FORMAT, "tree": writer.tree(hierarchy, "root")}
    spec["models"] = [_model_entry(i, m) for i, m in enumerate(writer.models)]
    spec["rules"] = writer.rules
    weights = {
        f"{i}.{key}": value.detach().cpu()
        for i, model in enumerate(writer.models)
        for key, value in model.state_dict().items()
    }
    weights.update(writer.node_state)
    path.mkdir(parents=True, exist_ok=True)
    (path / SPEC_FILE).write_text(json.dumps(spec, indent=2))
    torch.save(weights, path / WEIGHTS_FILE)
    return path


class _Writer:
    """Walks a tree once, collecting its spec, its distinct models, rules and node state."""

    def __init__(self) -> None:
        self.models: list[nn.Module] = []  # distinct models, shared ones once
        self.rules: list[str] = []
        self.node_state: dict[str, torch.Tensor] = {}
        self.num_nodes = 0

    def tree(self, h: Any, where: str) -> dict[str, Any]:
        root = h.root
        if isinstance(root, RuleRouter):
            name = getattr(root.rule, "__name__", None) or f"rule{len(self.rules)}"
            self.rules.append(name)
            root_spec: dict[str, Any] = {"type": "RuleRouter", "rule": name}
        else:
            root_spec = self.node(root, "CustomRouter", f"{where} router")
        root_spec.update(input_key=root.input_key, partition=root.partition.to_dict())
        children = []
        for i, child in enumerate(h.children):
            if hasattr(child, "root"):
                children.append(self.tree(child, f"{where}/{i}"))
            elif isinstance(child, SingletonLeaf):
                children.append({"type": "SingletonLeaf", "labels": list(child.labels)})
            else:
                entry = self.node(child, "CustomLeaf", f"{where}/{i} leaf")
                entry.update(labels=list(child.labels), input_key=child.input_key)
                children.append(entry)
        return {
            "type": "Hierarchy",
            "input_range": encode_range(getattr(h, "input_range", None)),
            "root": root_spec,
            "children": children,
        }

    def model_ref(self, model: Any, where: str) -> int | None:
        """The index of ``model`` among the distinct models (added on first sight)."""
        if model is None:
            return None
        for i, seen in enumerate(self.models):
            if seen is model:
                return i
        if not isinstance(model, nn.Module):
            raise TypeError(
                f"{where}: only nn.Module models can be saved, got {type(model).__name__}; "
                "wrap the callable in an nn.Module"
            )
        self.models.append(model)
        return len(self.models) - 1

    def node(self, node: Node, custom: str, where: str) -> dict[str, Any]:
        """A model-backed node's entry: its type, its model's index and its own state."""
        cls = type(node)
        if cls.__module__.split(".")[0] == "hierclass":
            entry: dict[str, Any] = {"type": cls.__name__}
        else:
            # A user's subclass is saved by name and rebuilt on load only from the
            # node_classes the caller passes: no code is imported by name.
            entry = {"type": custom, "class": cls.__qualname__}
        entry["model"] = self.model_ref(node.model, where)
        # The node's state_dict minus its model's (saved once with the models).
        own = {k: v for k, v in node.state_dict().items() if not k.startswith(MODEL_PREFIX)}
        node_id = self.num_nodes
        self.num_nodes += 1
        entry["node"] = node_id
        entry["state"] = sorted(own)
        for key, value in own.items():
            self.node_state[f"node{node_id}.{key}"] = value.detach().cpu()
        return entry


def _model_entry(index: int, model: nn.Module) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "index": index,
        "class": f"{type(model).__module__}.{type(model).__qualname__}",
        "spec": None,
    }

    try:
        entry["spec"] = model_spec(model)
    except (TypeError, ValueError, AttributeError):
        entry["spec"] = None  # not a hierclass model: load needs a model_factory
    return entry
