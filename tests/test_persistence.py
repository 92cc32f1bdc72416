"""Saving and loading: every node's whole state comes back; what the loader calls and when."""

import json

import pytest
import torch
from torch import nn

from hierclass import Hierarchy, LabelPartition, Leaf, RenormalizedLeaf, Router
from hierclass.models import SmallCNN
from hierclass.persistence import describe_load_error


class TemperatureLeaf(Leaf):
    """A leaf with its own buffer (a temperature) and its own parameter (a bias)."""

    def __init__(self, model, labels, input_key=None):
        super().__init__(model, labels, input_key)
        self.register_buffer("temperature", torch.tensor(1.0))
        self.bias = nn.Parameter(torch.zeros(len(self.labels)))

    def scores(self, xm):
        return self.model(xm) / self.temperature + self.bias


class ScaledRouter(Router):
    """A router subclass with a buffer of its own."""

    def __init__(self, model, partition, input_key=None):
        super().__init__(model, partition, input_key)
        self.register_buffer("scale", torch.tensor(1.0))

    def scores(self, xm):
        return self.scale * super().scores(xm)


def _custom_tree() -> Hierarchy:
    torch.manual_seed(0)
    p = LabelPartition({"a": [0, 1], "b": [2, 3]})
    flat = SmallCNN(4, image_size=8)
    leaf = TemperatureLeaf(SmallCNN(2, image_size=8), [0, 1])
    leaf.temperature.fill_(0.25)
    with torch.no_grad():
        leaf.bias.copy_(torch.tensor([0.5, -0.5]))
    router = ScaledRouter(SmallCNN(2, image_size=8), p)
    router.scale.fill_(3.0)
    return Hierarchy(router, [leaf, RenormalizedLeaf(flat, [2, 3])]).eval()


def test_custom_nodes_keep_their_buffers_and_parameters(tmp_path):
    h = _custom_tree()
    h.save(tmp_path / "h")
    loaded = Hierarchy.load(
        tmp_path / "h",
        node_classes={"TemperatureLeaf": TemperatureLeaf, "ScaledRouter": ScaledRouter},
    )
    leaf, router = loaded.node_at((0,)), loaded.root
    assert isinstance(leaf, TemperatureLeaf) and isinstance(router, ScaledRouter)
    assert leaf.temperature.item() == 0.25  # used to come back 1.0
    assert torch.equal(leaf.bias.detach(), torch.tensor([0.5, -0.5]))
    assert router.scale.item() == 3.0
    x = torch.rand(16, 1, 8, 8)
    assert torch.equal(loaded(x), h(x))
    # the shared flat model is still stored once
    spec = json.loads((tmp_path / "h" / "hierarchy.json").read_text())
    assert len(spec["models"]) == 3


def test_a_class_that_registers_other_state_is_refused(tmp_path):
    h = _custom_tree()
    h.save(tmp_path / "h")
    with pytest.raises(ValueError, match=r"saved state \['bias', 'temperature'\] does not match"):
        Hierarchy.load(
            tmp_path / "h",
            node_classes={"TemperatureLeaf": Leaf, "ScaledRouter": ScaledRouter},
        )


def test_model_factory_callable_is_asked_only_for_models_not_built_by_name(tmp_path):
    torch.manual_seed(0)
    p = LabelPartition([[0, 1], [2]])
    h = Hierarchy(Router(SmallCNN(2, image_size=8), p), [Leaf(nn.Linear(64, 2), [0, 1]), None])
    wrapped = Hierarchy(h.root, [Leaf(nn.Sequential(nn.Flatten(), nn.Linear(64, 2)), [0, 1]), None])
    wrapped.eval().save(tmp_path / "h")
    asked = []

    def factory(entry):
        asked.append(entry["index"])
        return nn.Sequential(nn.Flatten(), nn.Linear(64, 2))

    loaded = Hierarchy.load(tmp_path / "h", model_factory=factory)
    assert asked == [1]  # model 0 is a SmallCNN, rebuilt by name; it used to be asked for too
    x = torch.rand(8, 1, 8, 8)
    assert torch.equal(loaded.predict(x), wrapped.predict(x))
    with pytest.raises(ValueError, match=r"entries for models \[0\], which are rebuilt by name"):
        Hierarchy.load(tmp_path / "h", model_factory={0: SmallCNN(2, image_size=8)})


def test_input_range_is_saved_and_loaded(tmp_path):
    p = LabelPartition([[0], [1]])
    for declared in [(0.0, 255.0), {"image": (0.0, 255.0), "lidar": None}]:
        key = "image" if isinstance(declared, dict) else None
        h = Hierarchy(
            Router(SmallCNN(2, image_size=8), p, input_key=key), [None, None], input_range=declared
        )
        h.save(tmp_path / "r")
        loaded = Hierarchy.load(tmp_path / "r")
        assert loaded.input_range == h.input_range
        x = torch.full((2, 1, 8, 8), 200.0)
        batch = {"image": x} if key else x
        assert torch.equal(loaded.predict(batch), h.predict(batch))


def test_format_1_files_still_load(tmp_path):
    """A directory written before node state was saved loads when no node needs any."""
    torch.manual_seed(0)
    p = LabelPartition([[0, 1], [2]])
    h = Hierarchy(
        Router(SmallCNN(2, image_size=8), p),
        [RenormalizedLeaf(SmallCNN(3, image_size=8), [0, 1]), None],
    ).eval()
    h.save(tmp_path / "h")
    spec_path = tmp_path / "h" / "hierarchy.json"
    spec = json.loads(spec_path.read_text())
    spec["format"] = "hierclass.hierarchy/1"
    weights = torch.load(tmp_path / "h" / "weights.pt", weights_only=True)

    def strip(node):
        for entry in [node["root"], *node["children"]]:
            entry.pop("node", None), entry.pop("state", None)
            if entry.get("type") == "Hierarchy":
                strip(entry)
        node.pop("input_range")

    strip(spec["tree"])
    spec_path.write_text(json.dumps(spec))
    torch.save(
        {k: v for k, v in weights.items() if not k.startswith("node")},
        tmp_path / "h" / "weights.pt",
    )
    x = torch.rand(8, 1, 8, 8)
    assert torch.equal(Hierarchy.load(tmp_path / "h").predict(x), h.predict(x))


def test_torch_advice_to_disable_weights_only_is_never_passed_on():
    text = (
        "Weights only load failed. This file can still be loaded, to do so you have two "
        "options, do those steps only if you trust the source of the checkpoint. (1) In "
        "PyTorch 2.6, we changed the default value of the `weights_only` argument in "
        "`torch.load` from `False` to `True`. Re-running `torch.load` with `weights_only` set "
        "to `False` will likely succeed, but it can result in arbitrary code execution.\n"
        "WeightsUnpickler error: Unsupported global: GLOBAL os.system"
    )
    out = describe_load_error(RuntimeError(text))
    assert "weights_only" not in out and "False" not in out
    assert "Unsupported global: GLOBAL os.system" in out
