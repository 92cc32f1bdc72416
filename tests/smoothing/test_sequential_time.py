"""The ``time`` column of the sequential drivers measures each input's own draws (issue 12).

The same accounting as the fixed-``n`` driver (``sampling.RowClock``, see
``test_time_column.py``): an input is charged its rows of every batch its selection and
looks rode in, summed over its looks.
"""

import pytest
import torch

from hierclass import Hierarchy, LabelPartition, RenormalizedLeaf, Router, Smooth
from hierclass.smoothing.engine import sampling
from hierclass.smoothing.hierarchy.smooth import HierarchicalSmooth

from .test_time_column import BATCH, DT, N0, FakeClock, _model


def test_sequential_inputs_are_charged_their_own_draws(monkeypatch):
    """Each input pays for its selection and the looks it drew, however they were packed."""
    from hierclass.smoothing.runs.sequential import certify_radii_dataset

    fake = FakeClock()
    monkeypatch.setattr(sampling, "_now", fake)

    def advance(rows):
        fake.now += rows * DT

    s = Smooth(_model(advance), 2, sigma=0.5)
    x = torch.tensor([[2.0, 0, 0], [0.05, 0, 0], [-1.0, 0, 0], [0.4, 0, 0]])
    y = torch.tensor([0, 0, 1, 0])
    t = certify_radii_dataset(
        s, x, y, [0.0, 0.25], n0=N0, max_n=2000, batch_size=BATCH, first=32, verbose=False
    )
    assert len(set(t["n_samples"].tolist())) > 1  # inputs stopped at different looks
    assert t["time"].tolist() == pytest.approx(((N0 + t["n_samples"]) * DT).tolist(), abs=1e-4)
    assert t["time"].sum() == pytest.approx(fake.now, abs=1e-3)


def test_sequential_hierarchy_times_sum_to_the_sampling_time(monkeypatch):
    from hierclass.smoothing.runs.sequential import certify_hierarchy_radii_dataset

    fake = FakeClock()
    monkeypatch.setattr(sampling, "_now", fake)

    def advance(rows):
        fake.now += rows * DT

    p = LabelPartition([[0, 1], [2, 3]])
    flat = _model(advance)
    four = lambda b: torch.cat([flat(b), -flat(b)], 1) / 2  # noqa: E731
    h = Hierarchy(
        Router(_model(advance), p),
        [RenormalizedLeaf(four, [0, 1]), RenormalizedLeaf(four, [2, 3])],
    )
    hs = HierarchicalSmooth(h, sigma=0.5, flat=four)
    x = torch.tensor([[2.0, 0, 0], [0.05, 0, 0], [-1.0, 0, 0], [0.4, 0, 0]])
    y = torch.zeros(4, dtype=torch.long)
    res = certify_hierarchy_radii_dataset(
        hs, x, y, [0.0, 0.25], n0=N0, max_n=2000, batch_size=BATCH, first=32, verbose=False
    )
    times = res.hierarchy["time"]
    assert (times > 0).all() and times.sum() == pytest.approx(fake.now, abs=1e-3)
    assert res.flat["time"].tolist() == times.tolist()  # one input, one set of draws
    # an input that drew more was charged more
    drawn = [c.n_samples for c in sorted(res.certificates, key=lambda c: c.index)]
    order = sorted(range(4), key=lambda i: drawn[i])
    assert times[order[-1]] > times[order[0]]
