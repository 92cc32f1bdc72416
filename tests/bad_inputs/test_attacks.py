"""Bad inputs to the attacks: each is a clear ValueError/TypeError saying what was expected and
what arrived, raised before any work (never an error from inside torch, never accepted).

Each case uses the battery's :func:`refused` (see ``conftest.py``), so a failure says whether
the input was accepted silently or refused obscurely."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

from hierclass import Hierarchy, LabelPartition, Leaf, Router
from hierclass.attacks import (
    PGD,
    budgeted_attack,
    evaluate_flat,
    evaluate_hierarchy,
    joint_attack,
    node_attacks,
    sequential_attack,
)

from ._battery import refused

K = 4


def _net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(16, K))


def _xy(n: int = 3):
    torch.manual_seed(1)
    return torch.rand(n, 1, 4, 4), torch.randint(0, K, (n,))


def _pgd(model):
    return PGD(model, 0.1, 0.05, 2)


def _tree(root_key=None, leaf_key=None) -> Hierarchy:
    torch.manual_seed(2)
    p = LabelPartition({"low": [0, 1], "high": [2, 3]})
    return Hierarchy(
        Router(nn.Linear(4, 2), p, input_key=root_key),
        [Leaf(nn.Linear(4, 2), [0, 1], input_key=leaf_key),
         Leaf(nn.Linear(4, 2), [2, 3], input_key=leaf_key)],
    )  # fmt: skip


def _with(x: torch.Tensor, index, value) -> torch.Tensor:
    x = x.clone()
    x[index] = value
    return x


# ---------------------------------------------------------------------------- PGD calls
X, Y = _xy()
PGD_CALLS = {
    "label above the logits": (X, torch.tensor([0, K, 7]), ValueError, r"0\.\.3.*\[4, 7\]"),
    "negative label": (X, torch.tensor([0, -1, 2]), ValueError, r"labels >= 0.*\[-1\]"),
    "float labels": (X, Y.float(), TypeError, "integer labels.*got dtype torch.float32"),
    "labels [B, 1]": (X, Y.view(-1, 1), ValueError, r"shape \[3\].*got \[3, 1\]"),
    "labels of another batch": (X, Y[:2], ValueError, r"shape \[3\].*got \[2\]"),
    "labels as a list": (X, [0, 1, 2], TypeError, "torch.Tensor of integer labels, got list"),
    "x holds +inf": (_with(X, (1, 0, 0, 0), float("inf")), Y, ValueError, r"finite.*\[1\]"),
    "x holds nan": (_with(X, (2, 0, 1, 1), float("nan")), Y, ValueError, r"finite.*\[2\]"),
    "x in 0..255": (X * 255, Y, ValueError, r"\[0, 1\].*got values in"),
    "x below 0": (X - 0.5, Y, ValueError, r"\[0, 1\]"),
    "x as uint8 images": ((X * 255).to(torch.uint8), Y, TypeError, "floating-point.*uint8"),
    "x as a numpy array": (X.numpy(), Y, TypeError, "torch.Tensor, got ndarray"),
    "x without a batch dim": (torch.tensor(0.5), torch.tensor([0]), ValueError, "0-d"),
    "x as a dict": ({"image": X}, Y, TypeError, "one tensor.*dict batch"),
}


@pytest.mark.parametrize("case", sorted(PGD_CALLS))
def test_pgd_call_rejects(case):
    x, y, error, match = PGD_CALLS[case]
    with refused(error, match):
        _pgd(_net())(x, y)


def test_label_range_checked_against_the_model_not_a_guess():
    # one output more than the largest label: accepted; the check reads the logits' width
    x, y = _xy()
    PGD(nn.Sequential(nn.Flatten(), nn.Linear(16, 8)), 0.1, 0.05, 2)(x, torch.tensor([7, 0, 1]))


def test_model_with_wrong_output_shape():
    with refused(ValueError, r"logits \[B, K\] = \[3, K\], got \(3, 2, 2\)"):
        _pgd(lambda z: z.flatten(1)[:, :4].view(-1, 2, 2))(*_xy())


def test_hierarchy_label_outside_its_labels():
    x = torch.rand(3, 4)
    with refused(ValueError, r"0\.\.3 \(the model has 4 outputs\).*\[9\]"):
        _pgd(_tree())(x, torch.tensor([0, 9, 1]))


# ---------------------------------------------------------------------------- PGD settings
PGD_SETTINGS = {
    "eps as a string": (dict(eps="0.1", step_size=0.05, steps=2), TypeError, "eps must be a real"),
    "negative eps": (dict(eps=-0.1, step_size=0.05, steps=2), ValueError, "eps must be >= 0"),
    "infinite eps": (dict(eps=float("inf"), step_size=0.05, steps=2), ValueError, "finite"),
    "step_size zero": (dict(eps=0.1, step_size=0.0, steps=2), ValueError, "step_size must be >"),
    "step_size nan": (dict(eps=0.1, step_size=float("nan"), steps=2), ValueError, "finite, got"),
    "step_size a tensor": (dict(eps=0.1, step_size=torch.tensor(0.1), steps=2), TypeError, "real"),
    "torchattacks' alpha=": (
        dict(eps=0.1, alpha=0.05, steps=2),
        TypeError,
        r"PGD's step size is step_size= \(alpha is smoothing's failure probability\)",
    ),
    "steps a float": (dict(eps=0.1, step_size=0.05, steps=10.0), TypeError, "steps must be an int"),
    "steps zero": (dict(eps=0.1, step_size=0.05, steps=0), ValueError, "steps must be >= 1, got 0"),
    "steps True": (dict(eps=0.1, step_size=0.05, steps=True), TypeError, "steps must be an int"),
    "norm l1": (dict(eps=0.1, step_size=0.05, steps=2, norm="l1"), ValueError, "norm must be one"),
    "restarts zero": (dict(eps=0.1, step_size=0.05, steps=2, restarts=0), ValueError, "restarts"),
    "seed a string": (dict(eps=0.1, step_size=0.05, steps=2, seed="0"), TypeError, "seed must be"),
    "random_start a string": (
        dict(eps=0.1, step_size=0.05, steps=2, random_start="no"),
        TypeError,
        "random_start must be True or False",
    ),
    "early_stop 1": (dict(eps=0.1, step_size=0.05, steps=2, early_stop=1), TypeError, "early_stop"),
    "channels_last 'yes'": (
        dict(eps=0.1, step_size=0.05, steps=2, channels_last="yes"),
        TypeError,
        "channels_last must be None, True or False",
    ),
}


@pytest.mark.parametrize("case", sorted(PGD_SETTINGS))
def test_pgd_settings_rejected(case):
    kwargs, error, match = PGD_SETTINGS[case]
    with refused(error, match):
        PGD(_net(), **kwargs)


def test_model_not_callable():
    with refused(TypeError, "model must be callable"):
        PGD("resnet", 0.1, 0.05, 2)


# ---------------------------------------------------------------------------- hierarchies
def _tx():
    torch.manual_seed(3)
    x = torch.rand(6, 4)
    return x, torch.tensor([0, 1, 2, 3, 0, 2])


def test_dict_batch_missing_a_modality_a_node_reads():
    x, y = _tx()
    h = _tree(root_key="lidar", leaf_key="image")
    with refused(ValueError, r"nodes read modalities \['lidar'\].*\['image'\]"):
        evaluate_hierarchy(h, {"image": x}, y, _pgd, perturbable=["image"])


def test_dict_batch_modalities_of_different_sizes():
    x, y = _tx()
    h = _tree(root_key="lidar", leaf_key="image")
    with refused(ValueError, "disagree on the batch size"):
        sequential_attack(h, {"image": x, "lidar": x[:4]}, y, _pgd, perturbable=["image"])


def test_perturbable_given_as_one_string():
    x, y = _tx()
    h = _tree(root_key="image", leaf_key="image")
    with refused(TypeError, r"collection of modality names.*'image'"):
        node_attacks(h, {"image": x}, y, _pgd, perturbable="image")


def test_non_finite_unperturbable_modality():
    x, y = _tx()
    h = _tree(root_key="lidar", leaf_key="image")
    batch = {"image": x, "lidar": _with(x, (4, 0), float("inf"))}
    with refused(ValueError, r"modality 'lidar' must be finite.*\[4\]"):
        budgeted_attack(h, batch, y, _pgd, perturbable=["image"])


def test_perturbable_modality_out_of_range():
    x, y = _tx()
    h = _tree(root_key="image", leaf_key="image")
    with refused(ValueError, r"modality 'image' must lie in \[0, 1\]"):
        joint_attack(h, {"image": x * 2}, y, _pgd, perturbable=["image"])


def test_integer_modality():
    x, y = _tx()
    with refused(TypeError, "floating-point tensor in \\[0, 1\\], got torch.int64"):
        sequential_attack(_tree(), (x * 10).long(), y, _pgd)


def test_a_flat_model_given_as_hierarchy():
    x, y = _tx()
    with refused(TypeError, "h must be a hierclass.Hierarchy, got Linear"):
        evaluate_hierarchy(nn.Linear(4, 4), x, y, _pgd)


@pytest.mark.parametrize("bad", [0, -3, 2.5])
def test_batch_size_not_a_positive_int(bad):
    x, y = _tx()
    error = TypeError if isinstance(bad, float) else ValueError
    with refused(error, "batch_size must be"):
        evaluate_hierarchy(_tree(), x, y, _pgd, batch_size=bad)


def test_hierarchy_labels_outside_the_tree():
    x, y = _tx()
    with refused(ValueError, r"labels \[5\] outside 0\.\.3"):
        sequential_attack(_tree(), x, _with(y, 1, 5), _pgd)


def test_make_attack_missing_with_a_data_set():
    x, y = _tx()
    with refused(TypeError, "make_attack must be a callable"):
        evaluate_hierarchy(_tree(), TensorDataset(x, y))


def test_data_set_and_labels_together():
    x, y = _tx()
    with refused(TypeError, "not both"):
        evaluate_hierarchy(_tree(), TensorDataset(x, y), y, _pgd)


def test_tensor_without_labels():
    x, _ = _tx()
    with refused(TypeError, "y \\(the labels\\) is required"):
        evaluate_flat(nn.Linear(4, 4), x, make_attack=_pgd)


def test_data_set_of_single_tensors():
    x, _ = _tx()
    with refused(ValueError, r"\(inputs, labels\).*got 1 tensors"):
        evaluate_flat(nn.Linear(4, 4), TensorDataset(x), make_attack=_pgd)


def test_flat_report_label_above_the_logits():
    x, y = _tx()
    with refused(ValueError, r"0\.\.3 \(the model has 4 outputs\), got labels \[6\]"):
        evaluate_flat(nn.Linear(4, 4), x, _with(y, 0, 6), _pgd)


def test_flat_report_non_finite_input():
    x, y = _tx()
    with refused(ValueError, "finite"):
        evaluate_flat(nn.Linear(4, 4), _with(x, (0, 0), float("-inf")), y, _pgd)


def test_flat_report_numpy_input():
    x, y = _tx()
    with refused(TypeError, "floating-point tensor"):
        evaluate_flat(nn.Linear(4, 4), np.asarray(x), y, _pgd)
