"""The GTSRB class -> shape table and the shape partition."""

from __future__ import annotations

import pytest

from hierclass.data import GTSRB_NAMES, SHAPES, gtsrb_shape_partition
from hierclass.data.gtsrb import GTSRB_CLASSES, GTSRB_SHAPE_IDS, GTSRB_SHAPE_OF


def test_table_covers_the_43_classes_in_order() -> None:
    assert [c for c, _, _ in GTSRB_CLASSES] == list(range(43))
    assert len(set(GTSRB_NAMES)) == 43
    assert set(GTSRB_SHAPE_OF) == set(SHAPES)
    assert [SHAPES[i] for i in GTSRB_SHAPE_IDS] == list(GTSRB_SHAPE_OF)


def test_unique_shapes_and_known_classes() -> None:
    assert GTSRB_NAMES[14] == "Stop" and GTSRB_SHAPE_OF[14] == "octagon"
    assert GTSRB_NAMES[13] == "Yield" and GTSRB_SHAPE_OF[13] == "inverted_triangle"
    assert GTSRB_NAMES[12] == "Priority road" and GTSRB_SHAPE_OF[12] == "diamond"
    # Every warning sign (11, 18..31) is a triangle; every speed limit a circle.
    assert [c for c in range(43) if GTSRB_SHAPE_OF[c] == "triangle"] == [11, *range(18, 32)]
    assert all(GTSRB_SHAPE_OF[c] == "circle" for c in (0, 1, 2, 3, 4, 5, 7, 8))


def test_partition() -> None:
    p = gtsrb_shape_partition()
    assert p.num_labels == 43 and p.names == SHAPES
    assert p.sizes == (25, 15, 1, 1, 1)
    for label in range(43):
        assert p.names[p.class_of(label)] == GTSRB_SHAPE_OF[label]


def test_partition_of_a_label_subset() -> None:
    p = gtsrb_shape_partition([14, 0, 18, 1])
    assert p.num_labels == 4
    assert p.names == ("circle", "triangle", "octagon")
    assert p.classes == ((1, 3), (2,), (0,))
    with pytest.raises(ValueError, match="0..42"):
        gtsrb_shape_partition([43])
    with pytest.raises(ValueError, match="distinct"):
        gtsrb_shape_partition([1, 1])
    with pytest.raises(TypeError, match="labels must be ints"):
        gtsrb_shape_partition([1.0])  # type: ignore[list-item]
