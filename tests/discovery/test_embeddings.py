"""Embeddings from named layers: values, batching, hooks, modes, errors."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from hierclass.discovery import extract_embeddings, list_layers


def _net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Linear(6, 8), nn.ReLU(), nn.Dropout(0.5), nn.Linear(8, 5), nn.Sequential(nn.Tanh())
    )


def test_values_match_manual_forward_and_model_stays_in_train_mode():
    net = _net()
    net.train()
    x = torch.rand(11, 6)
    out = extract_embeddings(net, x, ["1", "3", "4.0"], batch_size=4)
    with torch.no_grad():
        h = net[1](net[0](x))
        expected = torch.tanh(net[3](h))  # dropout is identity in eval mode
    torch.testing.assert_close(out["1"], h)
    torch.testing.assert_close(out["4.0"], expected)
    assert net.training, "train/eval mode must be restored"
    assert all(not m._forward_hooks for m in net.modules()), "hooks must be removed"


def test_batch_size_does_not_change_embeddings():
    net = _net()
    x = torch.rand(23, 6)
    a = extract_embeddings(net, x, "3", batch_size=1)
    b = extract_embeddings(net, x, "3", batch_size=100)
    torch.testing.assert_close(a, b)


def test_flatten_false_keeps_layer_shape():
    net = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.ReLU())
    x = torch.rand(3, 1, 4, 4)
    assert extract_embeddings(net, x, "0", flatten=False).shape == (3, 2, 4, 4)
    assert extract_embeddings(net, x, "0").shape == (3, 32)


def test_hooks_removed_and_mode_restored_when_forward_raises():
    class Boom(nn.Module):
        def __init__(self):
            super().__init__()
            self.inner = nn.Linear(2, 2)

        def forward(self, x):
            self.inner(x)
            raise RuntimeError("boom")

    net = Boom().train()
    with pytest.raises(RuntimeError, match="boom"):
        extract_embeddings(net, torch.rand(2, 2), "inner")
    assert not net.inner._forward_hooks
    assert net.training


def test_unknown_layer_lists_valid_layers():
    net = _net()
    with pytest.raises(ValueError, match=r"unknown layer.*'nope'.*valid layers.*'0', '1'"):
        extract_embeddings(net, torch.rand(2, 6), "nope")
    assert list_layers(net) == ["0", "1", "2", "3", "4", "4.0"]


def test_layer_not_called_is_an_error():
    class Skip(nn.Module):
        def __init__(self):
            super().__init__()
            self.used = nn.Linear(2, 2)
            self.unused = nn.Linear(2, 2)

        def forward(self, x):
            return self.used(x)

    with pytest.raises(ValueError, match="'unused' was not called"):
        extract_embeddings(Skip(), torch.rand(2, 2), "unused")


def test_dict_batches_are_sliced_per_key():
    class Two(nn.Module):
        def __init__(self):
            super().__init__()
            self.mix = nn.Identity()

        def forward(self, batch):
            return self.mix(torch.cat([batch["a"], batch["b"]], dim=1))

    a, b = torch.rand(7, 2), torch.rand(7, 3)
    emb = extract_embeddings(Two(), {"a": a, "b": b}, "mix", batch_size=3)
    torch.testing.assert_close(emb, torch.cat([a, b], dim=1))
    with pytest.raises(ValueError, match="disagree on the batch size"):
        extract_embeddings(Two(), {"a": a, "b": b[:2]}, "mix")


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"batch_size": 0}, ValueError, "batch_size"),
        ({"layers": []}, ValueError, "at least one layer"),
    ],
)
def test_bad_arguments(kwargs, error, match):
    args = {"layers": "0", **kwargs}
    with pytest.raises(error, match=match):
        extract_embeddings(_net(), torch.rand(2, 6), **args)


def test_non_module_and_empty_input():
    with pytest.raises(TypeError, match="nn.Module"):
        list_layers(lambda x: x)
    with pytest.raises(ValueError, match="no inputs"):
        extract_embeddings(_net(), torch.rand(0, 6), "0")


def test_returned_embeddings_are_ordinary_tensors():
    emb = extract_embeddings(_net(), torch.rand(4, 6), "0")
    assert not emb.is_inference() and not emb.requires_grad
    emb.add_(1.0)  # in-place use outside inference mode must work
