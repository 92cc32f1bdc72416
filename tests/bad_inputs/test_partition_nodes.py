"""Bad inputs to LabelPartition, the nodes, batches and the input contract."""

import numpy as np
import pytest
import torch
from torch import nn

from hierclass import LabelPartition, Leaf, RenormalizedLeaf, Router, RuleRouter
from hierclass.batch import check_batch
from hierclass.inputs import check_input_range, check_inputs, check_logits
from hierclass.partition import NestedPartition

from ._battery import refused

P = LabelPartition({"round": [0, 2], "other": [1, 3]})


# -------------------------------------------------------------- LabelPartition
@pytest.mark.parametrize(
    "classes, num_labels, error, fragments",
    [
        ([[0, 1], [1, 2]], None, ValueError, ["overlap", r"1: \['class0', 'class1'\]"]),
        ([[0, 1], []], None, ValueError, [r"\['class1'\] are empty"]),
        ([[0, 1], [3]], None, ValueError, [r"labels \[2\] are in no class"]),
        ([[0, 1], [2]], 5, ValueError, [r"labels \[3, 4\] are in no class"]),
        ([[0, -1]], None, ValueError, [r"labels \[-1\] are outside"]),
        ([[0, 1.5]], None, TypeError, ["non-integer label 1.5"]),
        ([[0, True]], None, TypeError, ["non-integer label True"]),
        ([[0, "1"]], None, TypeError, ["non-integer label '1'"]),
        ("0123", None, TypeError, ["classes must be a mapping", "str"]),
        ([], None, ValueError, ["at least one class", "none"]),
        ([[0, 1]], 0, ValueError, ["num_labels must be >= 1", "0"]),
        ([[0, 1]], 2.0, TypeError, ["num_labels must be an int", "float"]),
        ([[0, 1]], 1, ValueError, [r"labels \[1\] are outside 0..0"]),
        ({"a": [0], 3: [1]}, None, TypeError, ["class names must be str", "3"]),
        ({"a": 0, "b": [1]}, None, TypeError, ["class 'a' must be a sequence", "int"]),
    ],
    ids=[
        "overlap",
        "empty-class",
        "gap",
        "num-labels-too-big",
        "negative",
        "float-label",
        "bool-label",
        "str-label",
        "classes-str",
        "no-classes",
        "num-labels-0",
        "num-labels-float",
        "num-labels-too-small",
        "int-name",
        "scalar-class",
    ],
)
def test_bad_partition(classes, num_labels, error, fragments):
    with refused(error, *fragments):
        LabelPartition(classes, num_labels=num_labels)


def test_a_num_labels_far_beyond_the_labels_is_refused_without_building_it():
    """The error names the first uncovered labels without materialising range(num_labels)."""
    import tracemalloc

    tracemalloc.start()
    try:
        with refused(ValueError, r"are in no class", r"9999998 in all"):
            LabelPartition([[0, 1]], num_labels=10**7)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 10**7, f"refusing it cost {peak / 1e6:.0f} MB"  # a set of 1e7 ints: ~500 MB


