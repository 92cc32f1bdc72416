"""Sequential certification restricted to label subsets, against exact answers.

Logits ``(t, -t, 0.3)`` of ``t = u . x`` (a :class:`ProjectedLinear`): restricted to
``{0, 1}`` the base classifier is ``sign(t)`` (exact smoothed radius ``|t|``), restricted to
``{0, 2}`` it is ``[t > 0.3]`` (exact radius ``|t - 0.3|``); each is a two-class linear
classifier, so its ``pA`` at distance ``d`` is ``Phi(d / sigma)``. Trials run through the
real sampler with a large ``alpha`` (0.2) so that violations (a radius beyond the exact one
certified, or any radius for a wrongly selected label) happen; per subset, their count must
stay under the ``1 - 1e-6`` quantile of ``Binomial(trials, alpha)`` and within 5 standard
deviations of the exact expectation (selection and the look-by-look crossing computed
exactly, :func:`~hierclass.smoothing.sequential.exact.certify_probability`).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.stats import binom, norm

from hierclass import Smooth
from hierclass.smoothing.sequential.exact import certify_probability
from hierclass.smoothing.sequential.sessions import (
    ABSTAIN,
    certify_radii,
    certify_radii_many,
    radius_thresholds,
    sequential_setup,
)

from .helpers import ProjectedLinear

SIGMA = 0.5
ALPHA = 0.2
N0 = 50
RADII = SIGMA * np.array([0.0, 0.5, 1.0, 1.5, 2.0, 2.5])
SUBSETS = [(0, 1), (0, 2)]
CUTS = {(0, 1): 0.0, (0, 2): 0.3}  # where each restricted classifier changes its label
SCHEDULE = dict(max_n=400, first=50, ratio=2.0)


@pytest.fixture(scope="module")
def model():
    return ProjectedLinear([1.0, -1.0, 0.0], [0.0, 0.0, 0.3], d=2)


def _expected_violation(d: float, rows, looks, thresholds) -> float:
    """Exact violation probability of one subset's certificate at distance ``d``."""
    p = norm.cdf(d / SIGMA)  # of the smoothed top label within the subset
    beyond = thresholds[RADII > d]
    p_right = binom.sf(np.ceil(N0 / 2) - 1, N0, p)  # selection: ties go to the smaller label
    seq, kw = rows.sequence, dict(final_alpha=rows.final_alpha)
    v_right = certify_probability(p, seq, looks, beyond.min(), **kw) if beyond.size else 0.0
    v_wrong = certify_probability(1 - p, seq, looks, thresholds.min(), **kw)
    return p_right * v_right + (1 - p_right) * v_wrong


def test_subset_violations_within_alpha_and_exact_expectation(model):
    # t on both sides of both cuts: distances 0.05-3 sigma to the subset {0, 1}'s cut at 0
    ts = np.concatenate([SIGMA * np.linspace(0.05, 3.0, 25), -SIGMA * np.linspace(0.05, 3.0, 25)])
    ts = np.repeat(ts, 40)  # 2,000 trials
    smooth = Smooth(model, 3, SIGMA, seed=11)
    xs = [model.point(t) for t in ts]
    out = dict(
        (res.index, res)
        for res, _ in certify_radii_many(
            smooth, xs, RADII, N0, alpha=ALPHA, batch_size=4096, indices=range(ts.size),
            subsets=SUBSETS, **SCHEDULE,
        )
    )  # fmt: skip
    assert sorted(out) == list(range(ts.size))
    setup = sequential_setup(SIGMA, RADII, N0, SCHEDULE["max_n"], ALPHA, 50, 2.0)
    rows = setup.decisions(0)  # the library's rule: its sequence and final test
    thresholds = radius_thresholds(RADII, SIGMA)
    memo: dict = {}
    for j, subset in enumerate(SUBSETS):
        a, b = subset
        count, probs = 0, []
        for i, t in enumerate(ts):
            res = out[i]
            d = abs(t - CUTS[subset])
            top = a if t > CUTS[subset] else b  # the smoothed classifier's label in L
            cert = res.subset_certified[j]
            if res.subset_labels[j] != ABSTAIN and res.subset_labels[j] != top:
                count += int(cert.any())  # a certificate for the wrong label
            elif res.subset_labels[j] == top:
                count += int((cert & (RADII > d)).any())
            else:
                assert not cert.any()  # abstained: nothing certified
            key = round(d, 12)
            if key not in memo:
                memo[key] = _expected_violation(d, rows, setup.looks, thresholds)
            probs.append(memo[key])
        probs = np.array(probs)
        assert probs.max() <= ALPHA  # the theorem, checked exactly
        assert count <= int(binom.ppf(1 - 1e-6, ts.size, ALPHA)), subset
        sd = np.sqrt((probs * (1 - probs)).sum())
        assert abs(count - probs.sum()) <= 5 * sd + 1, (subset, count, probs.sum())
        assert count > 0  # alpha = 0.2: violations are observable, the count is informative
    n_used = np.array([r.n_samples for r in out.values()])
    assert n_used.min() < SCHEDULE["max_n"]  # inputs did stop early


