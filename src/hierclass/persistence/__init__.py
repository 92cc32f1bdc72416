"""Saving and loading hierarchies as a JSON spec plus tensors (no pickled code is executed).

A saved hierarchy is a directory holding ``hierarchy.json`` (the tree, the partitions, the
models' names and constructor arguments, the input range) and ``weights.pt`` (every model's
``state_dict`` once, and each node's own buffers and parameters). Loading reads the tensors
with ``torch.load(weights_only=True)``.

Loading treats both files as untrusted: the whole spec is checked before anything is built,
models named in the spec are first built on the ``meta`` device (no memory) and compared
with the tensors in the file, so a tampered ``num_classes=10**9`` is refused instead of
allocated; every problem is one ``ValueError`` naming the file and what is wrong.

One job per module: ``_format`` (file names, format tags, the node types a spec may name),
``_save`` (writing), ``_spec`` and ``_weights`` (checking each untrusted file), ``_models``
(rebuilding the saved models), ``_build`` (building the tree), ``_load`` (the order of it all).
"""

from __future__ import annotations

from hierclass.persistence._format import FORMAT, READABLE_FORMATS, SPEC_FILE, WEIGHTS_FILE
from hierclass.persistence._load import load_tree
from hierclass.persistence._save import save_hierarchy
from hierclass.persistence._weights import describe_load_error

__all__ = [
    "FORMAT",
    "READABLE_FORMATS",
    "SPEC_FILE",
    "WEIGHTS_FILE",
    "describe_load_error",
    "load_tree",
    "save_hierarchy",
]
