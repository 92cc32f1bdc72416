"""Corrupt, tampered or mismatched saved hierarchies, and bad arguments to save/load."""

import json
import os
import pickle

import pytest
import torch
from torch import nn

from hierclass import Hierarchy, LabelPartition, Leaf, RenormalizedLeaf, Router, RuleRouter
from hierclass.models import SmallCNN

from ._battery import refused

P = LabelPartition({"a": [0, 1], "b": [2, 3], "c": [4]})


class TempLeaf(Leaf):
    def __init__(self, model, labels, input_key=None):
        super().__init__(model, labels, input_key)
        self.register_buffer("temperature", torch.tensor(2.0))

    def scores(self, xm):
        return self.model(xm) / self.temperature


def by_sign(m):
    return (m[:, 0] > 0).long()


@pytest.fixture
def saved(tmp_path):
    """A saved tree of hierclass models (loads with no arguments); returns its directory."""
    torch.manual_seed(0)
    flat = SmallCNN(5, image_size=8)
    inner = Hierarchy(Router(SmallCNN(2, image_size=8), P.restrict("a", [[0], [1]])), [None, None])
    h = Hierarchy(
        Router(SmallCNN(3, image_size=8), P),
        [inner, RenormalizedLeaf(flat, [2, 3]), None],
    ).eval()
    return h.save(tmp_path / "h")


def spec_of(folder):
    return json.loads((folder / "hierarchy.json").read_text())


def write_spec(folder, spec):
    (folder / "hierarchy.json").write_text(json.dumps(spec))


def tamper(folder, edit):
    spec = spec_of(folder)
    edit(spec)
    write_spec(folder, spec)
    return folder


def weights_of(folder):
    return torch.load(folder / "weights.pt", weights_only=True)


def test_the_fixture_loads(saved):
    x = torch.rand(3, 1, 8, 8)
    assert Hierarchy.load(saved).predict(x).shape == (3,)


