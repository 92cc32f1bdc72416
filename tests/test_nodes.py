import pytest
import torch
from torch import nn

from hierclass import LabelPartition, Leaf, RenormalizedLeaf, Router, RuleRouter
from hierclass.nodes import SingletonLeaf


def test_router_and_leaf_validate_their_models_output_width():
    p = LabelPartition([[0, 1], [2]])
    with pytest.raises(ValueError, match=r"Router expected scores of shape \[3, 2\].*got \[3, 4\]"):
        Router(nn.Linear(5, 4), p)(torch.zeros(3, 5))
    with pytest.raises(ValueError, match=r"Leaf expected scores of shape \[3, 2\]"):
        Leaf(nn.Linear(5, 3), [0, 1])(torch.zeros(3, 5))
    with pytest.raises(TypeError, match="must return a tensor"):
        Leaf(lambda x: x.tolist(), [0])(torch.zeros(1, 1))


def test_nodes_read_their_modality():
    p = LabelPartition([[0], [1]])
    r = Router(nn.Linear(3, 2), p, input_key="lidar")
    batch = {"lidar": torch.zeros(2, 3), "image": torch.zeros(2, 1, 4, 4)}
    assert r(batch).shape == (2, 2)
    with pytest.raises(ValueError, match=r"reads modality 'radar', missing.*\['image', 'lidar'\]"):
        Router(nn.Linear(3, 2), p, input_key="radar")(batch)
    with pytest.raises(TypeError, match="reads a plain tensor"):
        Router(nn.Linear(3, 2), p)(batch)
    with pytest.raises(ValueError, match="but the batch is a plain tensor"):
        r(torch.zeros(2, 3))
    with pytest.raises(TypeError, match="floating-point input"):
        Router(nn.Linear(3, 2), p)(torch.zeros(2, 3, dtype=torch.long))


def test_renormalized_leaf_is_the_flat_softmax_renormalised():
    torch.manual_seed(0)
    flat = nn.Linear(6, 10)
    labels = [7, 1, 4]
    leaf = RenormalizedLeaf(flat, labels)
    x = torch.randn(8, 6)
    full = torch.softmax(flat(x), 1)
    expected = full[:, labels] / full[:, labels].sum(1, keepdim=True)
    assert torch.allclose(leaf(x).exp(), expected, atol=1e-6)
    # its argmax is the flat argmax restricted to the class
    assert torch.equal(leaf(x).argmax(1), flat(x)[:, labels].argmax(1))
    with pytest.raises(ValueError, match="needs flat logits"):
        RenormalizedLeaf(nn.Linear(6, 5), labels)(x)


def test_rule_router_one_hot_and_errors():
    p = LabelPartition([[0], [1], [2]])
    r = RuleRouter(lambda m: m[:, 0].long(), p, input_key="loc")
    out = r({"loc": torch.tensor([[2.0], [0.0]])})
    assert torch.equal(torch.softmax(out, 1), torch.tensor([[0.0, 0, 1], [1, 0, 0]]))
    with pytest.raises(ValueError, match=r"class ids \[5\] outside 0..2"):
        r({"loc": torch.tensor([[5.0]])})
    with pytest.raises(TypeError, match="integer tensor"):
        RuleRouter(lambda m: m[:, 0], p, input_key="loc")({"loc": torch.tensor([[1.0]])})
    assert r.deterministic and not Router(nn.Linear(1, 3), p).deterministic


def test_constructor_type_errors():
    p = LabelPartition([[0], [1]])
    with pytest.raises(TypeError, match="partition must be a LabelPartition"):
        Router(nn.Linear(1, 2), [[0], [1]])
    with pytest.raises(TypeError, match="must be an nn.Module or a callable"):
        Router(3, p)
    with pytest.raises(ValueError, match="repeated"):
        Leaf(nn.Linear(1, 2), [1, 1])
    with pytest.raises(ValueError, match="at least one label"):
        Leaf(nn.Linear(1, 2), [])
    with pytest.raises(TypeError, match="input_key"):
        Leaf(nn.Linear(1, 2), [0, 1], input_key=3)


def test_singleton_leaf_is_constant():
    leaf = SingletonLeaf(4)
    assert leaf({"a": torch.zeros(3, 2)}).shape == (3, 1) and leaf.labels == (4,)


def test_root_and_intermediate_roles_are_validated_by_the_tree():
    from hierclass import Hierarchy, Intermediate, LabelPartition, Leaf, Root, Router

    inner = LabelPartition({"a": [0], "b": [1]})
    sub = Hierarchy(Intermediate(nn.Linear(4, 2), inner), [None, None])
    top = Hierarchy(
        Root(nn.Linear(4, 2), LabelPartition({"ab": [0, 1], "c": [2]}, num_labels=3)),
        [sub, Leaf(nn.Linear(4, 1), [2])],
    )
    assert top.predict(torch.zeros(3, 4)).shape == (3,)
    assert isinstance(top.root, Router) and isinstance(sub.root, Router)  # the shared base
    # A Root below the top is refused, naming the role to use instead.
    rooted_sub = Hierarchy(Root(nn.Linear(4, 2), inner), [None, None])
    with pytest.raises(TypeError, match="a Root stands only at the top.*Intermediate"):
        Hierarchy(
            Root(nn.Linear(4, 2), LabelPartition({"ab": [0, 1], "c": [2]}, num_labels=3)),
            [rooted_sub, Leaf(nn.Linear(4, 1), [2])],
        )
    # A plain Router is still accepted in either place (back-compat).
    Hierarchy(
        Router(nn.Linear(4, 2), LabelPartition({"ab": [0, 1], "c": [2]}, num_labels=3)),
        [Hierarchy(Router(nn.Linear(4, 2), inner), [None, None]), Leaf(nn.Linear(4, 1), [2])],
    )
