"""Checking an untrusted ``hierarchy.json`` before anything is built: its JSON, its format tag,
its model entries, and its tree (node types, references, label sets, node-state ids)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from hierclass.nodes import Leaf, Router
from hierclass.persistence._format import (
    READABLE_FORMATS,
    decode_range,
    fail,
    is_int,
    library_class,
    short,
)


def read_spec(spec_path: Path) -> dict[str, Any]:
    """The spec in ``spec_path``, checked whole; a ``ValueError`` naming the file otherwise."""
    try:
        spec = json.loads(spec_path.read_text())
    except UnicodeDecodeError:
        raise fail(spec_path, "is not a text file (expected the JSON written by save())") from None
    except json.JSONDecodeError as exc:
        raise fail(
            spec_path, f"is not valid JSON ({exc.msg} at line {exc.lineno}, column {exc.colno})"
        ) from None
    except RecursionError:
        raise fail(spec_path, "is nested too deeply to be a saved hierarchy") from None
    if not isinstance(spec, dict):
        raise fail(spec_path, f"holds a JSON {type(spec).__name__}, expected an object")
    if spec.get("format") not in READABLE_FORMATS:
        raise fail(
            spec_path, f"has format {spec.get('format')!r}, expected one of {READABLE_FORMATS}"
        )
    for key, kind in (("tree", dict), ("models", list), ("rules", list)):
        if key not in spec:
            raise fail(spec_path, f"has no {key!r} entry")
        if not isinstance(spec[key], kind):
            raise fail(
                spec_path,
                f"{key!r} must be a JSON {'object' if kind is dict else 'array'}, got "
                f"{type(spec[key]).__name__}",
            )
    if not all(isinstance(r, str) for r in spec["rules"]):
        raise fail(spec_path, f"'rules' must list rule names, got {spec['rules']!r}")
    for i, entry in enumerate(spec["models"]):
        _check_model_entry(entry, i, spec_path)
    try:
        _SpecChecker(spec_path, len(spec["models"]), spec["rules"]).hierarchy(
            spec["tree"], "tree", parent_labels=None
        )
    except RecursionError:
        raise fail(spec_path, "the tree is nested too deeply to be a saved hierarchy") from None
    return spec


def _check_model_entry(entry: Any, i: int, spec_path: Path) -> None:
    where = f"models[{i}]"
    if not isinstance(entry, dict):
        raise fail(spec_path, f"{where} must be an object, got {type(entry).__name__}")
    if entry.get("index") != i or isinstance(entry.get("index"), bool):
        raise fail(spec_path, f"{where} has index {entry.get('index')!r}, expected {i}")
    if not isinstance(entry.get("class"), str):
        raise fail(spec_path, f"{where} needs a 'class' string, got {entry.get('class')!r}")
    model = entry.get("spec")
    if model is None:
        return
    if (
        not isinstance(model, dict)
        or not isinstance(model.get("name"), str)
        or not isinstance(model.get("kwargs", {}), dict)
    ):
        raise fail(
            spec_path,
            f"{where} spec must be {{'name': str, 'kwargs': {{...}}}} or null, got {model!r}",
        )


class _SpecChecker:
    """Checks the tree of a spec before anything is built (types, references, label sets)."""

    def __init__(self, spec_path: Path, num_models: int, rules: list[str]):
        self.file = spec_path
        self.num_models = num_models
        self.rules = rules
        self.node_ids: set[int] = set()

    def fail(self, where: str, problem: str) -> ValueError:
        return fail(self.file, f"{where}: {problem}")

    def hierarchy(self, node: Any, where: str, parent_labels: list[int] | None) -> None:
        if not isinstance(node, dict) or node.get("type") != "Hierarchy":
            raise self.fail(where, f"expected a Hierarchy object, got {short(node)}")
        for key, kind in (("root", dict), ("children", list)):
            if not isinstance(node.get(key), kind):
                raise self.fail(
                    where, f"{key!r} must be a JSON {kind.__name__}, got {short(node.get(key))}"
                )
        try:
            decode_range(node.get("input_range"))
        except (TypeError, ValueError) as exc:
            raise self.fail(where, f"bad input_range: {exc}") from None
        root = node["root"]
        labels = self.partition(root.get("partition"), f"{where}.root.partition")
        if parent_labels is None and labels != list(range(len(labels))):
            raise self.fail(
                where, f"the root's labels must be 0..{len(labels) - 1}, got {short(labels)}"
            )
        if parent_labels is not None and sorted(labels) != sorted(parent_labels):
            raise self.fail(
                where,
                f"the router covers labels {short(sorted(labels))} but its "
                f"class is {short(sorted(parent_labels))}",
            )
        self.check_key(root, f"{where}.root")
        kind = root.get("type")
        if kind == "RuleRouter":
            if root.get("rule") not in self.rules:
                raise self.fail(where, f"rule {root.get('rule')!r} is not in 'rules' {self.rules}")
        else:
            if kind == "CustomRouter":
                self.class_name(root, f"{where}.root")
            else:
                library_class(kind, Router, self.file, f"{where}.root")
            self.model_index(root.get("model"), f"{where}.root", allow_none=False)
            self.state(root, f"{where}.root")
        classes = root["partition"]["classes"]
        groups = list(classes.values()) if isinstance(classes, dict) else list(classes)
        if len(node["children"]) != len(groups):
            raise self.fail(where, f"{len(groups)} classes but {len(node['children'])} children")
        for i, (child, group) in enumerate(zip(node["children"], groups)):
            self.child(child, f"{where}.children[{i}]", list(group))

    def child(self, child: Any, where: str, labels: list[int]) -> None:
        if not isinstance(child, dict):
            raise self.fail(where, f"expected an object, got {short(child)}")
        kind = child.get("type")
        if kind == "Hierarchy":
            self.hierarchy(child, where, labels)
            return
        got = child.get("labels")
        if (
            not isinstance(got, list)
            or not all(is_int(v) for v in got)
            or sorted(got) != sorted(labels)
        ):
            raise self.fail(
                where, f"labels {short(got)} differ from the class's labels {short(labels)}"
            )
        if kind == "SingletonLeaf":
            if len(labels) != 1:
                raise self.fail(where, f"a SingletonLeaf has one label, got {short(labels)}")
            return
        if kind == "CustomLeaf":
            self.class_name(child, where)
        else:
            library_class(kind, Leaf, self.file, where)
        self.check_key(child, where)
        self.model_index(child.get("model"), where, allow_none=kind == "CustomLeaf")
        self.state(child, where)

    def partition(self, value: Any, where: str) -> list[int]:
        if not isinstance(value, dict):
            raise self.fail(where, f"expected an object, got {short(value)}")
        labels, classes = value.get("labels"), value.get("classes")
        if not isinstance(labels, list) or not all(is_int(v) for v in labels):
            raise self.fail(where, f"'labels' must be a list of ints, got {short(labels)}")
        groups = list(classes.values()) if isinstance(classes, dict) else classes
        if not isinstance(groups, list) or not all(
            isinstance(g, list) and all(is_int(v) for v in g) for g in groups
        ):
            raise self.fail(
                where, f"'classes' must map names to lists of int labels, got {short(classes)}"
            )
        flat = sorted(v for g in groups for v in g)
        if flat != sorted(labels):
            raise self.fail(
                where,
                f"the classes hold labels {short(flat)} but 'labels' is {short(sorted(labels))}",
            )
        return labels

    def model_index(self, value: Any, where: str, allow_none: bool) -> None:
        if value is None and allow_none:
            return
        if not is_int(value) or not 0 <= value < self.num_models:
            raise self.fail(
                where,
                f"model index {value!r} is not one of the "
                f"{self.num_models} saved models (0..{self.num_models - 1})",
            )

    def check_key(self, node: dict[str, Any], where: str) -> None:
        key = node.get("input_key")
        if key is not None and not isinstance(key, str):
            raise self.fail(where, f"input_key must be a string or null, got {key!r}")

    def state(self, node: dict[str, Any], where: str) -> None:
        if "state" not in node and "node" not in node:
            return  # format /1: no node state was saved
        state, node_id = node.get("state"), node.get("node")
        if not isinstance(state, list) or not all(isinstance(k, str) for k in state):
            raise self.fail(where, f"'state' must list state_dict keys, got {short(state)}")
        if not is_int(node_id) or node_id in self.node_ids:
            raise self.fail(where, f"'node' must be a distinct int id, got {node_id!r}")
        self.node_ids.add(node_id)

    def class_name(self, node: dict[str, Any], where: str) -> None:
        if not isinstance(node.get("class"), str):
            raise self.fail(where, f"a custom node needs a 'class' name, got {node.get('class')!r}")
