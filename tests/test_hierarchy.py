import pytest
import torch
from torch import nn

from hierclass import Hierarchy, LabelPartition, Leaf, RenormalizedLeaf, Router, RuleRouter


def _two_level(seed: int = 0) -> Hierarchy:
    """Root over {0,1,2} | {3,4} | {5}; the first class splits again into {0,1} | {2}."""
    torch.manual_seed(seed)
    flat = nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 6))
    p = LabelPartition({"a": [0, 1, 2], "b": [3, 4], "c": [5]})
    inner = Hierarchy(
        Router(nn.Linear(6, 2), p.restrict("a", {"a0": [0, 1], "a1": [2]})),
        [RenormalizedLeaf(flat, [0, 1]), None],
    )
    return Hierarchy(Router(nn.Linear(6, 3), p), [inner, Leaf(nn.Linear(6, 2), [4, 3]), None])


def test_forward_is_leaf_softmax_inside_the_chosen_class_and_zero_elsewhere():
    h = _two_level().eval()
    x = torch.randn(64, 6)
    probs = h(x)
    labels, route = h.predict_with_route(x)
    assert probs.shape == (64, 6) and route.shape == (64, 2)
    assert torch.allclose(probs.sum(1), torch.ones(64))
    for i in range(64):
        path = tuple(int(c) for c in route[i] if c >= 0)
        leaf_labels = h.node_at(path).labels
        outside = [lab for lab in range(6) if lab not in leaf_labels]
        assert torch.all(probs[i, outside] == 0)
        assert int(labels[i]) in leaf_labels
        assert h.path_of_label(int(labels[i])) == path
    # routes follow the routers' argmax
    assert torch.equal(route[:, 0], h.root(x).argmax(1))
    assert torch.equal(h.predict(x), probs.argmax(1))


def test_routing_is_per_sample():
    """A sample's output never depends on the rest of the batch."""
    h = _two_level(1).eval()
    x = torch.randn(40, 6)
    whole = h(x)
    singles = torch.cat([h(x[i : i + 1]) for i in range(40)])
    shuffled = torch.randperm(40)
    assert torch.allclose(whole, singles, atol=1e-6)
    assert torch.allclose(h(x[shuffled]), whole[shuffled], atol=1e-6)


def test_soft_forward_is_a_differentiable_distribution():
    h = _two_level()
    x = torch.randn(5, 6, requires_grad=True)
    soft = h.soft_forward(x)
    assert torch.allclose(soft.sum(1), torch.ones(5), atol=1e-6)
    soft[:, 0].sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    # label 5 is a class by itself: its probability is the root's probability of class "c"
    assert torch.allclose(soft[:, 5], torch.softmax(h.root(x), 1)[:, 2])


def test_nodes_paths_outputs_and_repr():
    h = _two_level()
    paths = [p for p, _ in h.nodes()]
    assert paths == [(), (0,), (0, 0), (0, 1), (1,), (2,)]
    assert h.depth == 2 and h.labels == tuple(range(6))
    outs = h.node_outputs(torch.randn(3, 6))
    assert outs[()].shape == (3, 3) and outs[(1,)].shape == (3, 2)
    text = repr(h)
    assert "Router 3 classes" in text and "RenormalizedLeaf labels [0, 1]" in text
    assert "SingletonLeaf" in text and text.count("\n") == len(paths)
    # the shared flat model's parameters count once
    assert len(list(h.parameters())) == 2 + 2 + 4 + 2


def test_node_datasets_give_coarse_and_local_targets():
    h = _two_level()
    x = torch.arange(6.0).repeat(6, 1).T  # row i is all i
    y = torch.arange(6)
    xs, t = h.node_dataset(x, y)
    assert torch.equal(t, torch.tensor([0, 0, 0, 1, 1, 2]))
    xs, t = h.node_dataset(x, y, path=(0,))
    assert torch.equal(t, torch.tensor([0, 0, 1])) and torch.equal(
        xs[:, 0], torch.tensor([0.0, 1, 2])
    )
    xs, t = h.node_dataset(x, y, path=(1,))  # leaf labels are [4, 3]
    assert torch.equal(t, torch.tensor([1, 0])) and torch.equal(xs[:, 0], torch.tensor([3.0, 4]))
    with pytest.raises(ValueError, match=r"labels \[9\] outside"):
        h.node_dataset(x, torch.tensor([0, 1, 2, 3, 4, 9]))
    with pytest.raises(ValueError, match="goes below a leaf"):
        h.node_at((1, 0))


def test_bad_structures_are_rejected():
    p = LabelPartition({"a": [0, 1], "b": [2, 3]})
    leaf_a = Leaf(nn.Linear(2, 2), [0, 1])
    with pytest.raises(ValueError, match="2 classes .* but 1 children"):
        Hierarchy(Router(nn.Linear(2, 2), p), [leaf_a])
    with pytest.raises(ValueError, match=r"child 'b' covers labels \[1, 2\].*is \[2, 3\]"):
        Hierarchy(Router(nn.Linear(2, 2), p), [leaf_a, Leaf(nn.Linear(2, 2), [1, 2])])
    with pytest.raises(ValueError, match="only a one-label class may have no child"):
        Hierarchy(Router(nn.Linear(2, 2), p), [leaf_a, None])
    with pytest.raises(TypeError, match="root must be a Router"):
        Hierarchy(leaf_a, [leaf_a])
    with pytest.raises(TypeError, match="bare Router"):
        Hierarchy(Router(nn.Linear(2, 2), p), [leaf_a, Router(nn.Linear(2, 2), p)])
    h = Hierarchy(Router(nn.Linear(2, 2), p), {"b": Leaf(nn.Linear(2, 2), [3, 2]), "a": leaf_a})
    assert h.children[0] is leaf_a


