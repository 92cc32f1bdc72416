"""Sequential certification through the real sampler: exact radii, records, resume, shards, ISS.

The statistics are tested on simulated counts in test_sequential_soundness.py; here a few
inputs of a two-class linear classifier (exact radius = distance to the boundary) go through
``Smooth``'s sampler end to end. With ``alpha = 1e-3`` and fixed seeds, each soundness check
fails with probability ``<= 1e-3`` by the theorem.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hierclass import Smooth
from hierclass.smoothing.analysis.tables import certified_accuracy
from hierclass.smoothing.certificates.confidence_sequences import geometric_looks
from hierclass.smoothing.flat.iss import plan_size
from hierclass.smoothing.records.rows import certified_column
from hierclass.smoothing.records.tsv import merge_results, read_results
from hierclass.smoothing.runs.distributed import shard
from hierclass.smoothing.runs.sequential import certify_radii_dataset
from hierclass.smoothing.sequential.sessions import (
    check_radii_to_certify,
    radius_thresholds,
    sequential_setup,
)

from .helpers import ProjectedLinear

SIGMA = 0.5
RADII = [0.0, 0.25, 0.5, 1.0]


@pytest.fixture(scope="module")
def linear():
    return ProjectedLinear([1.0, -1.0], [0.3, -0.3])  # boundary at t = -0.3, class 0 above


def _data(model, ts):
    x = torch.stack([model.point(t) for t in ts]).float()
    y = torch.tensor([0 if t > -0.3 else 1 for t in ts])
    return x, y


def test_certify_radii_against_exact_radius(linear):
    smooth = Smooth(linear, 2, SIGMA, seed=3)
    for i, t0 in enumerate([-1.5, -0.5, 0.05, 0.4, 1.2]):
        exact = abs(t0 + 0.3)
        res = smooth.certify_radii(linear.point(t0), RADII, max_n=20_000, batch_size=4096, index=i)
        assert res.label == (0 if t0 > -0.3 else 1)
        for r, c in zip(res.radii, res.certified):
            if c:
                assert r <= exact  # soundness
        assert res.radius <= exact and res.radius_bound <= exact
        assert int(res.counts.sum()) == res.n_samples <= 20_000
        assert int(res.counts_select.sum()) == 100
        assert res.n_samples in sequential_setup(SIGMA, RADII, 100, 20_000, 1e-3).looks
        # radii far from the exact radius are decided early (sampling stopped before max_n)
        if min(abs(exact - r) for r in RADII) > 0.15:
            assert res.n_samples < 20_000


def test_an_input_that_never_errs_stops_at_the_first_possible_draw(linear):
    """Far from the boundary no draw is misclassified: every radius is certified at the
    fewest all-correct draws that can certify the largest, a look of its own."""
    smooth = Smooth(linear, 2, SIGMA, seed=3)
    res = smooth.certify_radii(linear.point(6.0), RADII, max_n=20_000, index=0)
    assert res.certified.all() and res.counts[1] == 0
    setup = sequential_setup(SIGMA, RADII, 100, 20_000, 1e-3)
    top = radius_thresholds(np.array([max(RADII)]), SIGMA)[0]
    assert res.n_samples == setup.decisions(1).sequence.all_correct_n(top, 20_000)
    assert res.n_samples == 333 and 333 in setup.looks  # the grid has 320 and 384


def test_certify_radii_independent_of_batch_size_and_order(linear):
    smooth = Smooth(linear, 2, SIGMA, seed=5)
    x, y = _data(linear, [0.0, 0.6, -0.8, 1.5])
    a = certify_radii_dataset(smooth, x, y, RADII, max_n=8000, batch_size=333, verbose=False)
    b = certify_radii_dataset(
        smooth, x, y, RADII, max_n=8000, batch_size=4096, indices=[3, 1, 0, 2], verbose=False
    )
    b = b.select(np.argsort(b["idx"]))
    for col in ("predict", "n_samples", "counts", "p_lower", *map(certified_column, RADII)):
        assert np.array_equal(a[col], b[col]), col
    # one input alone gives the same row as inside the data set run
    one = smooth.certify_radii(x[2], RADII, max_n=8000, batch_size=64, index=2)
    assert one.n_samples == int(a["n_samples"][2])
    assert one.certified.tolist() == [a[certified_column(r)][2] == 1 for r in RADII]


def test_dataset_records_feed_the_curve_resume_and_shards(linear, tmp_path):
    smooth = Smooth(linear, 2, SIGMA, seed=7)
    ts = [-1.2, -0.2, 0.1, 0.35, 0.8, 1.4]
    x, y = _data(linear, ts)
    kw = dict(max_n=6000, batch_size=1000, verbose=False)
    full = certify_radii_dataset(smooth, x, y, RADII, out=tmp_path / "full.tsv", **kw)
    assert full["idx"].tolist() == list(range(len(ts)))
    # the curve from the records equals the per-radius decisions
    for r in RADII:
        cert = (full[certified_column(r)] == 1) & (full["correct"] == 1)
        assert certified_accuracy(full, r) == pytest.approx(cert.mean())
    exact = np.abs(np.array(ts) + 0.3)
    assert np.all(full["radius"] <= exact)
    # resume: a run killed after three rows (plus a cut-off line) continues to the same file
    part = tmp_path / "part.tsv"
    certify_radii_dataset(smooth, x, y, RADII, indices=[4, 0, 2], out=part, **kw)
    with open(part, "a") as fh:
        fh.write("5\t1\t")  # a row cut short by a kill
    resumed = certify_radii_dataset(smooth, x, y, RADII, out=part, **kw)
    # shards: round-robin halves merged by index
    paths = []
    for rank in range(2):
        p = tmp_path / f"shard{rank}.tsv"
        certify_radii_dataset(smooth, x, y, RADII, indices=shard(range(6), rank, 2), out=p, **kw)
        paths.append(p)
    merged = merge_results(paths, tmp_path / "merged.tsv")
    for other in (resumed, merged, read_results(tmp_path / "merged.tsv")):
        assert other["idx"].tolist() == full["idx"].tolist()
        for col in full.columns:
            if col != "time":
                assert np.array_equal(other[col], full[col]), col


def test_bad_arguments(linear):
    smooth = Smooth(linear, 2, SIGMA)
    x = linear.point(0.0)
    with pytest.raises(ValueError, match="finite and >= 0"):
        smooth.certify_radii(x, [0.5, float("inf")])
    with pytest.raises(ValueError, match="distinct"):
        smooth.certify_radii(x, [0.5, 0.5])
    with pytest.raises(ValueError, match="at least one radius"):
        smooth.certify_radii(x, [])
    with pytest.raises(TypeError, match="sequence of floats"):
        check_radii_to_certify("0.5")
    with pytest.raises(ValueError, match="max_n must be an int >= 1"):
        smooth.certify_radii(x, [0.5], max_n=0)
    with pytest.raises(ValueError, match="ratio must be"):
        geometric_looks(100, ratio=1.0)
    with pytest.raises(ValueError, match="radius_loss"):
        smooth.certify_iss(x, radius_loss=-0.1)


def test_iss_sound_and_cheaper(linear):
    smooth = Smooth(linear, 2, SIGMA, seed=11)
    for i, t0 in enumerate([0.2, 0.9, 1.6]):
        exact = abs(t0 + 0.3)
        res = smooth.certify_iss(linear.point(t0), radius_loss=0.05, batch_size=4096, index=i)
        full_label, full_radius = smooth.certify(linear.point(t0), batch_size=4096, index=i)
        assert res.label == full_label == 0
        assert res.radius <= exact  # a 1 - alpha Clopper-Pearson certificate
        assert int(res.counts.sum()) == res.n_samples and int(res.counts_pilot.sum()) == 1000
        assert res.total_samples == res.n_samples + 1100
        assert res.n_samples < 100_000 and res.loss_bound <= 0.05
        # the realised loss vs fixed n: within the budget up to the final count's noise
        # (radius moves by < 0.03 per 3 standard deviations of the count at these pA)
        assert full_radius - res.radius < 0.05 + 0.03


def test_plan_size_meets_the_budget():
    for p_lo, p_hi in [(0.6, 0.7), (0.95, 0.97), (0.999, 1.0)]:
        n, gap = plan_size(p_lo, p_hi, max_n=100_000, min_n=1000, alpha=1e-3, sigma=0.5, loss=0.05)
        assert gap <= 0.05 and 1000 <= n <= 100_000
        if n > 1000:  # the next smaller size on the grid would break the budget
            smaller, g2 = plan_size(
                p_lo, p_hi, max_n=100_000, min_n=1000, alpha=1e-3, sigma=0.5, loss=gap / 2
            )
            assert smaller >= n
    # a zero budget needs the full sample
    assert plan_size(0.9, 0.95, max_n=5000, min_n=100, alpha=1e-3, sigma=0.5, loss=0.0)[0] == 5000


def test_the_last_look_adds_one_fixed_n_bound_at_a_fifth_of_alpha():
    """At max_n a Clopper-Pearson bound at 0.2 alpha certifies what it clears, where the
    sequence (at 0.8 alpha) alone would not; nowhere else."""
    from scipy.stats import norm

    from hierclass.smoothing.certificates.bounds import clopper_pearson_lower
    from hierclass.smoothing.sequential.sessions import FINAL_SHARE, sequential_setup

    setup = sequential_setup(0.25, [0.0, 0.75], 100, 100_000, 1e-3)
    t = norm.cdf(3.0)
    for failures in (90, 100):
        s = 100_000 - failures
        d = setup.decisions(1)
        assert d.sequence.alpha == pytest.approx(0.8e-3) and d.final_alpha == pytest.approx(2e-4)
        assert not d.sequence.passes(s, 100_000, t)  # the sequence alone: undecided
        d.update([s], setup.last_look)
        cp = clopper_pearson_lower(s, 100_000, FINAL_SHARE * 1e-3)
        assert bool(d.status[0, 1] == 1) == bool(cp >= t)
        assert d.lower[0] >= cp
    assert failures == 100 and d.status[0, 1] == 0  # 100 failures: not cleared by either
    # one look earlier, counts that the fixed-n bound would clear but the sequence does not
    # stay undecided: that bound is spent at max_n only
    n = int(setup.looks[-2])
    f = next(f for f in range(40, 200) if clopper_pearson_lower(n - f, n, 2e-4) < t) - 1
    assert not setup.decisions(1).sequence.passes(n - f, n, t)
    d = setup.decisions(1)
    d.update([n - f], setup.last_look - 1)
    assert d.status[0, 1] == 0
