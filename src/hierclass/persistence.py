"""Saving and loading hierarchies as a JSON spec plus tensors (no pickled code is executed).

A saved hierarchy is a directory holding ``hierarchy.json`` (the tree, the partitions, the
models' names and constructor arguments, the input range) and ``weights.pt`` (every model's
``state_dict`` once, and each node's own buffers and parameters). Loading reads the tensors
with ``torch.load(weights_only=True)``.

Loading treats both files as untrusted: the whole spec is checked before anything is built,
models named in the spec are first built on the ``meta`` device (no memory) and compared
with the tensors in the file, so a tampered ``num_classes=10**9`` is refused instead of
allocated; every problem is one ``ValueError`` naming the file and what is wrong.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from hierclass.inputs import check_input_range
from hierclass.nodes import Leaf, Node, Router, RuleRouter, SingletonLeaf
from hierclass.partition import LabelPartition

FORMAT = "hierclass.hierarchy/2"
#: Formats :func:`load_hierarchy` reads (``/1`` stored no node state of its own).
READABLE_FORMATS = ("hierclass.hierarchy/1", FORMAT)
SPEC_FILE = "hierarchy.json"
WEIGHTS_FILE = "weights.pt"

_MODEL_PREFIX = "model."  # a node's own state_dict keys that belong to its model


# ---------------------------------------------------------------------- errors
def describe_load_error(exc: BaseException) -> str:
    """The reason ``torch.load`` failed, without torch's advice to retry unsafely.

    torch's message for a file ``weights_only=True`` refuses suggests re-running with
    ``weights_only=False``, which executes whatever the file contains: a message from this
    library never passes that advice on.

    Examples
    --------
    >>> describe_load_error(RuntimeError(
    ...     "Weights only load failed. Re-running `torch.load` with `weights_only` set to "
    ...     "`False` will likely succeed. Please file an issue."))
    'Weights only load failed. Please file an issue.'
    """
    text = str(exc).strip() or type(exc).__name__
    kept = []
    for line in text.splitlines():
        # Drop every sentence that mentions turning weights_only off (torch words it several
        # ways across versions) and torch's pointers to its docs about doing so.
        sentences = re.split(r"(?<=[.!?])\s+", line.strip())
        sentences = [
            s
            for s in sentences
            if s
            and not re.search(r"weights_only|can still be loaded|trust the source", s, re.I)
            and not re.search(r"safe_globals|pytorch\.org/docs", s)
        ]
        if sentences:
            kept.append(" ".join(sentences))
    short = " ".join(kept).strip()
    if len(short) > 300:
        short = short[:297] + "..."
    return short or "the file is not a tensor archive torch.load(weights_only=True) accepts"


def _fail(file: Path, problem: str) -> ValueError:
    return ValueError(f"{file}: {problem}")


# ---------------------------------------------------------------------- saving
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
    >>> torch.equal(load_hierarchy(folder).predict(x), h.predict(x))
    True
    """
    path = Path(path)
    models: list[nn.Module] = []  # distinct models, shared ones once
    rules: list[str] = []
    node_state: dict[str, torch.Tensor] = {}
    counter = [0]

    def model_ref(model: Any, where: str) -> int | None:
        if model is None:
            return None
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

    def own_state(node: Node, entry: dict[str, Any]) -> None:
        """Store the node's state_dict minus its model's (saved once with the models)."""
        own = {k: v for k, v in node.state_dict().items() if not k.startswith(_MODEL_PREFIX)}
        node_id = counter[0]
        counter[0] += 1
        entry["node"] = node_id
        entry["state"] = sorted(own)
        for key, value in own.items():
            node_state[f"node{node_id}.{key}"] = value.detach().cpu()

    def kind_of(node: Node, custom: str) -> dict[str, Any]:
        cls = type(node)
        if cls.__module__.split(".")[0] == "hierclass":
            return {"type": cls.__name__}
        # A user's subclass is saved by name and rebuilt on load only from the node_classes
        # the caller passes: no code is imported by name.
        return {"type": custom, "class": cls.__qualname__}

    def tree(h: Any, where: str) -> dict[str, Any]:
        root = h.root
        if isinstance(root, RuleRouter):
            name = getattr(root.rule, "__name__", None) or f"rule{len(rules)}"
            rules.append(name)
            root_spec: dict[str, Any] = {"type": "RuleRouter", "rule": name}
        else:
            root_spec = kind_of(root, "CustomRouter")
            root_spec["model"] = model_ref(root.model, f"{where} router")
            own_state(root, root_spec)
        root_spec.update(input_key=root.input_key, partition=root.partition.to_dict())
        children = []
        for i, child in enumerate(h.children):
            if hasattr(child, "root"):
                children.append(tree(child, f"{where}/{i}"))
            elif isinstance(child, SingletonLeaf):
                children.append({"type": "SingletonLeaf", "labels": list(child.labels)})
            else:
                entry = kind_of(child, "CustomLeaf")
                entry.update(
                    labels=list(child.labels),
                    input_key=child.input_key,
                    model=model_ref(child.model, f"{where}/{i} leaf"),
                )
                own_state(child, entry)
                children.append(entry)
        return {
            "type": "Hierarchy",
            "input_range": _encode_range(getattr(h, "input_range", None)),
            "root": root_spec,
            "children": children,
        }

    spec = {"format": FORMAT, "tree": tree(hierarchy, "root")}
    spec["models"] = [_model_entry(i, m) for i, m in enumerate(models)]
    spec["rules"] = rules
    weights = {
        f"{i}.{key}": value.detach().cpu()
        for i, model in enumerate(models)
        for key, value in model.state_dict().items()
    }
    weights.update(node_state)
    path.mkdir(parents=True, exist_ok=True)
    (path / SPEC_FILE).write_text(json.dumps(spec, indent=2))
    torch.save(weights, path / WEIGHTS_FILE)
    return path


