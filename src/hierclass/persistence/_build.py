"""Building the nodes and trees of a checked spec and restoring each node's own state."""

from __future__ import annotations

from typing import Any

import torch

from hierclass.models._base import read_spec
from hierclass.nodes import Leaf, Node, Router, RuleRouter, SingletonLeaf
from hierclass.partition import LabelPartition
from hierclass.persistence._format import (
    MODEL_PREFIX,
    SPEC_FILE,
    decode_range,
    fail,
    library_class,
    short,
)
from hierclass.persistence._models import state_mismatch


class Builder:
    """Builds the nodes and hierarchies of a checked spec."""

    def __init__(
        self, spec_path, weights_path, models, node_states, rules, node_classes, make_tree
    ):
        self.spec_path = spec_path
        self.weights_path = weights_path
        self.models = models
        self.node_states = node_states
        self.rules = rules
        self.node_classes = node_classes
        self.make_tree = make_tree  # the Hierarchy class: hierarchy.py imports this package
        self.used: set[int] = set()

    def tree(self, node: dict[str, Any], where: str = "tree") -> Any:
        root = node["root"]
        try:
            partition = LabelPartition.from_dict(root["partition"])
        except (TypeError, ValueError) as exc:
            raise fail(self.spec_path, f"{where}.root.partition: {exc}") from None
        router = self.router(root, partition, f"{where}.root")
        children = []
        for i, child in enumerate(node["children"]):
            at = f"{where}.children[{i}]"
            if child["type"] == "Hierarchy":
                children.append(self.tree(child, at))
            elif child["type"] == "SingletonLeaf":
                children.append(SingletonLeaf(child["labels"][0]))
            else:
                children.append(self.leaf(child, at))
        try:
            input_range = decode_range(node.get("input_range"))
            return self.make_tree(router, children, input_range=input_range)
        except (TypeError, ValueError) as exc:
            raise fail(self.spec_path, f"{where}: {exc}") from None

    def router(self, root: dict[str, Any], partition: LabelPartition, where: str) -> Router:
        if root["type"] == "RuleRouter":
            return RuleRouter(self.rules[root["rule"]], partition, root.get("input_key"))
        return self.node(root, where, Router, self.models[root["model"]], partition)

    def leaf(self, child: dict[str, Any], where: str) -> Leaf:
        model = None if child.get("model") is None else self.models[child["model"]]
        return self.node(child, where, Leaf, model, child["labels"])

    def node(self, entry: dict[str, Any], where: str, base: type, model: Any, what: Any) -> Any:
        """A model-backed node (``base`` is Router or Leaf) built as ``cls(model, what, key)``
        (``what`` is a router's partition or a leaf's labels), with its own state restored."""
        kind, key = entry["type"], entry.get("input_key")
        if kind in ("CustomRouter", "CustomLeaf"):
            node = self.user_class(entry, where, base)(model, what, key)
            if not isinstance(node, base):
                raise TypeError(
                    f"node_classes[{entry['class']!r}] made a "
                    f"{type(node).__name__}, expected a {base.__name__}"
                )
        else:
            node = library_class(kind, base, self.spec_path, where)(model, what, key)
        self.check_width(node, entry, where)
        self.restore(node, entry, where)
        return node

    def check_width(self, node: Node, entry: dict[str, Any], where: str) -> None:
        """Refuse a node whose model's recorded class count cannot serve it.

        The spec names each node's model by index; an index edited to another saved model
        would otherwise load and fail (or mislead) only at the first prediction. Models built
        from the registry record ``num_classes``, which is checked against what the node needs.
        """

        spec = read_spec(node.model) if isinstance(node.model, torch.nn.Module) else None
        width = (spec or {}).get("kwargs", {}).get("num_classes")
        if not isinstance(width, int):
            return
        if hasattr(node, "from_flat_logits"):  # reads a flat model's logits over all labels
            ok, need = width > max(node.labels), f"more than {max(node.labels)} outputs"
        else:
            need_n = node.partition.num_classes if isinstance(node, Router) else len(node.labels)
            ok, need = width == need_n, f"{need_n} outputs"
        if not ok:
            raise fail(
                self.spec_path,
                f"{where}: its model (index {entry['model']}) has {width} outputs but a "
                f"{type(node).__name__} over labels {short(list(node.labels))} needs {need}; "
                "was the model index edited?",
            )

    def user_class(self, entry: dict[str, Any], where: str, base: type) -> Any:
        """The caller's ``node_classes`` entry for a custom node (by qualified or short name)."""
        qualname = entry["class"]
        name = qualname.rsplit(".", 1)[-1]
        make = self.node_classes.get(qualname, self.node_classes.get(name))
        if make is None:
            role, what = ("leaf", "labels") if base is Leaf else ("router", "partition")
            raise ValueError(
                f"the hierarchy has a custom {role} class {name!r} at {where}; pass "
                f"node_classes={{{name!r}: cls}} (the class, or a callable(model, {what}, "
                f"input_key) that builds it) to rebuild it"
            )
        if not callable(make):
            raise TypeError(
                f"node_classes[{name!r}] must be a class or callable, got {type(make).__name__}"
            )
        return make

    def restore(self, node: Node, entry: dict[str, Any], where: str) -> None:
        """Load the node's own buffers and parameters; its model's were loaded already."""
        expected = sorted(k for k in node.state_dict() if not k.startswith(MODEL_PREFIX))
        if "node" not in entry:  # format /1 saved no node state
            if expected:
                raise fail(
                    self.spec_path,
                    f"{where}: {type(node).__name__} has its own state {expected}, which this "
                    f"file (format hierclass.hierarchy/1) did not save; save it again",
                )
            return
        self.used.add(entry["node"])
        state = self.node_states.get(entry["node"], {})
        if sorted(state) != sorted(entry["state"]):
            raise fail(
                self.weights_path,
                f"the tensors of node {where} are "
                f"{short(sorted(state))} but {SPEC_FILE} lists {entry['state']}",
            )
        if sorted(state) != expected:
            raise ValueError(
                f"{self.spec_path}: {where}: the saved state {sorted(state)} does not match "
                f"the state {expected} that {type(node).__name__} registers; node_classes "
                f"must build the class that was saved"
            )
        try:
            node.load_state_dict(state, strict=False)
        except RuntimeError as exc:
            raise fail(
                self.weights_path,
                f"the tensors of node {where} do not fit "
                f"{type(node).__name__}: {state_mismatch(exc)}",
            ) from None