# -------------------------------------------------------------- weights.pt
def test_truncated_weights(saved):
    data = (saved / "weights.pt").read_bytes()
    (saved / "weights.pt").write_bytes(data[: len(data) // 2])
    with refused(ValueError, "weights.pt", "cannot be read as saved tensors"):
        Hierarchy.load(saved)


def test_empty_weights_file(saved):
    (saved / "weights.pt").write_bytes(b"")
    with refused(ValueError, "weights.pt", "cannot be read"):
        Hierarchy.load(saved)


def test_text_as_weights(saved):
    (saved / "weights.pt").write_text("these are not weights\n")
    with refused(ValueError, "weights.pt", "cannot be read"):
        Hierarchy.load(saved)


def test_a_tensor_as_weights(saved):
    torch.save(torch.zeros(3), saved / "weights.pt")
    with refused(ValueError, "weights.pt", "holds a Tensor", "expected a dict of tensors"):
        Hierarchy.load(saved)


def test_a_list_as_weights(saved):
    torch.save([torch.zeros(3)], saved / "weights.pt")
    with refused(ValueError, "weights.pt", "holds a list", "expected a dict"):
        Hierarchy.load(saved)


def test_non_tensor_values_in_weights(saved):
    w = weights_of(saved)
    w[next(iter(w))] = 3
    torch.save(w, saved / "weights.pt")
    with refused(ValueError, "weights.pt", "not name -> tensor pairs"):
        Hierarchy.load(saved)


def test_missing_tensor(saved):
    w = weights_of(saved)
    w.pop(next(k for k in w if k.startswith("0.")))
    torch.save(w, saved / "weights.pt")
    with refused(ValueError, "weights.pt", "model 0", "missing"):
        Hierarchy.load(saved)


def test_stray_tensor(saved):
    w = weights_of(saved)
    w["extra"] = torch.zeros(2)
    torch.save(w, saved / "weights.pt")
    with refused(ValueError, "weights.pt", r"\['extra'\]", "belong to no saved model"):
        Hierarchy.load(saved)


def test_tensor_of_the_wrong_shape(saved):
    w = weights_of(saved)
    key = next(k for k in w if k.startswith("0.") and w[k].dim() == 2)
    w[key] = torch.zeros(w[key].shape[0] + 1, w[key].shape[1])
    torch.save(w, saved / "weights.pt")
    with refused(ValueError, "weights.pt", "model 0", "shape"):
        Hierarchy.load(saved)


def test_malicious_pickle_is_refused_and_not_run(saved, tmp_path):
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    with open(saved / "weights.pt", "wb") as f:
        pickle.dump({"0.x": Evil()}, f, protocol=2)
    with refused(ValueError, "weights.pt", "cannot be read") as r:
        Hierarchy.load(saved)
    assert not marker.exists()
    assert "weights_only" not in r.message and "False" not in r.message


def test_missing_weights_file(saved):
    (saved / "weights.pt").unlink()
    with refused(FileNotFoundError, "no weights.pt in"):
        Hierarchy.load(saved)


# -------------------------------------------------------------- hierarchy.json
def test_missing_spec_file(tmp_path):
    with refused(FileNotFoundError, "no hierarchy.json in", "expected a directory from save"):
        Hierarchy.load(tmp_path)


def test_path_is_a_file(saved):
    with refused(FileNotFoundError, "no hierarchy.json"):
        Hierarchy.load(saved / "weights.pt")


def test_malformed_json_names_the_file(saved):
    (saved / "hierarchy.json").write_text('{"format": "hierclass.hierarchy/2", "tree": ')
    with refused(ValueError, "hierarchy.json", "not valid JSON", "line 1"):
        Hierarchy.load(saved)


def test_binary_garbage_as_spec(saved):
    (saved / "hierarchy.json").write_bytes(b"\xff\xfe\x00garbage")
    with refused(ValueError, "hierarchy.json", "not"):
        Hierarchy.load(saved)


def test_json_list_as_spec(saved):
    write_spec(saved, [1, 2, 3])
    with refused(ValueError, "hierarchy.json", "holds a JSON list", "expected an object"):
        Hierarchy.load(saved)


def test_unknown_format(saved):
    tamper(saved, lambda s: s.update(format="other/9"))
    with refused(ValueError, "hierarchy.json", "format 'other/9'", "expected one of"):
        Hierarchy.load(saved)


@pytest.mark.parametrize("key", ["tree", "models", "rules"])
def test_missing_top_level_entry(saved, key):
    tamper(saved, lambda s: s.pop(key))
    with refused(ValueError, "hierarchy.json", f"has no '{key}' entry"):
        Hierarchy.load(saved)


def test_models_as_an_object(saved):
    tamper(saved, lambda s: s.update(models={"0": {}}))
    with refused(ValueError, "hierarchy.json", "'models' must be a JSON array", "dict"):
        Hierarchy.load(saved)


@pytest.mark.parametrize("index", [5, -1, 1.0, True, "0", None], ids=repr)
def test_router_model_index_out_of_range(saved, index):
    tamper(saved, lambda s: s["tree"]["root"].update(model=index))
    with refused(ValueError, "hierarchy.json", f"model index {index!r}", "saved models"):
        Hierarchy.load(saved)


def test_leaf_model_index_out_of_range(saved):
    tamper(saved, lambda s: s["tree"]["children"][1].update(model=7))
    with refused(ValueError, "hierarchy.json", r"children\[1\]", "model index 7"):
        Hierarchy.load(saved)


def test_model_entry_index_mismatch(saved):
    tamper(saved, lambda s: s["models"][1].update(index=0))
    with refused(ValueError, "hierarchy.json", r"models\[1\] has index 0", "expected 1"):
        Hierarchy.load(saved)


@pytest.mark.parametrize("kwargs", [{"num_classes": 1e9}, {"num_classes": 10**9}], ids=str)
def test_huge_spec_kwargs_are_refused_without_allocating(saved, kwargs):
    def edit(s):
        s["models"][0]["spec"]["kwargs"].update(kwargs)

    tamper(saved, edit)
    with refused(ValueError, "model 0", "num_classes|match|built"):
        Hierarchy.load(saved)


def test_spec_kwargs_of_the_wrong_name(saved):
    tamper(saved, lambda s: s["models"][0]["spec"]["kwargs"].update(colour=3))
    with refused(ValueError, "hierarchy.json", "model 0", "cannot be built", "colour"):
        Hierarchy.load(saved)


def test_unknown_model_name(saved):
    tamper(saved, lambda s: s["models"][0]["spec"].update(name="gpt5"))
    with refused(ValueError, "model name 'gpt5' is not registered", "known"):
        Hierarchy.load(saved)


def test_model_spec_not_an_object(saved):
    tamper(saved, lambda s: s["models"][0].update(spec="small_cnn"))
    with refused(ValueError, "hierarchy.json", r"models\[0\] spec must be", "'small_cnn'"):
        Hierarchy.load(saved)


def test_unknown_node_type(saved):
    tamper(saved, lambda s: s["tree"]["children"][1].update(type="Magic"))
    with refused(ValueError, "hierarchy.json", "unknown node type 'Magic'"):
        Hierarchy.load(saved)


def test_unknown_router_type(saved):
    tamper(saved, lambda s: s["tree"]["root"].update(type="os.system"))
    with refused(ValueError, "hierarchy.json", "unknown node type 'os.system'"):
        Hierarchy.load(saved)


def test_overlapping_partition(saved):
    def edit(s):
        s["tree"]["root"]["partition"]["classes"]["b"] = [1, 2, 3]

    tamper(saved, edit)
    with refused(ValueError, "hierarchy.json", "root.partition"):
        Hierarchy.load(saved)


def test_partition_with_a_huge_label(saved):
    def edit(s):
        s["tree"]["root"]["partition"]["classes"]["c"] = [10**12]
        s["tree"]["root"]["partition"]["labels"][-1] = 10**12

    tamper(saved, edit)
    with refused(ValueError, "hierarchy.json", "root's labels must be 0..4"):
        Hierarchy.load(saved)


def test_partition_missing_labels(saved):
    tamper(saved, lambda s: s["tree"]["root"]["partition"].pop("labels"))
    with refused(ValueError, "hierarchy.json", "'labels' must be a list of ints", "None"):
        Hierarchy.load(saved)


def test_child_labels_differ_from_its_class(saved):
    tamper(saved, lambda s: s["tree"]["children"][1].update(labels=[2, 4]))
    with refused(ValueError, "hierarchy.json", r"labels \[2, 4\] differ", r"\[2, 3\]"):
        Hierarchy.load(saved)


def test_nested_router_over_other_labels(saved):
    def edit(s):
        part = s["tree"]["children"][0]["root"]["partition"]
        part["classes"] = {"x": [0], "y": [3]}
        part["labels"] = [0, 3]

    tamper(saved, edit)
    with refused(ValueError, "hierarchy.json", r"covers labels \[0, 3\]", r"class is \[0, 1\]"):
        Hierarchy.load(saved)


def test_too_many_children(saved):
    tamper(saved, lambda s: s["tree"]["children"].append({"type": "SingletonLeaf", "labels": [5]}))
    with refused(ValueError, "hierarchy.json", "3 classes but 4 children"):
        Hierarchy.load(saved)


def test_child_not_an_object(saved):
    tamper(saved, lambda s: s["tree"]["children"].__setitem__(1, "leaf"))
    with refused(ValueError, "hierarchy.json", "expected an object", "'leaf'"):
        Hierarchy.load(saved)


def test_input_key_not_a_string(saved):
    tamper(saved, lambda s: s["tree"]["children"][1].update(input_key=5))
    with refused(ValueError, "hierarchy.json", "input_key must be a string or null", "5"):
        Hierarchy.load(saved)


def test_tampered_input_range(saved):
    tamper(saved, lambda s: s["tree"].update(input_range=[1, 0]))
    with refused(ValueError, "hierarchy.json", "input_range", r"\[1, 0\]"):
        Hierarchy.load(saved)


def test_rules_not_names(saved):
    tamper(saved, lambda s: s.update(rules=[3]))
    with refused(ValueError, "hierarchy.json", "'rules' must list rule names", r"\[3\]"):
        Hierarchy.load(saved)


def test_node_state_listed_but_absent(saved):
    tamper(saved, lambda s: s["tree"]["children"][1].update(state=["temperature"]))
    with refused(ValueError, "weights.pt", "tensors of node", "temperature"):
        Hierarchy.load(saved)


def test_duplicate_node_ids(saved):
    def edit(s):
        s["tree"]["children"][1]["node"] = s["tree"]["root"]["node"]

    tamper(saved, edit)
    with refused(ValueError, "hierarchy.json", "'node' must be a distinct int id"):
        Hierarchy.load(saved)


# -------------------------------------------------------------- what the caller passes
def test_rule_missing_on_load(tmp_path):
    h = Hierarchy(RuleRouter(by_sign, LabelPartition([[0], [1]]), input_key="m"), [None, None])
    h.save(tmp_path / "r")
    with refused(ValueError, r"uses rules \['by_sign'\]", "rules="):
        Hierarchy.load(tmp_path / "r")


def test_custom_leaf_without_node_classes(tmp_path):
    h = Hierarchy(
        Router(SmallCNN(2, image_size=8), LabelPartition([[0, 1], [2]])),
        [TempLeaf(SmallCNN(2, image_size=8), [0, 1]), None],
    )
    h.save(tmp_path / "c")
    with refused(ValueError, "custom leaf class 'TempLeaf'", "node_classes="):
        Hierarchy.load(tmp_path / "c")


def test_node_classes_building_the_wrong_class(tmp_path):
    h = Hierarchy(
        Router(SmallCNN(2, image_size=8), LabelPartition([[0, 1], [2]])),
        [TempLeaf(SmallCNN(2, image_size=8), [0, 1]), None],
    )
    h.save(tmp_path / "c")
    with refused(ValueError, r"saved state \['temperature'\]", r"registers"):
        Hierarchy.load(tmp_path / "c", node_classes={"TempLeaf": Leaf})


def test_node_classes_returning_a_non_leaf(tmp_path):
    h = Hierarchy(
        Router(SmallCNN(2, image_size=8), LabelPartition([[0, 1], [2]])),
        [TempLeaf(SmallCNN(2, image_size=8), [0, 1]), None],
    )
    h.save(tmp_path / "c")
    with refused(TypeError, r"node_classes\['TempLeaf'\] made a Linear", "expected a Leaf"):
        Hierarchy.load(tmp_path / "c", node_classes={"TempLeaf": lambda m, l, k: nn.Linear(1, 1)})


def test_node_classes_not_a_mapping(saved):
    with refused(TypeError, "node_classes must be a mapping", "list"):
        Hierarchy.load(saved, node_classes=[TempLeaf])


def test_format_1_file_without_the_custom_leafs_state(tmp_path):
    h = Hierarchy(
        Router(SmallCNN(2, image_size=8), LabelPartition([[0, 1], [2]])),
        [TempLeaf(SmallCNN(2, image_size=8), [0, 1]), None],
    )
    folder = h.save(tmp_path / "c")

    def edit(s):
        s["format"] = "hierclass.hierarchy/1"
        for entry in (s["tree"]["root"], *s["tree"]["children"]):
            entry.pop("node", None), entry.pop("state", None)

    tamper(folder, edit)
    torch.save(
        {k: v for k, v in weights_of(folder).items() if not k.startswith("node")},
        folder / "weights.pt",
    )
    with refused(ValueError, r"has its own state \['temperature'\]", "did not save"):
        Hierarchy.load(folder, node_classes={"TempLeaf": TempLeaf})


@pytest.fixture
def unnamed(tmp_path):
    """A saved tree whose models are plain nn.Linear (loading needs model_factory)."""
    h = Hierarchy(
        Router(nn.Linear(4, 2), LabelPartition([[0, 1], [2]])),
        [Leaf(nn.Linear(4, 2), [0, 1]), None],
    )
    return h.save(tmp_path / "u")


def test_model_factory_missing(unnamed):
    with refused(ValueError, r"model 0 \(torch.nn.modules.linear.Linear\)", "model_factory="):
        Hierarchy.load(unnamed)


def test_model_factory_returning_none(unnamed):
    with refused(TypeError, "model_factory gave NoneType for model 0", "nn.Module"):
        Hierarchy.load(unnamed, model_factory=lambda entry: None)


def test_model_factory_of_the_wrong_architecture(unnamed):
    with refused(ValueError, "weights.pt", "do not fit", "size mismatch"):
        Hierarchy.load(unnamed, model_factory=lambda entry: nn.Linear(5, 2))


def test_model_factory_mapping_with_unknown_index(unnamed):
    with refused(ValueError, r"model_factory keys \[9\] are not model indices", "0..1"):
        Hierarchy.load(
            unnamed, model_factory={0: nn.Linear(4, 2), 1: nn.Linear(4, 2), 9: nn.Linear(4, 2)}
        )


def test_model_factory_not_callable(unnamed):
    with refused(TypeError, "model_factory must be a callable", "str"):
        Hierarchy.load(unnamed, model_factory="linear")


def test_model_factory_for_a_model_built_by_name(saved):
    with refused(ValueError, r"model_factory has entries for models \[0\]", "rebuilt by name"):
        Hierarchy.load(saved, model_factory={0: SmallCNN(3, image_size=8)})


def test_bogus_map_location(saved):
    with refused(ValueError, "map_location must name a device", "'bogus'"):
        Hierarchy.load(saved, map_location="bogus")


def test_saving_a_lambda_model(tmp_path):
    h = Hierarchy(Router(lambda x: x, LabelPartition([[0], [1]])), [None, None])
    with refused(TypeError, "only nn.Module models can be saved", "function"):
        h.save(tmp_path / "x")


# -------------------------------------------------------------- training checkpoints
def tiny():
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 2))