@pytest.mark.parametrize(
    "call, error, fragments",
    [
        (lambda: P.class_index("square"), ValueError, ["unknown class name 'square'", "round"]),
        (lambda: P.class_index(5), ValueError, [r"class id 5 out of range 0..1"]),
        (lambda: P.class_index(1.0), TypeError, ["int id or str name", "float"]),
        (lambda: P.class_of(7), ValueError, [r"label 7 outside 0..3"]),
        (lambda: P.class_of(torch.tensor([0, 9])), ValueError, [r"labels \[9\] outside"]),
        (lambda: P.class_of(torch.tensor([0.0])), TypeError, ["integer tensor", "float32"]),
        (lambda: P.class_of(np.array([0.5])), TypeError, ["integers", "float64"]),
        (lambda: P.class_of(True), TypeError, ["got bool"]),
        (lambda: P.to_local([1], "round"), ValueError, [r"labels \[1\] are not in class 'round'"]),
        (lambda: P.to_global(5, "round"), ValueError, [r"local index of class 'round' 5"]),
        (
            lambda: P.restrict("round", [[0], [1]]),
            ValueError,
            [r"\[1\] are not among", r"\[0, 2\]"],
        ),
        (lambda: P.restrict("round", [[0]]), ValueError, [r"\[2\] are in no class"]),
        (lambda: NestedPartition([[4]], labels=[4, 4]), ValueError, ["duplicates", r"\[4\]"]),
        (lambda: NestedPartition([[4]], labels=[]), ValueError, ["at least one label"]),
        (lambda: LabelPartition.from_dict({"classes": [[0]]}), ValueError, ["needs the keys"]),
        (lambda: LabelPartition.from_dict([[0]]), TypeError, ["must be a mapping", "list"]),
        (
            lambda: LabelPartition.from_dict({"classes": [[0]], "labels": "0"}),
            TypeError,
            ["labels must be a sequence of int labels", "str"],
        ),
    ],
    ids=[
        "unknown-name",
        "class-id-range",
        "class-id-float",
        "label-range",
        "labels-range",
        "float-tensor",
        "float-array",
        "bool-label",
        "to-local-wrong-class",
        "to-global-range",
        "restrict-outside",
        "restrict-gap",
        "nested-duplicates",
        "nested-empty",
        "from-dict-missing-key",
        "from-dict-list",
        "from-dict-labels-str",
    ],
)
def test_bad_partition_lookup(call, error, fragments):
    with refused(error, *fragments):
        call()


# -------------------------------------------------------------- nodes
@pytest.mark.parametrize(
    "make, error, fragments",
    [
        (
            lambda: Router(3, P),
            TypeError,
            ["Router model must be an nn.Module or a callable", "int"],
        ),
        (lambda: Router(nn.Linear(2, 2), [[0, 2], [1, 3]]), TypeError, ["LabelPartition", "list"]),
        (
            lambda: Router(nn.Linear(2, 2), P, input_key=3),
            TypeError,
            ["input_key must be a str", "int"],
        ),
        (lambda: Leaf(nn.Linear(2, 2), []), ValueError, ["at least one label", "none"]),
        (lambda: Leaf(nn.Linear(2, 2), [1, 1]), ValueError, [r"repeated: \[1\]"]),
        (lambda: Leaf(nn.Linear(2, 2), [-1, 0]), ValueError, ["labels must be >= 0", "-1"]),
        (lambda: Leaf(nn.Linear(2, 2), ["a", "b"]), TypeError, ["labels must be ints", "'a'"]),
        (lambda: Leaf(nn.Linear(2, 2), [0.0, 1.0]), TypeError, ["labels must be ints", "0.0"]),
        (lambda: Leaf(nn.Linear(2, 2), 3), TypeError, ["sequence of int", "int"]),
        (lambda: Leaf(nn.Linear(2, 2), "01"), TypeError, ["sequence of int", "str"]),
        (lambda: Leaf("model", [0, 1]), TypeError, ["Leaf model must be an nn.Module", "str"]),
        (lambda: RenormalizedLeaf(nn.Linear(2, 2), []), ValueError, ["at least one label"]),
    ],
    ids=[
        "router-int-model",
        "router-list-partition",
        "router-int-key",
        "leaf-no-labels",
        "leaf-repeated",
        "leaf-negative",
        "leaf-str-labels",
        "leaf-float-labels",
        "leaf-int-labels",
        "leaf-str",
        "leaf-str-model",
        "renorm-no-labels",
    ],
)
def test_bad_node_construction(make, error, fragments):
    with refused(error, *fragments):
        make()


def test_rule_returning_floats():
    r = RuleRouter(lambda m: m[:, 0], P, input_key="loc")
    with refused(TypeError, "integer tensor of class ids", "float32"):
        r({"loc": torch.zeros(2, 1)})


def test_rule_returning_a_list():
    r = RuleRouter(lambda m: [0, 1], P, input_key="loc")
    with refused(TypeError, "integer tensor of class ids", "list"):
        r({"loc": torch.zeros(2, 1)})