def test_subsets_share_the_draws_and_decide_like_a_restricted_model(model):
    """A subset's decisions equal a flat run of the restricted classifier on the same noise."""

    class Restricted(torch.nn.Module):
        def __init__(self, base, labels):
            super().__init__()
            self.base, self.labels = base, list(labels)

        def forward(self, x):  # far below outside L: argmax over L, the subset's classifier
            out = self.base(x)
            mask = torch.full_like(out, -1e6)
            mask[:, self.labels] = 0.0
            return out + mask

    smooth = Smooth(model, 3, SIGMA, seed=5)
    for i, t in enumerate([0.1, 0.45, -0.7, 1.3]):
        res = certify_radii(
            smooth, model.point(t), RADII, N0, 4000, 0.01, 1024, index=i, subsets=SUBSETS
        )
        assert int(res.counts.sum()) == res.n_samples
        for j, subset in enumerate(SUBSETS):
            alone = certify_radii(
                Smooth(Restricted(model, subset).eval(), 3, SIGMA, seed=5), model.point(t), RADII,
                N0, 4000, 0.01, 1024, index=i,
            )  # fmt: skip
            assert res.subset_labels[j] == alone.label
            assert res.subset_certified[j].tolist() == alone.certified.tolist()
            assert res.subset_p_lower[j] >= alone.p_lower  # a running max over more looks
            assert res.n_samples >= alone.n_samples  # sampling ran until every subset decided


def test_subset_arguments_are_checked(model):
    smooth = Smooth(model, 3, SIGMA)
    with pytest.raises(ValueError, match="outside the classifier's labels"):
        certify_radii(smooth, model.point(0.2), [0.1], subsets=[(0, 5)])
    with pytest.raises(ValueError, match="empty"):
        certify_radii(smooth, model.point(0.2), [0.1], subsets=[()])


def test_smooth_certify_radii_takes_subsets_and_matches_the_function(model):
    """``Smooth.certify_radii(subsets=)`` is the module function on the same noise."""
    smooth = Smooth(model, 3, SIGMA, seed=5)
    x = model.point(0.45)
    via_method = smooth.certify_radii(x, RADII, N0, 4000, 0.01, 1024, index=3, subsets=SUBSETS)
    direct = certify_radii(smooth, x, RADII, N0, 4000, 0.01, 1024, index=3, subsets=SUBSETS)
    assert via_method.subsets == tuple(SUBSETS)
    assert via_method.subset_labels.tolist() == direct.subset_labels.tolist()
    assert via_method.subset_certified.tolist() == direct.subset_certified.tolist()
    assert via_method.n_samples == direct.n_samples
    with pytest.raises(ValueError, match="outside the classifier's labels"):
        smooth.certify_radii(x, [0.1], subsets=[(0, 5)])


def test_dataset_rows_carry_the_subset_results(model, tmp_path):
    """certify_radii_dataset(subsets=...) writes, per row, what certify_radii_many decides."""
    import json

    from hierclass.smoothing.runs.sequential import certify_radii_dataset

    ts = [-1.0, 0.15, 0.8, 1.6]
    x = torch.stack([model.point(t) for t in ts]).float()
    y = torch.tensor([1, 0, 0, 0])
    smooth = Smooth(model, 3, SIGMA, seed=4)
    kw = dict(alpha=0.01, batch_size=4096, **SCHEDULE)
    out = tmp_path / "seq.tsv"
    with pytest.raises(ValueError, match="subset"):
        certify_radii_dataset(smooth, x, y, RADII, n0=N0, subsets=[[0, 7]], out=out, **kw)
    assert not out.exists()  # refused before any file was opened
    table = certify_radii_dataset(
        smooth, x, y, RADII, n0=N0, subsets=SUBSETS, out=out, verbose=False, **kw
    )
    direct = {
        r.index: r
        for r, _ in certify_radii_many(
            smooth, list(x), RADII, N0, indices=range(len(ts)), subsets=SUBSETS, **kw
        )
    }
    assert table["idx"].tolist() == list(range(len(ts)))
    for i, extra in zip(table["idx"], table["extra"]):
        e, r = json.loads(extra), direct[int(i)]
        assert e["subsets"] == [list(s) for s in SUBSETS]
        assert e["subset_labels"] == r.subset_labels.tolist()
        assert e["subset_certified"] == r.subset_certified.astype(int).tolist()
        assert e["subset_p_lower"] == pytest.approx(r.subset_p_lower.tolist(), abs=0)
    # at t = 1.6 the subset {0, 2} puts label 0 at 1.3 (2.6 sigma) from its cut: certified
    # at the first four radii (up to 1.5 sigma) within the 400 draws
    assert json.loads(table["extra"][3])["subset_certified"][1][:4] == [1, 1, 1, 1]
