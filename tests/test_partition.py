import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from hierclass.partition import LabelPartition, NestedPartition


def test_maps_labels_to_classes_and_back():
    p = LabelPartition({"even": [0, 2, 4], "odd": [3, 1]}, num_labels=5)
    assert p.names == ("even", "odd")
    assert p.classes == ((0, 2, 4), (1, 3))
    assert p.num_classes == 2 and p.num_labels == 5 and p.sizes == (3, 2)
    assert p.class_of(3) == 1
    assert p.class_of([0, 1, 4]) == [0, 1, 0]
    np.testing.assert_array_equal(p.class_of(np.array([2, 3])), [0, 1])
    assert torch.equal(p.class_of(torch.tensor([4, 1])), torch.tensor([0, 1]))
    assert p.labels_of("odd") == (1, 3) and p.labels_of(0) == (0, 2, 4)
    assert p.to_local(4, "even") == 2 and p.to_global(2, "even") == 4
    assert torch.equal(p.to_local(torch.tensor([1, 3]), 1), torch.tensor([0, 1]))
    assert p.class_index("odd") == 1


def test_sequence_classes_get_default_names_and_num_labels():
    p = LabelPartition([[1], [0, 2]])
    assert p.names == ("class0", "class1") and p.num_labels == 3


@pytest.mark.parametrize(
    "classes, num_labels, message",
    [
        ({"a": [0, 1], "b": [1, 2]}, 3, r"overlap.*1: \['a', 'b'\]"),
        ({"a": [0, 0], "b": [1]}, 2, r"overlap or repeat labels: \{0: \['a'\]\}"),
        ({"a": [0], "b": [2]}, 3, r"labels \[1\] are in no class"),
        ({"a": [0, 5], "b": [1]}, 3, r"labels \[5\] are outside 0..2"),
        ({"a": [0, -1], "b": [1]}, 2, r"labels \[-1\] are outside"),
        ({"a": [], "b": [0]}, 1, r"classes \['a'\] are empty"),
        ({}, None, "at least one class"),
    ],
)
def test_invalid_partitions_name_the_offending_labels(classes, num_labels, message):
    with pytest.raises(ValueError, match=message):
        LabelPartition(classes, num_labels)


@pytest.mark.parametrize("classes", [{"a": [0.5]}, {"a": ["x"]}, "abc", 3, {"a": [True]}])
def test_non_integer_labels_are_type_errors(classes):
    with pytest.raises(TypeError):
        LabelPartition(classes)


def test_lookup_errors():
    p = LabelPartition([[0, 1], [2]])
    with pytest.raises(ValueError, match=r"labels \[7\] outside 0..2"):
        p.class_of([0, 7])
    with pytest.raises(ValueError, match=r"labels \[2\] are not in class 'class0'"):
        p.to_local([0, 2], 0)
    with pytest.raises(ValueError, match="unknown class name 'zz'"):
        p.labels_of("zz")
    with pytest.raises(ValueError, match="class id 5 out of range"):
        p.labels_of(5)
    with pytest.raises(TypeError, match="integer tensor"):
        p.class_of(torch.tensor([0.0]))


def test_nested_partition_keeps_global_ids():
    p = LabelPartition({"round": [0, 2, 3, 5], "other": [1, 4]})
    q = p.restrict("round", {"low": [0, 2], "high": [3, 5]})
    assert isinstance(q, NestedPartition)
    assert q.labels == (0, 2, 3, 5)
    assert q.class_of([5, 0]) == [1, 0]
    with pytest.raises(ValueError, match=r"labels \[1\] are outside this partition"):
        q.class_of(1)
    with pytest.raises(ValueError, match=r"labels \[1\] are not among"):
        p.restrict("round", {"a": [0, 1], "b": [2, 3, 5]})
    with pytest.raises(ValueError, match=r"labels \[5\] are in no class"):
        p.restrict("round", {"a": [0, 2], "b": [3]})


def test_round_trip_through_dict():
    p = LabelPartition({"a": [0, 3], "b": [1, 2]})
    assert LabelPartition.from_dict(p.to_dict()) == p
    q = p.restrict("b", [[1], [2]])
    assert LabelPartition.from_dict(q.to_dict()) == q
    assert "LabelPartition({'a': [0, 3], 'b': [1, 2]}, num_labels=4)" == repr(p)


@settings(max_examples=50, deadline=None)
@given(
    st.integers(1, 12).flatmap(
        lambda n: st.tuples(st.just(n), st.lists(st.integers(0, 3), min_size=n, max_size=n))
    )
)
def test_any_assignment_is_a_valid_partition_and_round_trips(args):
    n, assignment = args
    groups = {}
    for label, g in enumerate(assignment):
        groups.setdefault(f"g{g}", []).append(label)
    p = LabelPartition(groups, num_labels=n)
    labels = torch.arange(n)
    cls = p.class_of(labels)
    for label in range(n):
        c = int(cls[label])
        local = p.to_local(label, c)
        assert p.to_global(local, c) == label
        assert label in p.labels_of(c)
    assert sum(p.sizes) == n
