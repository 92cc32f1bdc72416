"""The kinds a node on a path is certified as are a closed set, checked where a plan is made."""

from __future__ import annotations

import pytest

from hierclass.smoothing.certificates.path import NODE_KINDS
from hierclass.smoothing.hierarchy.plan import NodeRole


def test_the_kinds_are_the_three_certification_routes():
    assert NODE_KINDS == ("smoothed", "clean", "constant")


def test_a_node_plan_refuses_an_unknown_kind():
    """A misspelt kind must not slip through as a node certified some other way."""
    assert NodeRole((), object(), "smoothed").kind == "smoothed"
    with pytest.raises(ValueError, match="node kind must be one of"):
        NodeRole((), object(), "determinstic")