def _encode_range(input_range: Any) -> Any:
    """JSON for an ``input_range``: null, ``[lo, hi]``, or ``[{"key": k, "range": ...}]``."""
    if input_range is None or not isinstance(input_range, Mapping):
        return None if input_range is None else list(input_range)
    return [{"key": k, "range": None if v is None else list(v)} for k, v in input_range.items()]


def _decode_range(value: Any) -> Any:
    if isinstance(value, list) and value and all(isinstance(v, Mapping) for v in value):
        pairs = {}
        for item in value:
            if set(item) != {"key", "range"}:
                raise ValueError(f"input_range entries are {{key, range}}, got {item!r}")
            pairs[item["key"]] = item["range"]
        return check_input_range(pairs)
    return check_input_range(value)


def _model_entry(index: int, model: nn.Module) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "index": index,
        "class": f"{type(model).__module__}.{type(model).__qualname__}",
        "spec": None,
    }
    from hierclass.models import model_spec

    try:
        entry["spec"] = model_spec(model)
    except (TypeError, ValueError, AttributeError):
        entry["spec"] = None  # not a hierclass model: load needs a model_factory
    return entry


# ---------------------------------------------------------------------- loading
def load_hierarchy(
    path: str | Path,
    model_factory: Any = None,
    rules: Mapping[str, Any] | None = None,
    map_location: str | torch.device = "cpu",
    node_classes: Mapping[str, Any] | None = None,
) -> Any:
    """Rebuild a hierarchy written by :func:`save_hierarchy` (see :meth:`Hierarchy.load`).

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
    >>> h = Hierarchy(Router(nn.Linear(3, 2), LabelPartition([[0], [1]])), [None, None])
    >>> folder = save_hierarchy(h, tempfile.mkdtemp())
    >>> loaded = load_hierarchy(folder, model_factory=lambda entry: nn.Linear(3, 2))
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
    spec = _read_spec(spec_path)
    rules = _check_mapping(rules, "rules")
    node_classes = _check_mapping(node_classes, "node_classes")
    missing = [name for name in spec["rules"] if name not in rules]
    if missing:
        raise ValueError(
            f"the hierarchy uses rules {missing}; pass them as rules={{name: callable}}"
        )
    if not weights_path.is_file():
        raise FileNotFoundError(f"no {WEIGHTS_FILE} in {path}: expected a directory from save()")
    weights = _read_weights(weights_path, map_location)
    model_states, node_states = _split_weights(weights, spec, weights_path)
    models = _build_models(spec["models"], model_states, model_factory, weights_path)
    for model in models:
        model.to(map_location)
        model.eval()
    builder = _Builder(spec_path, weights_path, models, node_states, rules, node_classes)
    hierarchy = builder.tree(spec["tree"])
    stray = sorted(set(node_states) - builder.used)
    if stray:
        raise _fail(weights_path, f"holds state for nodes {stray} that {SPEC_FILE} does not have")
    return hierarchy


def _check_mapping(value: Any, name: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise TypeError(f"{name} must be a mapping name -> callable, got {type(value).__name__}")
    return dict(value)


def _read_spec(spec_path: Path) -> dict[str, Any]:
    try:
        spec = json.loads(spec_path.read_text())
    except UnicodeDecodeError:
        raise _fail(spec_path, "is not a text file (expected the JSON written by save())") from None
    except json.JSONDecodeError as exc:
        raise _fail(
            spec_path, f"is not valid JSON ({exc.msg} at line {exc.lineno}, column {exc.colno})"
        ) from None
    if not isinstance(spec, dict):
        raise _fail(spec_path, f"holds a JSON {type(spec).__name__}, expected an object")
    if spec.get("format") not in READABLE_FORMATS:
        raise _fail(
            spec_path, f"has format {spec.get('format')!r}, expected one of {READABLE_FORMATS}"
        )
    for key, kind in (("tree", dict), ("models", list), ("rules", list)):
        if key not in spec:
            raise _fail(spec_path, f"has no {key!r} entry")
        if not isinstance(spec[key], kind):
            raise _fail(
                spec_path,
                f"{key!r} must be a JSON {'object' if kind is dict else 'array'}, got "
                f"{type(spec[key]).__name__}",
            )
    if not all(isinstance(r, str) for r in spec["rules"]):
        raise _fail(spec_path, f"'rules' must list rule names, got {spec['rules']!r}")
    for i, entry in enumerate(spec["models"]):
        _check_model_entry(entry, i, spec_path)
    _SpecChecker(spec_path, len(spec["models"]), spec["rules"]).hierarchy(
        spec["tree"], "tree", parent_labels=None
    )
    return spec


def _check_model_entry(entry: Any, i: int, spec_path: Path) -> None:
    where = f"models[{i}]"
    if not isinstance(entry, dict):
        raise _fail(spec_path, f"{where} must be an object, got {type(entry).__name__}")
    if entry.get("index") != i or isinstance(entry.get("index"), bool):
        raise _fail(spec_path, f"{where} has index {entry.get('index')!r}, expected {i}")
    if not isinstance(entry.get("class"), str):
        raise _fail(spec_path, f"{where} needs a 'class' string, got {entry.get('class')!r}")
    model = entry.get("spec")
    if model is None:
        return
    if (
        not isinstance(model, dict)
        or not isinstance(model.get("name"), str)
        or not isinstance(model.get("kwargs", {}), dict)
    ):
        raise _fail(
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
        return _fail(self.file, f"{where}: {problem}")

    def hierarchy(self, node: Any, where: str, parent_labels: list[int] | None) -> None:
        if not isinstance(node, dict) or node.get("type") != "Hierarchy":
            raise self.fail(where, f"expected a Hierarchy object, got {_short(node)}")
        for key, kind in (("root", dict), ("children", list)):
            if not isinstance(node.get(key), kind):
                raise self.fail(
                    where, f"{key!r} must be a JSON {kind.__name__}, got {_short(node.get(key))}"
                )
        try:
            _decode_range(node.get("input_range"))
        except (TypeError, ValueError) as exc:
            raise self.fail(where, f"bad input_range: {exc}") from None
        root = node["root"]
        labels = self.partition(root.get("partition"), f"{where}.root.partition")
        if parent_labels is None and labels != list(range(len(labels))):
            raise self.fail(
                where, f"the root's labels must be 0..{len(labels) - 1}, got {_short(labels)}"
            )
        if parent_labels is not None and sorted(labels) != sorted(parent_labels):
            raise self.fail(
                where,
                f"the router covers labels {_short(sorted(labels))} but its "
                f"class is {_short(sorted(parent_labels))}",
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
                _library_class(kind, Router, self.file, f"{where}.root")
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
            raise self.fail(where, f"expected an object, got {_short(child)}")
        kind = child.get("type")
        if kind == "Hierarchy":
            self.hierarchy(child, where, labels)
            return
        got = child.get("labels")
        if not isinstance(got, list) or sorted(got) != sorted(labels):
            raise self.fail(
                where, f"labels {_short(got)} differ from the class's labels {_short(labels)}"
            )
        if kind == "SingletonLeaf":
            if len(labels) != 1:
                raise self.fail(where, f"a SingletonLeaf has one label, got {_short(labels)}")
            return
        if kind == "CustomLeaf":
            self.class_name(child, where)
        else:
            _library_class(kind, Leaf, self.file, where)
        self.check_key(child, where)
        self.model_index(child.get("model"), where, allow_none=kind == "CustomLeaf")
        self.state(child, where)

    def partition(self, value: Any, where: str) -> list[int]:
        if not isinstance(value, dict):
            raise self.fail(where, f"expected an object, got {_short(value)}")
        labels, classes = value.get("labels"), value.get("classes")
        if not isinstance(labels, list) or not all(_is_int(v) for v in labels):
            raise self.fail(where, f"'labels' must be a list of ints, got {_short(labels)}")
        groups = list(classes.values()) if isinstance(classes, dict) else classes
        if not isinstance(groups, list) or not all(
            isinstance(g, list) and all(_is_int(v) for v in g) for g in groups
        ):
            raise self.fail(
                where, f"'classes' must map names to lists of int labels, got {_short(classes)}"
            )
        flat = sorted(v for g in groups for v in g)
        if flat != sorted(labels):
            raise self.fail(
                where,
                f"the classes hold labels {_short(flat)} but 'labels' is {_short(sorted(labels))}",
            )
        return labels

    def model_index(self, value: Any, where: str, allow_none: bool) -> None:
        if value is None and allow_none:
            return
        if not _is_int(value) or not 0 <= value < self.num_models:
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
            raise self.fail(where, f"'state' must list state_dict keys, got {_short(state)}")
        if not _is_int(node_id) or node_id in self.node_ids:
            raise self.fail(where, f"'node' must be a distinct int id, got {node_id!r}")
        self.node_ids.add(node_id)

    def class_name(self, node: dict[str, Any], where: str) -> None:
        if not isinstance(node.get("class"), str):
            raise self.fail(where, f"a custom node needs a 'class' name, got {node.get('class')!r}")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _short(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _read_weights(weights_path: Path, map_location: Any) -> dict[str, torch.Tensor]:
    try:
        weights = torch.load(weights_path, map_location=map_location, weights_only=True)
    except Exception as exc:  # noqa: BLE001 - torch raises many types for a bad file
        raise _fail(
            weights_path,
            f"cannot be read as saved tensors ({describe_load_error(exc)}); expected the "
            f"{WEIGHTS_FILE} written by save()",
        ) from None
    if not isinstance(weights, dict):
        raise _fail(weights_path, f"holds a {type(weights).__name__}, expected a dict of tensors")
    bad = [k for k, v in weights.items() if not isinstance(k, str) or not torch.is_tensor(v)]
    if bad:
        raise _fail(weights_path, f"entries {_short(bad)} are not name -> tensor pairs")
    return weights


def _split_weights(
    weights: dict[str, torch.Tensor], spec: dict[str, Any], weights_path: Path
) -> tuple[list[dict[str, torch.Tensor]], dict[int, dict[str, torch.Tensor]]]:
    models: list[dict[str, torch.Tensor]] = [{} for _ in spec["models"]]
    nodes: dict[int, dict[str, torch.Tensor]] = {}
    stray = []
    for key, value in weights.items():
        head, _, rest = key.partition(".")
        if head.isdigit() and int(head) < len(models) and rest:
            models[int(head)][rest] = value
        elif head.startswith("node") and head[4:].isdigit() and rest:
            nodes.setdefault(int(head[4:]), {})[rest] = value
        else:
            stray.append(key)
    if stray:
        raise _fail(
            weights_path, f"holds tensors {_short(stray)} that belong to no saved model or node"
        )
    return models, nodes


def _build_models(
    entries: list[dict[str, Any]],
    states: list[dict[str, torch.Tensor]],
    model_factory: Any,
    weights_path: Path,
) -> list[nn.Module]:
    by_name = [i for i, e in enumerate(entries) if e.get("spec")]
    if isinstance(model_factory, Mapping):
        wrong = [k for k in model_factory if not _is_int(k) or not 0 <= k < len(entries)]
        if wrong:
            raise ValueError(
                f"model_factory keys {wrong} are not model indices (0..{len(entries) - 1})"
            )
        named = sorted(set(model_factory) & set(by_name))
        if named:
            raise ValueError(
                f"model_factory has entries for models {named}, which are rebuilt by name "
                f"from hierclass.models; give only the others"
            )
    elif model_factory is not None and not callable(model_factory):
        raise TypeError(
            f"model_factory must be a callable(entry) or a mapping index -> nn.Module, got "
            f"{type(model_factory).__name__}"
        )
    models = []
    for i, entry in enumerate(entries):
        where = f"model {i} ({entry['class']})"
        if entry.get("spec"):
            model = _build_named(entry["spec"], states[i], where, weights_path)
        else:
            model = _from_factory(entry, model_factory, where)
        try:
            model.load_state_dict(states[i])
        except RuntimeError as exc:
            raise _fail(
                weights_path, f"the tensors of {where} do not fit it: {_state_mismatch(exc)}"
            ) from None
        models.append(model)
    return models


def _from_factory(entry: dict[str, Any], model_factory: Any, where: str) -> nn.Module:
    if model_factory is None or (
        isinstance(model_factory, Mapping) and entry["index"] not in model_factory
    ):
        raise ValueError(
            f"{where} is not a hierclass model; pass model_factory=callable(entry) or "
            f"{{index: module}} to rebuild it"
        )
    if isinstance(model_factory, Mapping):
        model = model_factory[entry["index"]]
    else:
        model = model_factory(dict(entry))
    if not isinstance(model, nn.Module):
        raise TypeError(
            f"model_factory gave {type(model).__name__} for {where}, expected an nn.Module"
        )
    return model


def _build_named(
    spec: dict[str, Any], state: dict[str, torch.Tensor], where: str, weights_path: Path
) -> nn.Module:
    """Build a ``hierclass.models`` model, after checking on ``meta`` that it fits the file."""
    from hierclass.models import available_models, build

    name, kwargs = spec["name"], spec.get("kwargs", {})
    if name not in available_models():
        raise ValueError(
            f"{where}: model name {name!r} is not registered in hierclass.models (known: "
            f"{available_models()}); register it with hierclass.models.register_model first"
        )
    try:
        with torch.device("meta"):
            shell = build(name, **kwargs)
    except (TypeError, ValueError) as exc:
        raise _fail(
            weights_path.with_name(SPEC_FILE),
            f"{where}: spec {_short(spec)} cannot be built ({exc})",
        ) from None
    except (NotImplementedError, RuntimeError):
        shell = None  # a model whose constructor cannot run on meta: the load check remains
    if shell is not None:
        expected = {k: tuple(v.shape) for k, v in shell.state_dict().items()}
        found = {k: tuple(v.shape) for k, v in state.items()}
        if expected != found:
            raise _fail(
                weights_path,
                f"{where} built from {_short(spec)} does not match the saved tensors: "
                f"{_shape_diff(expected, found)}",
            )
    return build(name, **kwargs)


def _shape_diff(expected: dict[str, tuple], found: dict[str, tuple]) -> str:
    missing = sorted(set(expected) - set(found))
    extra = sorted(set(found) - set(expected))
    shapes = [k for k in expected if k in found and expected[k] != found[k]]
    parts = []
    if missing:
        parts.append(f"missing {_short(missing)}")
    if extra:
        parts.append(f"unexpected {_short(extra)}")
    if shapes:
        k = shapes[0]
        parts.append(
            f"{k} has shape {list(found[k])} in the file but {list(expected[k])} in "
            f"the model ({len(shapes)} such)"
        )
    return "; ".join(parts)


def _state_mismatch(exc: RuntimeError) -> str:
    text = str(exc).replace("\n", " ").replace("\t", "")
    text = re.sub(r"\s+", " ", text)
    return text if len(text) <= 300 else text[:297] + "..."


class _Builder:
    """Builds the nodes and hierarchies of a checked spec."""

    def __init__(self, spec_path, weights_path, models, node_states, rules, node_classes):
        self.spec_path = spec_path
        self.weights_path = weights_path
        self.models = models
        self.node_states = node_states
        self.rules = rules
        self.node_classes = node_classes
        self.used: set[int] = set()

    def tree(self, node: dict[str, Any], where: str = "tree") -> Any:
        from hierclass.hierarchy import Hierarchy

        root = node["root"]
        try:
            partition = LabelPartition.from_dict(root["partition"])
        except (TypeError, ValueError) as exc:
            raise _fail(self.spec_path, f"{where}.root.partition: {exc}") from None
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
            return Hierarchy(router, children, input_range=_decode_range(node.get("input_range")))
        except (TypeError, ValueError) as exc:
            raise _fail(self.spec_path, f"{where}: {exc}") from None

    def router(self, root: dict[str, Any], partition: LabelPartition, where: str) -> Router:
        kind, key = root["type"], root.get("input_key")
        if kind == "RuleRouter":
            return RuleRouter(self.rules[root["rule"]], partition, key)
        model = self.models[root["model"]]
        if kind == "CustomRouter":
            make = self.user_class(root, where, "router")
            node = make(model, partition, key)
            if not isinstance(node, Router):
                raise TypeError(
                    f"node_classes[{root['class']!r}] made a "
                    f"{type(node).__name__}, expected a Router"
                )
        else:
            node = _library_class(kind, Router, self.spec_path, where)(model, partition, key)
        self.restore(node, root, where)
        return node

    def leaf(self, child: dict[str, Any], where: str) -> Leaf:
        kind, key, labels = child["type"], child.get("input_key"), child["labels"]
        model = None if child.get("model") is None else self.models[child["model"]]
        if kind == "CustomLeaf":
            make = self.user_class(child, where, "leaf")
            node = make(model, labels, key)
            if not isinstance(node, Leaf):
                raise TypeError(
                    f"node_classes[{child['class']!r}] made a "
                    f"{type(node).__name__}, expected a Leaf"
                )
        else:
            node = _library_class(kind, Leaf, self.spec_path, where)(model, labels, key)
        self.restore(node, child, where)
        return node

    def user_class(self, entry: dict[str, Any], where: str, role: str) -> Any:
        qualname = entry["class"]
        short = qualname.rsplit(".", 1)[-1]
        make = self.node_classes.get(qualname, self.node_classes.get(short))
        if make is None:
            args = "model, labels, input_key" if role == "leaf" else "model, partition, input_key"
            raise ValueError(
                f"the hierarchy has a custom {role} class {short!r} at {where}; pass "
                f"node_classes={{{short!r}: cls}} (the class, or a callable({args}) that "
                f"builds it) to rebuild it"
            )
        if not callable(make):
            raise TypeError(
                f"node_classes[{short!r}] must be a class or callable, got {type(make).__name__}"
            )
        return make

    def restore(self, node: Node, entry: dict[str, Any], where: str) -> None:
        """Load the node's own buffers and parameters; its model's were loaded already."""
        expected = sorted(k for k in node.state_dict() if not k.startswith(_MODEL_PREFIX))
        if "node" not in entry:  # format /1 saved no node state
            if expected:
                raise _fail(
                    self.spec_path,
                    f"{where}: {type(node).__name__} has its own state {expected}, which this "
                    f"file (format hierclass.hierarchy/1) did not save; save it again",
                )
            return
        self.used.add(entry["node"])
        state = self.node_states.get(entry["node"], {})
        if sorted(state) != sorted(entry["state"]):
            raise _fail(
                self.weights_path,
                f"the tensors of node {where} are "
                f"{_short(sorted(state))} but {SPEC_FILE} lists {entry['state']}",
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
            raise _fail(
                self.weights_path,
                f"the tensors of node {where} do not fit "
                f"{type(node).__name__}: {_state_mismatch(exc)}",
            ) from None


def _library_class(name: str, base: type, spec_path: Path, where: str) -> type:
    """The hierclass node class called ``name`` (``base`` or one of its subclasses)."""
    if not isinstance(name, str):
        raise _fail(spec_path, f"{where}: unknown node type {name!r}")
    found = [base]
    i = 0
    while i < len(found):
        found.extend(found[i].__subclasses__())
        i += 1
    for cls in found:
        if cls.__name__ == name and cls.__module__.split(".")[0] == "hierclass":
            if cls in (RuleRouter, SingletonLeaf):
                break
            return cls
    raise _fail(spec_path, f"{where}: unknown node type {name!r}")