def test_rule_returning_unknown_class_ids():
    r = RuleRouter(lambda m: torch.tensor([0, 4]), P, input_key="loc")
    with refused(ValueError, r"class ids \[4\] outside 0..1"):
        r({"loc": torch.zeros(2, 1)})


def test_renormalized_leaf_over_labels_the_flat_model_lacks():
    leaf = RenormalizedLeaf(nn.Linear(2, 3), [1, 5])
    with refused(ValueError, r"labels \[1, 5\]", r"M > 5", r"\[2, 3\]"):
        leaf(torch.zeros(2, 2))


def test_leaf_model_returning_nan():
    leaf = Leaf(lambda x: torch.full((x.shape[0], 2), float("nan")), [0, 1])
    with refused(ValueError, "returned non-finite scores", "2 of 2 rows"):
        leaf(torch.zeros(2, 4))


def test_router_model_returning_inf():
    router = Router(lambda x: torch.tensor([[0.0, float("inf")]]), P)
    with refused(ValueError, "returned non-finite scores", "1 of 1 rows"):
        router(torch.zeros(1, 4))


def test_leaf_model_returning_one_dimension():
    leaf = Leaf(lambda x: torch.zeros(x.shape[0]), [0, 1])
    with refused(ValueError, r"expected scores of shape \[3, 2\]", r"got \[3\]"):
        leaf(torch.zeros(3, 4))


def test_leaf_on_a_half_precision_integer_input():
    leaf = Leaf(nn.Linear(4, 2), [0, 1])
    with refused(TypeError, "floating-point input", "uint8"):
        leaf(torch.zeros(3, 4, dtype=torch.uint8))


# -------------------------------------------------------------- batches and the contract
@pytest.mark.parametrize(
    "batch, error, fragments",
    [
        (torch.zeros(0, 3), ValueError, ["empty batch", "got 0"]),
        (torch.tensor(1.0), ValueError, ["leading batch dimension", "0-d"]),
        ({}, ValueError, ["at least one modality", "empty dict"]),
        (
            {"a": torch.zeros(2, 1), "b": 3},
            TypeError,
            ["modality 'b' must be a torch.Tensor", "int"],
        ),
        ({"a": torch.zeros(2, 1), "b": torch.tensor(3.0)}, ValueError, ["modality 'b'", "0-d"]),
        ((torch.zeros(2),), TypeError, ["tensor or a dict of tensors", "tuple"]),
        (torch.full((2, 3), float("-inf")), ValueError, ["must be finite", r"samples \[0, 1\]"]),
        (torch.full((2, 3, 4, 4), 2.0), ValueError, [r"must lie in \[0, 1\]", r"\[2, 2\]"]),
    ],
    ids=[
        "empty",
        "0-d",
        "empty-dict",
        "dict-int",
        "dict-0-d",
        "tuple",
        "neg-inf",
        "image-2",
    ],
)
def test_bad_batch(batch, error, fragments):
    with refused(error, *fragments):
        check_batch(batch)


@pytest.mark.parametrize(
    "value, fragments",
    [
        ((1, 0), ["low < high", r"\(1, 0\)"]),
        ((0, float("nan")), ["finite low < high"]),
        (("a", "b"), ["pair", r"\('a', 'b'\)"]),
        ({"image": (0, 1, 2)}, [r"input_range\['image'\] must be a pair"]),
    ],
    ids=["reversed", "nan", "strings", "dict-triple"],
)
def test_bad_input_range(value, fragments):
    with refused(ValueError, *fragments):
        check_input_range(value)


def test_a_declared_range_violated():
    with refused(ValueError, r"must lie in \[-1, 1\]", "declared", r"samples \[1\]"):
        check_inputs(torch.tensor([[0.5], [3.0]]), input_range=(-1, 1))


def test_non_finite_logits():
    with refused(ValueError, "returned non-finite scores", "1 of 2 rows"):
        check_logits(torch.tensor([[0.0, 1.0], [float("nan"), 0.0]]))
