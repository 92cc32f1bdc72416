"""Bad inputs to Smooth, HierarchicalSmooth and the data-set drivers: clear errors, no clamping.

Each case names what was expected and what arrived.
"""

import pytest
import torch
from torch import nn

from hierclass import Hierarchy, LabelPartition, RenormalizedLeaf, Router, Smooth
from hierclass.smoothing import certify_hierarchy
from hierclass.smoothing.hierarchy.smooth import HierarchicalSmooth
from hierclass.smoothing.runs.fixed_n import certify_dataset

from ._battery import refused


class _Conv(nn.Module):
    """Image model ``[B, 1, 4, 4] -> [B, 4]``."""

    def __init__(self, bad=None):
        super().__init__()
        self.lin = nn.Linear(16, 4)
        self.bad = bad
        self.eval()

    def forward(self, x):
        out = self.lin(x.flatten(1))
        if self.bad is not None:
            out = out.clone()
            out[:, 0] = self.bad
        return out


def _tree(model):
    p = LabelPartition([[0, 1], [2, 3]])
    router = Router(nn.Sequential(nn.Flatten(), nn.Linear(16, 2)).eval(), p)
    return Hierarchy(router, [RenormalizedLeaf(model, [0, 1]), RenormalizedLeaf(model, [2, 3])])


IMG = torch.linspace(0.05, 0.95, 16).reshape(1, 4, 4)


@pytest.mark.parametrize(
    ("x", "match"),
    [
        (255 * IMG, r"must lie in \[0, 1\].*got values in \[\d"),
        (IMG - 2, r"must lie in \[0, 1\].*got values in \[-1"),
        (torch.full((1, 4, 4), float("nan")), r"must be finite, got 16 non-finite"),
        (torch.full((1, 4, 4), float("inf")), r"must be finite"),
    ],
)
def test_smooth_refuses_bad_images(x, match):
    with pytest.raises(ValueError, match=match):
        Smooth(_Conv(), 4, 0.25).certify(x, 10, 20, 0.1, 16)
    with pytest.raises(ValueError, match=match):
        Smooth(_Conv(), 4, 0.25).predict(x, 20, 0.1, 16)
    with pytest.raises(ValueError, match=match):
        HierarchicalSmooth(_tree(_Conv()), 0.25).certify(x, 10, 20, 0.1, 16)


def test_declared_range_is_in_force_and_nothing_is_clamped():
    s = Smooth(_Conv(), 4, 0.25, input_range=(0, 255))
    label, _ = s.certify(255 * IMG, 10, 20, 0.1, 16)  # accepted as declared
    assert label in (-1, 0, 1, 2, 3)
    with pytest.raises(ValueError, match=r"lie in \[0, 255\] \(the declared input_range\)"):
        s.certify(IMG + 255, 10, 20, 0.1, 16)
    with pytest.raises(ValueError, match="input_range must be"):
        Smooth(_Conv(), 4, 0.25, input_range=(1, 0))


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_logits_are_errors(bad):
    with pytest.raises(ValueError, match=r"non-finite scores \(nan or inf\)"):
        Smooth(_Conv(bad), 4, 0.25).certify(IMG, 10, 20, 0.1, 16)
    with pytest.raises(ValueError, match=r"non-finite scores \(nan or inf\)"):
        HierarchicalSmooth(_tree(_Conv(bad)), 0.25).certify(IMG, 10, 20, 0.1, 16)


def test_drivers_check_the_whole_data_set_before_sampling(tmp_path):
    x = torch.rand(4, 1, 4, 4)
    x[2] *= 300
    y = torch.tensor([0, 1, 2, 3])
    out = tmp_path / "r.tsv"
    with pytest.raises(ValueError, match=r"data set must lie in \[0, 1\].*\(samples \[2\]\)"):
        certify_dataset(Smooth(_Conv(), 4, 0.25), x, y, n0=10, n=20, out=out, verbose=False)
    assert not out.exists() or out.read_text().count("\n") <= 1  # nothing certified
    with pytest.raises(ValueError, match=r"data set must lie in \[0, 1\]"):
        certify_hierarchy(_tree(_Conv()), x, y, sigma=0.25, n0=10, n=20, verbose=False)
    with pytest.raises(TypeError, match="floating-point"):
        certify_dataset(Smooth(_Conv(), 4, 0.25), x.long(), y, n0=10, n=20, verbose=False)


def test_bad_leaf_certificate_and_index():
    valid = r"leaf_certificate must be one of \('renormalized', 'margin'\)"
    with pytest.raises(ValueError, match=valid + ", got 'ratio'"):
        HierarchicalSmooth(_tree(_Conv()), 0.25, leaf_certificate="ratio")
    with pytest.raises(ValueError, match=valid + ", got 'cohen'"):  # the removed old name
        HierarchicalSmooth(_tree(_Conv()), 0.25, leaf_certificate="cohen")
    with pytest.raises(TypeError, match="unexpected keyword argument 'method'"):
        HierarchicalSmooth(_tree(_Conv()), 0.25, method="renormalized")
    with pytest.raises(ValueError, match="noise indices must be >= 0, got -1"):
        Smooth(_Conv(), 4, 0.25).certify(IMG, 10, 20, 0.1, 16, index=-1)
    with pytest.raises(TypeError, match="index must be an int >= 0 or None, got float"):
        Smooth(_Conv(), 4, 0.25).certify(IMG, 10, 20, 0.1, 16, index=1.5)


@pytest.mark.parametrize("value", [1.5, "3", None, True, 0, -2, 2.0], ids=repr)
def test_check_count_and_positive_int_answer_alike(value):
    # one rule for every count: the same type and the same words for the same non-integer
    from hierclass._utils.checks import positive_int
    from hierclass.smoothing.engine.prepare import check_count

    with refused((TypeError, ValueError), "n must be an int >= 1", repr(value)) as ours:
        check_count("n", value)
    with refused((TypeError, ValueError), "n must be an int >= 1", repr(value)) as theirs:
        positive_int(value, "n")
    assert type(ours.exc) is type(theirs.exc) and ours.message == theirs.message
