"""What a saved hierarchy's files are called and hold: the format tags, the JSON encoding of an
``input_range``, the node types a spec may name, and how a problem with a file is worded."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from hierclass.inputs import check_input_range
from hierclass.nodes import RuleRouter, SingletonLeaf

FORMAT = "hierclass.hierarchy/2"
#: Formats :func:`~hierclass.persistence.load_tree` reads (``/1`` stored no node state).
READABLE_FORMATS = ("hierclass.hierarchy/1", FORMAT)
SPEC_FILE = "hierarchy.json"
WEIGHTS_FILE = "weights.pt"

MODEL_PREFIX = "model."  # a node's own state_dict keys that belong to its model


def fail(file: Path, problem: str) -> ValueError:
    """The one error a bad file raises: the file, then what is wrong with it."""
    return ValueError(f"{file}: {problem}")


def is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def short(value: Any, limit: int = 80) -> str:
    """``repr(value)`` cut to ``limit`` characters, for messages about untrusted content."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def encode_range(input_range: Any) -> Any:
    """JSON for an ``input_range``: null, ``[lo, hi]``, or ``[{"key": k, "range": ...}]``."""
    if input_range is None or not isinstance(input_range, Mapping):
        return None if input_range is None else list(input_range)
    return [{"key": k, "range": None if v is None else list(v)} for k, v in input_range.items()]


def decode_range(value: Any) -> Any:
    """The ``input_range`` that :func:`encode_range` wrote, validated as the library's own."""
    if isinstance(value, list) and value and all(isinstance(v, Mapping) for v in value):
        pairs = {}
        for item in value:
            if set(item) != {"key", "range"}:
                raise ValueError(f"input_range entries are {{key, range}}, got {item!r}")
            pairs[item["key"]] = item["range"]
        return check_input_range(pairs)
    return check_input_range(value)


def library_class(name: Any, base: type, spec_path: Path, where: str) -> type:
    """The hierclass node class called ``name`` (``base`` or one of its subclasses).

    Only classes defined in hierclass are found, so a spec never names code to import; the
    rule router and the singleton leaf have entries of their own and are not found here.
    """
    if not isinstance(name, str):
        raise fail(spec_path, f"{where}: unknown node type {name!r}")
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
    raise fail(spec_path, f"{where}: unknown node type {name!r}")
