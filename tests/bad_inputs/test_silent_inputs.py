"""Inputs that used to be accepted silently with a wrong result (issue 24), now refused."""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from hierclass.data._tensors import as_tensors
from hierclass.inputs import check_input_range, check_inputs
from hierclass.training import evaluate_accuracy

from ._battery import refused


def test_evaluate_accuracy_refuses_labels_the_model_cannot_predict():
    model = nn.Linear(4, 3)
    with refused(ValueError, "y has label 7", "outputs 3 logits", r"0\.\.2"):
        evaluate_accuracy(model, torch.rand(5, 4), torch.tensor([0, 1, 2, 7, 1]))
    assert 0.0 <= evaluate_accuracy(model, torch.rand(5, 4), torch.tensor([0, 1, 2, 2, 1])) <= 1


def test_a_dataloader_that_drops_its_last_batch_is_refused():
    ds = TensorDataset(torch.rand(8, 1, 4, 4), torch.arange(8) % 3)
    with refused(ValueError, "drop_last=True", "left out"):
        as_tensors(DataLoader(ds, batch_size=3, drop_last=True))
    assert len(as_tensors(DataLoader(ds, batch_size=3))[1]) == 8


def test_a_string_is_not_an_input_range():
    with refused(ValueError, "pair", "the string '01'"):
        check_input_range("01")


def test_a_misspelt_modality_in_an_input_range_is_refused():
    x = {"image": torch.rand(2, 1, 4, 4), "lidar": torch.full((2, 16, 3), 40.0)}
    with refused(ValueError, r"\['lidr'\]", r"\['image', 'lidar'\]"):
        check_inputs(x, input_range={"lidr": (-50.0, 50.0)})
    with refused(ValueError, "lidar", r"\[-1, 1\]"):  # spelt right, the range is enforced
        check_inputs(x, input_range={"lidar": (-1.0, 1.0)})
