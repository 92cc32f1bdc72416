"""hierclass: robust hierarchical classification.

Invariances split the label set into disjoint equivalence classes; routers send each input to
its class, leaves predict inside it, and randomized-smoothing certificates grow because fewer
labels compete. See ``docs/`` (``docs/concepts/`` and ``docs/dev/contracts.md``) for the map
of the library and its soundness traps.
"""

from __future__ import annotations

from hierclass._lazy import lazy_exports

__version__ = "0.1.0"

# Public names and the module that defines each. Imported lazily so that `import hierclass`
# stays cheap and a notebook only pays for the parts it uses.
_EXPORTS = {
    "LabelPartition": "hierclass.partition",
    "Node": "hierclass.nodes",
    "Router": "hierclass.nodes",
    "Root": "hierclass.nodes",
    "Intermediate": "hierclass.nodes",
    "Leaf": "hierclass.nodes",
    "RenormalizedLeaf": "hierclass.nodes",
    "FlatVoteRouter": "hierclass.nodes",
    "RuleRouter": "hierclass.nodes",
    "Hierarchy": "hierclass.hierarchy",
    "Smooth": "hierclass.smoothing",
}

__all__ = sorted(_EXPORTS) + ["__version__"]

__getattr__, __dir__ = lazy_exports(__name__, globals(), _EXPORTS)
