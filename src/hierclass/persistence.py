"""Saving and loading hierarchies as a JSON spec plus tensors (no pickled code is executed)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from hierclass.nodes import Leaf, RenormalizedLeaf, Router, RuleRouter, SingletonLeaf
from hierclass.partition import LabelPartition

FORMAT = "hierclass.hierarchy/1"
SPEC_FILE = "hierarchy.json"
WEIGHTS_FILE = "weights.pt"


def save_hierarchy(hierarchy: Any, path: str | Path) -> Path:
    """Write ``hierarchy.json`` and ``weights.pt`` into directory ``path``; returns it.

    Distinct models are stored once (a flat model shared by renormalised leaves too), with
    their ``hierclass.models`` spec when they have one.

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
    >>> torch.equal(load_hierarchy(folder).predict(x), h.predict(x))
    True
    """
    path = Path(path)
    models: list[Any] = []  # distinct models, shared ones once (e.g. one flat model, many leaves)
    rules: list[str] = []

    def model_ref(model: Any, where: str) -> int:
        for i, seen in enumerate(models):
            if seen is model:
                return i
        if not isinstance(model, nn.Module):
            raise TypeError(
                f"{where}: only nn.Module models can be saved, got {type(model).__name__}; "
                "wrap the callable in an nn.Module"
            )
        models.append(model)
        return len(models) - 1

    def tree(h: Any, where: str) -> dict[str, Any]:
        root = h.root
        if isinstance(root, RuleRouter):
            name = getattr(root.rule, "__name__", None) or f"rule{len(rules)}"
            rules.append(name)
            root_spec = {"type": "RuleRouter", "rule": name}
        else:
            root_spec = {"type": "Router", "model": model_ref(root.model, f"{where} router")}
        root_spec.update(input_key=root.input_key, partition=root.partition.to_dict())
        children = []
        for i, child in enumerate(h.children):
            if hasattr(child, "root"):
                children.append(tree(child, f"{where}/{i}"))
            elif isinstance(child, SingletonLeaf):
                children.append({"type": "SingletonLeaf", "labels": list(child.labels)})
            else:
                # Built-in leaves by type; a user's subclass by its class name, rebuilt on load
                # only from the node_classes the caller passes (no code is imported by name).
                kind = type(child).__name__ if type(child) in (Leaf, RenormalizedLeaf) else None
                entry = {
                    "type": kind or "CustomLeaf",
                    "labels": list(child.labels),
                    "input_key": child.input_key,
                    "model": model_ref(child.model, f"{where}/{i} leaf"),
                }
                if kind is None:
                    entry["class"] = type(child).__qualname__
                children.append(entry)
        return {"type": "Hierarchy", "root": root_spec, "children": children}

    spec = {"format": FORMAT, "tree": tree(hierarchy, "root")}
    spec["models"] = [_model_entry(i, m) for i, m in enumerate(models)]
    spec["rules"] = rules
    weights = {
        f"{i}.{key}": value.detach().cpu()
        for i, model in enumerate(models)
        for key, value in model.state_dict().items()
    }
    path.mkdir(parents=True, exist_ok=True)
    (path / SPEC_FILE).write_text(json.dumps(spec, indent=2))
    torch.save(weights, path / WEIGHTS_FILE)
    return path


def _model_entry(index: int, model: nn.Module) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "index": index,
        "class": f"{type(model).__module__}.{type(model).__qualname__}",
        "spec": None,
    }
    try:
        from hierclass.models import model_spec
    except ImportError:  # models room not present: fall back to a user factory on load
        return entry
    try:
        entry["spec"] = model_spec(model)
    except (TypeError, ValueError, AttributeError):
        entry["spec"] = None  # not a hierclass model: load needs a model_factory
    return entry


def load_hierarchy(
    path: str | Path,
    model_factory: Any = None,
    rules: Mapping[str, Any] | None = None,
    map_location: str | torch.device = "cpu",
    node_classes: Mapping[str, Any] | None = None,
) -> Any:
    """Rebuild a hierarchy written by :func:`save_hierarchy` (see :meth:`Hierarchy.load`).

    Tensors are read with ``torch.load(weights_only=True)``; models are rebuilt by name from
    ``hierclass.models`` or by ``model_factory``, rules come from ``rules`` and custom leaf
    classes from ``node_classes`` (class name -> ``callable(model, labels, input_key)``).

    Examples
    --------
    >>> import tempfile
    >>> from torch import nn
    >>> from hierclass import Hierarchy, LabelPartition, Router
    >>> h = Hierarchy(Router(nn.Linear(3, 2), LabelPartition([[0], [1]])), [None, None])
    >>> folder = save_hierarchy(h, tempfile.mkdtemp())
    >>> loaded = load_hierarchy(folder, model_factory=lambda entry: nn.Linear(3, 2))
    >>> x = torch.rand(4, 3)
    >>> torch.equal(loaded.predict(x), h.predict(x))
    True
    """
    from hierclass.hierarchy import Hierarchy

    path = Path(path)
    spec_path = path / SPEC_FILE
    if not spec_path.is_file():
        raise FileNotFoundError(f"no {SPEC_FILE} in {path}: expected a directory from save()")
    spec = json.loads(spec_path.read_text())
    if spec.get("format") != FORMAT:
        raise ValueError(f"{spec_path} has format {spec.get('format')!r}, expected {FORMAT!r}")
    weights = torch.load(path / WEIGHTS_FILE, map_location=map_location, weights_only=True)

    models = [_build_model(entry, model_factory) for entry in spec["models"]]
    for i, model in enumerate(models):
        prefix = f"{i}."
        state = {k[len(prefix) :]: v for k, v in weights.items() if k.startswith(prefix)}
        model.load_state_dict(state)
        model.to(map_location)
        model.eval()

    rules = dict(rules or {})
    node_classes = dict(node_classes or {})
    missing = [name for name in spec.get("rules", []) if name not in rules]
    if missing:
        raise ValueError(
            f"the hierarchy uses rules {missing}; pass them as rules={{name: callable}}"
        )

    def build(node: Mapping[str, Any]) -> Any:
        root = node["root"]
        partition = LabelPartition.from_dict(root["partition"])
        if root["type"] == "RuleRouter":
            router: Router = RuleRouter(rules[root["rule"]], partition, root["input_key"])
        else:
            router = Router(models[root["model"]], partition, root["input_key"])
        children = []
        for child in node["children"]:
            kind = child["type"]
            if kind == "Hierarchy":
                children.append(build(child))
            elif kind == "SingletonLeaf":
                children.append(SingletonLeaf(child["labels"][0]))
            elif kind == "RenormalizedLeaf":
                children.append(
                    RenormalizedLeaf(models[child["model"]], child["labels"], child["input_key"])
                )
            elif kind == "Leaf":
                children.append(Leaf(models[child["model"]], child["labels"], child["input_key"]))
            elif kind == "CustomLeaf":
                make = node_classes.get(child["class"])
                if make is None:
                    raise ValueError(
                        f"the hierarchy has a custom leaf class {child['class']!r}; pass "
                        f"node_classes={{{child['class']!r}: cls}} to rebuild it"
                    )
                children.append(make(models[child["model"]], child["labels"], child["input_key"]))
            else:
                raise ValueError(f"unknown node type {kind!r} in {spec_path}")
        return Hierarchy(router, children)

    return build(spec["tree"])


def _build_model(entry: Mapping[str, Any], model_factory: Any) -> nn.Module:
    if model_factory is not None:
        if isinstance(model_factory, Mapping):
            if entry["index"] in model_factory:
                return model_factory[entry["index"]]
        else:
            model = model_factory(entry)
            if model is not None:
                return model
    if entry.get("spec"):
        from hierclass.models import build

        return build(entry["spec"]["name"], **entry["spec"].get("kwargs", {}))
    raise ValueError(
        f"model {entry['index']} ({entry['class']}) is not a hierclass model; pass "
        "model_factory=callable(entry) or {index: module} to rebuild it"
    )
