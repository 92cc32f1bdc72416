"""Bad inputs to a Hierarchy: values, ranges, batch shapes, node outputs, structure."""

import pytest
import torch
from torch import nn

from hierclass import Hierarchy, LabelPartition, Leaf, RenormalizedLeaf, Router
from hierclass.models import SmallCNN

from ._battery import refused

P = LabelPartition({"a": [0, 1], "b": [2, 3], "c": [4]})


def declared(input_range) -> dict:
    """``input_range=`` only when given (so the battery also runs against older code)."""
    return {} if input_range is None else {"input_range": input_range}


def image_tree(input_range=None) -> Hierarchy:
    torch.manual_seed(0)
    flat = SmallCNN(5, image_size=8).eval()
    return Hierarchy(
        Router(SmallCNN(3, image_size=8).eval(), P),
        [RenormalizedLeaf(flat, [0, 1]), RenormalizedLeaf(flat, [2, 3]), None],
        **declared(input_range),
    )


def tabular_tree(input_range=None, key=None) -> Hierarchy:
    torch.manual_seed(0)
    return Hierarchy(
        Router(nn.Linear(6, 3), P, input_key=key),
        [Leaf(nn.Linear(6, 2), [0, 1], key), Leaf(nn.Linear(6, 2), [2, 3], key), None],
        **declared(input_range),
    )


def images(value=None, n=4):
    x = torch.rand(n, 1, 8, 8)
    if value is not None:
        x[1, 0, 2, 3] = value
    return x


CALLS = {
    "predict": lambda h, x: h.predict(x),
    "forward": lambda h, x: h(x),
    "route": lambda h, x: h.route(x),
    "predict_with_route": lambda h, x: h.predict_with_route(x),
    "soft_forward": lambda h, x: h.soft_forward(x),
    "node_outputs": lambda h, x: h.node_outputs(x),
}


# -------------------------------------------------------------- non-finite inputs
@pytest.mark.parametrize("call", sorted(CALLS))
@pytest.mark.parametrize("value", [float("inf"), float("-inf"), float("nan")], ids=str)
def test_non_finite_image_is_refused(call, value):
    with refused(ValueError, "must be finite", r"non-finite values", r"samples \[1\]"):
        CALLS[call](image_tree(), images(value))


@pytest.mark.parametrize("value", [float("inf"), float("nan")], ids=str)
def test_non_finite_tabular_input_is_refused(value):
    x = torch.randn(3, 6)
    x[2, 5] = value
    with refused(ValueError, "must be finite", r"samples \[2\]"):
        tabular_tree().predict(x)


def test_non_finite_value_in_an_unread_modality_is_refused():
    x = {"image": torch.rand(2, 6), "audio": torch.tensor([[0.0], [float("inf")]])}
    with refused(ValueError, "modality 'audio' must be finite"):
        tabular_tree(key="image").predict(x)


# -------------------------------------------------------------- the range in force
@pytest.mark.parametrize("call", ["predict", "route", "predict_with_route", "node_outputs"])
def test_float_images_in_0_255_are_refused(call):
    x = images() * 255
    with refused(ValueError, r"must lie in \[0, 1\]", "default for image-shaped", r"got values in"):
        CALLS[call](image_tree(), x)


@pytest.mark.parametrize("value", [1.5, -0.1, 1.01], ids=str)
def test_image_values_just_outside_0_1_are_refused(value):
    with refused(ValueError, r"must lie in \[0, 1\]", str(value)[:4], r"samples \[1\]"):
        image_tree().predict(images(value))


def test_normalised_images_are_refused():
    x = (images() - 0.1307) / 0.3081  # normalised outside the model: Cohen users' mistake
    with refused(ValueError, r"must lie in \[0, 1\]", r"got values in \[-0.42"):
        image_tree().predict(x)


def test_forward_is_the_model_smoothing_evaluates_on_noisy_copies():
    """Noisy copies leave [0, 1] by design: forward takes them, predict does not."""
    noisy = images() + 0.5 * torch.randn(4, 1, 8, 8)
    h = image_tree()
    assert torch.allclose(h(noisy).sum(1), torch.ones(4))
    with refused(ValueError, r"must lie in \[0, 1\]"):
        h.predict(noisy)


def test_declared_range_is_enforced():
    h = image_tree(input_range=(0, 255))
    assert h.predict(images() * 255).shape == (4,)  # in range: accepted
    with refused(ValueError, r"must lie in \[0, 255\]", "declared input_range", "300"):
        h.predict(images(300.0))


def test_declared_range_on_tabular_input_is_enforced():
    h = tabular_tree(input_range=(-1, 1))
    with refused(ValueError, r"must lie in \[-1, 1\]", "declared", r"2\.5"):
        h.predict(torch.full((2, 6), 2.5))