def test_bad_inputs_get_clear_errors():
    h = _two_level()
    with pytest.raises(ValueError, match="empty batch"):
        h(torch.zeros(0, 6))
    x = torch.randn(4, 6)
    x[2, 1] = float("nan")
    with pytest.raises(ValueError, match=r"must be finite, .* \(samples \[2\]\)"):
        h.predict(x)
    with pytest.raises(TypeError, match="tensor or a dict"):
        h([[0.0] * 6])
    with pytest.raises(ValueError, match="disagree on the batch size"):
        Hierarchy(Router(nn.Linear(2, 2), LabelPartition([[0], [1]]), input_key="a"), [None, None])(
            {"a": torch.zeros(2, 2), "b": torch.zeros(3, 2)}
        )


def test_multimodal_hierarchy_with_rule_router():
    torch.manual_seed(0)
    p = LabelPartition({"highway": [0, 1], "town": [2, 3, 4]})
    flat = nn.Linear(8, 5)
    h = Hierarchy(
        RuleRouter(lambda loc: loc[:, 0].long(), p, input_key="location"),
        [
            RenormalizedLeaf(flat, [0, 1], input_key="image"),
            RenormalizedLeaf(flat, [2, 3, 4], "image"),
        ],
    )
    batch = {"image": torch.randn(6, 8), "location": torch.tensor([[0], [1], [1], [0], [1], [0]])}
    labels, route = h.predict_with_route(batch)
    assert torch.equal(route[:, 0], batch["location"][:, 0])
    assert all((lab < 2) == (loc == 0) for lab, loc in zip(labels.tolist(), route[:, 0].tolist()))


def test_save_and_load_round_trip(tmp_path):
    import json

    h = _two_level().eval()
    x = torch.randn(32, 6)
    h.save(tmp_path / "h")
    spec = json.loads((tmp_path / "h" / "hierarchy.json").read_text())
    assert spec["format"] == "hierclass.hierarchy/2"
    # root, inner router, flat model (shared by the renormalised leaf: saved once), leaf "b"
    assert len(spec["models"]) == 4
    with pytest.raises(ValueError, match="not a hierclass model; pass model_factory"):
        Hierarchy.load(tmp_path / "h")
    loaded = Hierarchy.load(tmp_path / "h", model_factory=lambda e: _rebuild(e, h))
    assert torch.equal(loaded.predict(x), h.predict(x))
    assert torch.allclose(loaded(x), h(x))
    assert repr(loaded) == repr(h)


def _rebuild(entry, original):
    """Build an untrained module of the same architecture as the original's model #index."""
    import copy

    seen = []
    for _, node in original.nodes():
        model = getattr(node, "model", None)
        if isinstance(model, nn.Module) and all(model is not s for s in seen):
            seen.append(model)
    fresh = copy.deepcopy(seen[entry["index"]])
    for p in fresh.parameters():
        nn.init.zeros_(p)  # weights must come from the file, not from the copy
    return fresh


def test_rule_routers_need_their_rule_on_load(tmp_path):
    p = LabelPartition([[0], [1]])

    def by_sign(m):
        return (m[:, 0] > 0).long()

    h = Hierarchy(RuleRouter(by_sign, p, input_key="m"), [None, None])
    h.save(tmp_path / "r")
    with pytest.raises(ValueError, match=r"uses rules \['by_sign'\]"):
        Hierarchy.load(tmp_path / "r")
    loaded = Hierarchy.load(tmp_path / "r", rules={"by_sign": by_sign})
    batch = {"m": torch.tensor([[-1.0], [1.0]])}
    assert torch.equal(loaded.predict(batch), torch.tensor([0, 1]))


def test_saving_a_plain_callable_model_is_a_type_error(tmp_path):
    p = LabelPartition([[0], [1]])
    h = Hierarchy(Router(lambda x: x, p), [None, None])
    with pytest.raises(TypeError, match="only nn.Module models can be saved"):
        h.save(tmp_path / "x")


class ScaledLeaf(Leaf):
    """A user's custom leaf: sharpens its model's scores."""

    def scores(self, xm):
        return 3.0 * self.model(xm)


def test_custom_leaf_classes_survive_save_and_load(tmp_path):
    torch.manual_seed(0)
    p = LabelPartition([[0, 1], [2]])
    h = Hierarchy(Router(nn.Linear(2, 2), p), [ScaledLeaf(nn.Linear(2, 2), [0, 1]), None]).eval()
    h.save(tmp_path / "c")
    factory = {0: nn.Linear(2, 2), 1: nn.Linear(2, 2)}
    with pytest.raises(
        ValueError, match=r"custom leaf class .ScaledLeaf. at tree.children\[0\]; pass node_classes"
    ):
        Hierarchy.load(tmp_path / "c", model_factory=factory)
    loaded = Hierarchy.load(
        tmp_path / "c", model_factory=factory, node_classes={"ScaledLeaf": ScaledLeaf}
    )
    assert isinstance(loaded.children[0], ScaledLeaf)
    x = torch.randn(16, 2)
    assert torch.allclose(loaded(x), h(x))
