"""Smooth(amp_dtype=...): the votes are exactly those of the model run under autocast."""

from __future__ import annotations

import pytest
import torch

from hierclass import Smooth
from hierclass.models import SmallCNN
from hierclass.smoothing.engine import batch_size as bs_mod


def _model():
    torch.manual_seed(0)
    return SmallCNN(10, image_size=12).eval()


def test_counts_equal_those_of_the_autocast_model():
    model = _model()
    x = torch.rand(1, 12, 12)

    def by_hand(batch):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            return model(batch).float()

    amp = Smooth(model, 10, 0.5, seed=4, amp_dtype=torch.bfloat16)
    ref = Smooth(by_hand, 10, 0.5, seed=4)
    a = amp.certify_detailed(x, 20, 500, 0.01, 100, index=0).counts
    b = ref.certify_detailed(x, 20, 500, 0.01, 100, index=0).counts
    assert (a == b).all() and a.sum() == 500
    # and the precision really is reduced: bfloat16 logits differ from float32 ones
    xb = torch.rand(8, 1, 12, 12)
    with torch.no_grad():
        assert not torch.equal(by_hand(xb), model(xb))
    assert "amp_dtype=torch.bfloat16" in repr(amp)


def test_auto_probes_each_precision_separately(monkeypatch):
    calls = []
    real = bs_mod.probe_batch_size

    def spy(*a, **k):
        calls.append(1)
        return real(*a, **k)

    monkeypatch.setattr(bs_mod, "probe_batch_size", spy)
    bs_mod.clear_cache()
    model, x = _model(), torch.rand(1, 12, 12)
    Smooth(model, 10, 0.5).certify(x, 5, 20, 0.1, "auto")
    first = len(calls)
    Smooth(model, 10, 0.5).certify(x, 5, 20, 0.1, "auto")
    assert len(calls) == first  # cached
    Smooth(model, 10, 0.5, amp_dtype=torch.bfloat16).certify(x, 5, 20, 0.1, "auto")
    assert len(calls) > first  # another precision is another plan
    bs_mod.clear_cache()


def test_bad_amp_dtype():
    with pytest.raises(ValueError, match="amp_dtype must be None, torch.bfloat16 or"):
        Smooth(_model(), 10, 0.5, amp_dtype=torch.float64)


class _Autocast(torch.nn.Module):
    """The same model, run by hand under bfloat16 autocast."""

    def __init__(self, inner):
        super().__init__()
        self.inner = inner

    def forward(self, x):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            return self.inner(x).float()


def test_hierarchy_amp_counts_equal_those_of_autocast_nodes():
    from hierclass import Hierarchy, LabelPartition, RenormalizedLeaf, Router
    from hierclass.smoothing.hierarchy.smooth import HierarchicalSmooth

    torch.manual_seed(0)
    p = LabelPartition({"low": [0, 1, 2], "high": [3, 4]}, num_labels=5)
    flat, root = torch.nn.Linear(6, 5).eval(), torch.nn.Linear(6, 2).eval()

    def tree(wrap):
        leaves = [RenormalizedLeaf(wrap(flat), c) for c in ([0, 1, 2], [3, 4])]
        return Hierarchy(Router(wrap(root), p), leaves)

    x = torch.rand(6)
    amp = HierarchicalSmooth(tree(lambda m: m), 0.5, seed=1, amp_dtype=torch.bfloat16)
    ref = HierarchicalSmooth(tree(lambda m: _Autocast(m).eval()), 0.5, seed=1)
    a, b = amp.certify(x, 30, 400, 0.01, 64, index=0), ref.certify(x, 30, 400, 0.01, 64, index=0)
    assert a.route == b.route
    for na, nb in zip(a.nodes, b.nodes, strict=True):
        assert (na.counts == nb.counts).all() and na.counts.sum() == 400