def test_declared_range_per_modality_is_enforced():
    h = tabular_tree(input_range={"image": (0, 1), "lidar": (-50, 50)}, key="image")
    x = {"image": torch.rand(2, 6), "lidar": torch.full((2, 16, 3), 80.0)}
    with refused(ValueError, r"modality 'lidar' must lie in \[-50, 50\]", "80"):
        h.predict(x)


def test_image_modality_of_a_dict_batch_defaults_to_0_1():
    h = Hierarchy(
        Router(SmallCNN(5, image_size=8), LabelPartition([[0, 1, 2, 3, 4]]), input_key="cam"),
        [Leaf(SmallCNN(5, image_size=8), [0, 1, 2, 3, 4], "cam")],
    )
    with refused(ValueError, r"modality 'cam' must lie in \[0, 1\]", "255"):
        h.predict({"cam": torch.full((2, 1, 8, 8), 255.0)})


@pytest.mark.parametrize(
    "bad, fragment",
    [
        ((1, 0), "low < high"),
        ((0, float("inf")), "finite low < high"),
        ("0..1", "pair"),
        ((0, 1, 2), "pair"),
        (5, "pair"),
        ({"image": (2, 1)}, r"input_range\['image'\]"),
        ({"image": "wide"}, r"input_range\['image'\] must be a pair"),
    ],
    ids=["reversed", "infinite", "string", "triple", "scalar", "dict-reversed", "dict-string"],
)
def test_bad_input_range_is_refused_at_construction(bad, fragment):
    with refused(ValueError, fragment, "got"):
        image_tree(input_range=bad)


# -------------------------------------------------------------- batch shapes and types
def test_empty_batch():
    with refused(ValueError, "empty batch", "got 0"):
        image_tree().predict(torch.zeros(0, 1, 8, 8))


def test_zero_dim_tensor():
    with refused(ValueError, "leading batch dimension", "0-d"):
        tabular_tree().predict(torch.tensor(0.5))


def test_list_instead_of_tensor():
    with refused(TypeError, "tensor or a dict of tensors", "list"):
        tabular_tree().predict([[0.0] * 6])


def test_numpy_array_instead_of_tensor():
    import numpy as np

    with refused(TypeError, "tensor or a dict of tensors", "ndarray"):
        tabular_tree().predict(np.zeros((2, 6), dtype=np.float32))


def test_empty_dict_batch():
    with refused(ValueError, "at least one modality", "empty dict"):
        tabular_tree(key="image").predict({})


def test_dict_modalities_disagree_on_batch_size():
    with refused(ValueError, "disagree on the batch size", r"'image': 2", r"'lidar': 3"):
        tabular_tree(key="image").predict({"image": torch.rand(2, 6), "lidar": torch.rand(3, 4)})


def test_dict_modality_that_is_not_a_tensor():
    with refused(TypeError, "modality 'lidar' must be a torch.Tensor", "list"):
        tabular_tree(key="image").predict({"image": torch.rand(2, 6), "lidar": [1, 2]})


def test_missing_modality():
    with refused(ValueError, "reads modality 'image'", "missing", r"keys: \['cam'\]"):
        tabular_tree(key="image").predict({"cam": torch.rand(2, 6)})


def test_plain_tensor_to_a_tree_that_reads_a_modality():
    with refused(ValueError, "reads modality 'image'", "plain tensor"):
        tabular_tree(key="image").predict(torch.rand(2, 6))


def test_dict_to_a_tree_that_reads_a_plain_tensor():
    with refused(TypeError, "reads a plain tensor", r"keys \['image'\]"):
        tabular_tree().predict({"image": torch.rand(2, 6)})


def test_integer_input():
    with refused(TypeError, "floating-point input", "int64"):
        tabular_tree().predict(torch.ones(2, 6, dtype=torch.long))


# -------------------------------------------------------------- what the nodes return
class Returns(nn.Module):
    def __init__(self, make):
        super().__init__()
        self.make = make

    def forward(self, x):
        return self.make(x)


def tree_with_leaf_model(make) -> Hierarchy:
    torch.manual_seed(0)
    return Hierarchy(
        Router(Returns(lambda x: torch.stack([x[:, 0], -x[:, 0], -x[:, 0] - 9], 1)), P),
        [Leaf(Returns(make), [0, 1]), Leaf(nn.Linear(6, 2), [2, 3]), None],
    )