def test_truncated_fit_checkpoint(tmp_path):
    from hierclass.training import fit

    x, y = torch.rand(8, 1, 8, 8), torch.arange(8) % 2
    ckpt = tmp_path / "fit.pt"
    fit(tiny(), x, y, epochs=1, batch_size=8, checkpoint=ckpt, verbose=False)
    data = ckpt.read_bytes()
    ckpt.write_bytes(data[: len(data) // 3])
    with refused(ValueError, "fit.pt", "cannot", "checkpoint"):
        fit(tiny(), x, y, epochs=2, batch_size=8, checkpoint=ckpt, verbose=False)


def test_malicious_fit_checkpoint_gets_no_weights_only_advice(tmp_path):
    from hierclass.training import fit

    marker = tmp_path / "pwned"
    ckpt = tmp_path / "fit.pt"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    with open(ckpt, "wb") as f:
        pickle.dump({"format": "hierclass.fit/1", "x": Evil()}, f, protocol=2)
    x, y = torch.rand(8, 1, 8, 8), torch.arange(8) % 2
    with refused(ValueError, "fit.pt", "cannot", "checkpoint") as r:
        fit(tiny(), x, y, epochs=1, batch_size=8, checkpoint=ckpt, verbose=False)
    assert not marker.exists() and "weights_only" not in r.message
    assert "trust" not in r.message  # torch's hint that the file could be loaded unsafely


def test_child_labels_of_mixed_types(saved):
    tamper(saved, lambda s: s["tree"]["children"][1].update(labels=[2, "3"]))
    with refused(ValueError, "hierarchy.json", r"labels \[2, '3'\] differ"):
        Hierarchy.load(saved)


def test_deeply_nested_json(saved):
    (saved / "hierarchy.json").write_text("[" * 100_000 + "]" * 100_000)
    with refused(ValueError, "hierarchy.json", "nested too deeply|not valid JSON|JSON list"):
        Hierarchy.load(saved)


def test_empty_spec_file(saved):
    (saved / "hierarchy.json").write_text("")
    with refused(ValueError, "hierarchy.json", "not valid JSON"):
        Hierarchy.load(saved)


def test_spec_without_format(saved):
    tamper(saved, lambda s: s.pop("format"))
    with refused(ValueError, "hierarchy.json", "format None", "expected one of"):
        Hierarchy.load(saved)


def test_weights_path_is_a_directory(saved):
    (saved / "weights.pt").unlink()
    (saved / "weights.pt").mkdir()
    with refused(FileNotFoundError, "no weights.pt in"):
        Hierarchy.load(saved)


def test_a_model_index_edited_to_another_saved_model_is_refused_at_load(saved):
    spec = spec_of(saved)
    roots = {e["model"] for e in [spec["tree"]["root"]]}
    flat_index = spec["tree"]["children"][1]["model"]
    assert flat_index not in roots

    def point_root_at_flat(s):
        s["tree"]["root"]["model"] = flat_index

    tamper(saved, point_root_at_flat)
    with refused(ValueError, "hierarchy.json", "tree.root", "5 outputs", "needs 3 outputs"):
        Hierarchy.load(saved)