@pytest.mark.parametrize(
    "make",
    [
        lambda x: torch.full((x.shape[0], 2), float("nan")),
        lambda x: torch.full((x.shape[0], 2), float("inf")),
        lambda x: torch.stack([x[:, 0], x[:, 0] / 0.0], 1),
    ],
    ids=["nan", "inf", "division-by-zero"],
)
def test_non_finite_leaf_scores_are_refused(make):
    h = tree_with_leaf_model(make)
    with refused(ValueError, "Leaf's model returned non-finite scores", r"rows"):
        h.predict(torch.ones(3, 6))


def test_non_finite_router_scores_are_refused():
    h = Hierarchy(
        Router(Returns(lambda x: torch.full((x.shape[0], 3), float("nan"))), P),
        [Leaf(nn.Linear(6, 2), [0, 1]), Leaf(nn.Linear(6, 2), [2, 3]), None],
    )
    with refused(ValueError, "Router's model returned non-finite scores", "3 of 3 rows"):
        h(torch.ones(3, 6))


def test_leaf_scores_of_the_wrong_width():
    h = tree_with_leaf_model(lambda x: torch.zeros(x.shape[0], 5))
    with refused(ValueError, r"expected scores of shape \[3, 2\]", r"got \[3, 5\]"):
        h.predict(torch.ones(3, 6))


def test_leaf_model_returning_a_list():
    h = tree_with_leaf_model(lambda x: [[0.0, 1.0]] * x.shape[0])
    with refused(TypeError, "must return a tensor", "list"):
        h.predict(torch.ones(3, 6))


# -------------------------------------------------------------- training sets and paths
def test_node_dataset_float_labels():
    with refused(TypeError, "LongTensor of labels", "float32"):
        tabular_tree().node_dataset(torch.rand(3, 6), torch.tensor([0.0, 1.0, 2.0]))


def test_node_dataset_label_count_mismatch():
    with refused(ValueError, r"shape \[3\]", r"got \[2\]"):
        tabular_tree().node_dataset(torch.rand(3, 6), torch.tensor([0, 1]))


def test_node_dataset_label_outside_the_tree():
    with refused(ValueError, r"labels \[7\] outside 0..4"):
        tabular_tree().node_dataset(torch.rand(2, 6), torch.tensor([0, 7]))


def test_node_at_class_id_out_of_range():
    with refused(ValueError, r"class id 5 outside 0..2"):
        tabular_tree().node_at((5,))


def test_node_at_below_a_leaf():
    with refused(ValueError, "goes below a leaf"):
        tabular_tree().node_at((0, 1))


def test_path_of_unknown_label():
    with refused(ValueError, r"9", "outside"):
        tabular_tree().path_of_label(9)


# -------------------------------------------------------------- structure
def test_too_few_children():
    with refused(ValueError, r"3 classes", "but 2 children"):
        Hierarchy(Router(nn.Linear(6, 3), P), [Leaf(nn.Linear(6, 2), [0, 1]), None])


def test_child_over_the_wrong_labels():
    with refused(ValueError, r"child 'b' covers labels \[2, 4\]", r"is \[2, 3\]"):
        Hierarchy(
            Router(nn.Linear(6, 3), P),
            [Leaf(nn.Linear(6, 2), [0, 1]), Leaf(nn.Linear(6, 2), [2, 4]), None],
        )


def test_no_child_for_a_class_of_two_labels():
    with refused(ValueError, r"class 'b' has labels \[2, 3\]", "only a one-label class"):
        Hierarchy(Router(nn.Linear(6, 3), P), [Leaf(nn.Linear(6, 2), [0, 1]), None, None])


def test_leaf_as_root():
    leaf = Leaf(nn.Linear(6, 2), [0, 1])
    with refused(TypeError, "root must be a Router", "got Leaf"):
        Hierarchy(leaf, [leaf])


def test_bare_router_as_child():
    with refused(TypeError, "bare Router"):
        Hierarchy(
            Router(nn.Linear(6, 3), P),
            [Router(nn.Linear(6, 2), P), Leaf(nn.Linear(6, 2), [2, 3]), None],
        )


def test_module_as_child():
    with refused(TypeError, "must be a Leaf, a Hierarchy or None", "Linear"):
        Hierarchy(
            Router(nn.Linear(6, 3), P), [nn.Linear(6, 2), Leaf(nn.Linear(6, 2), [2, 3]), None]
        )


def test_children_as_a_string():
    with refused(TypeError, "sequence or mapping", "str"):
        Hierarchy(Router(nn.Linear(6, 3), P), "abc")


def test_children_mapping_with_an_unknown_class_name():
    with refused(ValueError, "unknown class name 'z'", "expected one of"):
        Hierarchy(Router(nn.Linear(6, 3), P), {"z": Leaf(nn.Linear(6, 2), [0, 1])})
