"""Theory: the Tsipras setting, Theorem 1, the meta-feature, Fig. 9 and the PRF/ECC toy.

Monte-Carlo checks use exact Clopper-Pearson intervals at alpha = 1e-3 (per check), so a
correct implementation fails a check with probability below 0.1%, fixed seeds make it
reproducible, and a wrong closed form (e.g. the paper's typo) is far outside the interval.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.stats import norm

from hierclass.theory import (
    PRFECCTask,
    SimulatedAccuracy,
    TsiprasDistribution,
    fig9_markdown,
    fig9_table,
    linear_rule_accuracy,
    meta_feature_accuracy,
    meta_feature_rule,
    min_protected_features,
    plot_fig9,
    prf_ecc_comparison,
    restricted_linf_attack,
    robust_rule,
    robust_rule_accuracy,
    simulate_accuracy,
    standard_rule,
    theorem1_bound,
)
from hierclass.theory.prf_ecc import RepetitionCode

ALPHA = 1e-3


def test_sampler_marginals():
    dist = TsiprasDistribution(d=50, p=0.8, eta=0.3)
    x, y = dist.sample(4000, seed=1)
    assert x.shape == (4000, 51) and set(y.tolist()) == {-1, 1}
    agree = SimulatedAccuracy(int((x[:, 0] == y).sum()), 4000, ALPHA)
    assert agree.contains(0.8)
    assert SimulatedAccuracy(int((y == 1).sum()), 4000, ALPHA).contains(0.5)
    # y * x_weak ~ N(eta, 1): the mean of 200,000 such values is within 4 sd of eta
    z = (y[:, None] * x[:, 1:]).mean().item()
    assert abs(z - 0.3) < 4 / math.sqrt(4000 * 50)
    assert torch.equal(dist.sample(5, seed=3)[0], dist.sample(5, seed=3)[0])


@pytest.mark.parametrize(("k", "eta"), [(1, 0.5), (4, 0.25), (9, 0.3), (25, 0.1)])
def test_meta_feature_accuracy_matches_simulation_under_attack(k, eta):
    dist = TsiprasDistribution(d=40, p=0.9, eta=eta)
    rule = meta_feature_rule(40, k)
    sim = simulate_accuracy(rule, dist, 20000, eps=2 * eta, protected_k=k, seed=k, alpha=ALPHA)
    closed = meta_feature_accuracy(k, eta)
    assert sim.contains(closed)
    assert closed == pytest.approx(0.5 * (1 + math.erf(math.sqrt(k) * eta / math.sqrt(2))))
    # the paper's printed form 1 - Phi^-1(-sqrt(k) eta) is undefined (Phi^-1 takes a
    # probability); the intended 1 - Phi(-sqrt(k) eta) is the same number as ours
    assert math.isnan(norm.ppf(-math.sqrt(k) * eta))
    assert closed == pytest.approx(1 - norm.cdf(-math.sqrt(k) * eta))


def test_meta_feature_claim_k_at_least_9_over_eta_squared():
    for eta in (0.05, 0.2, 1.0):
        k = math.ceil(9 / eta**2)
        assert meta_feature_accuracy(k, eta) > 0.99
    assert min_protected_features(0.2, 0.99) == min(
        k for k in range(1, 1000) if norm.cdf(math.sqrt(k) * 0.2) >= 0.99
    )


@pytest.mark.parametrize(("k", "eta"), [(0, 0.2), (30, 0.2), (60, 0.1)])
def test_standard_rule_closed_form_matches_simulated_attack(k, eta):
    d, p = 80, 0.9
    rule = standard_rule(d, p, eta)
    dist = TsiprasDistribution(d=d, p=p, eta=eta)
    nat = simulate_accuracy(rule, dist, 20000, seed=7, alpha=ALPHA)
    adv = simulate_accuracy(rule, dist, 20000, eps=2 * eta, protected_k=k, seed=7, alpha=ALPHA)
    assert nat.contains(linear_rule_accuracy(rule, p, eta))
    assert adv.contains(linear_rule_accuracy(rule, p, eta, eps=2 * eta, protected_k=k))
    assert adv.accuracy < nat.accuracy  # the attack bites


def test_attack_is_worst_case_for_linear_rules_and_respects_invariant():
    dist = TsiprasDistribution(d=10, p=0.9, eta=0.5)
    x, y = dist.sample(500, seed=0)
    w = torch.tensor([0.5, 1.0, -2.0, 0.0, 1.0, 3.0, -1.0, 1.0, 0.2, 0.0, 1.0], dtype=x.dtype)
    from hierclass.theory import LinearRule

    rule = LinearRule(tuple(w.tolist()))
    adv = restricted_linf_attack(rule, x, y, eps=0.7, protected_k=3)
    delta = adv - x
    assert torch.all(delta[:, :4] == 0)  # robust feature and 3 protected features untouched
    assert delta.abs().max() <= 0.7 + 1e-12
    margin_adv = y * (adv @ w)
    gen = torch.Generator().manual_seed(0)
    for _ in range(20):  # no random point of the same ball does better
        rand = (torch.rand(x.shape, generator=gen, dtype=x.dtype) * 2 - 1) * 0.7
        rand[:, :4] = 0
        assert torch.all(margin_adv <= y * ((x + rand) @ w) + 1e-9)


@pytest.mark.parametrize(("p", "eta", "d"), [(0.95, 0.1, 200), (0.9, 0.2, 50), (0.7, 0.05, 400)])
def test_theorem1_holds_for_standard_and_is_tight_for_robust_feature(p, eta, d):
    rule = standard_rule(d, p, eta)
    nat = linear_rule_accuracy(rule, p, eta)
    adv = linear_rule_accuracy(rule, p, eta, eps=2 * eta)
    assert adv <= theorem1_bound(nat, p) + 1e-12
    # the robust feature alone: natural p, adversarial p, and the bound p/(1-p)*(1-p) = p
    only = robust_rule_accuracy(0, p, eta)
    assert only == pytest.approx(p)
    assert theorem1_bound(only, p) == pytest.approx(only)
    # and the simulated attack agrees: its lower CP bound stays under the cap
    sim = simulate_accuracy(rule, TsiprasDistribution(d, p, eta), 5000, eps=2 * eta, seed=2)
    assert sim.interval[0] <= theorem1_bound(nat, p)


def test_theorem1_bound_values_and_errors():
    assert theorem1_bound(0.99, 0.95) == pytest.approx(0.19)
    assert theorem1_bound(0.5, 0.95) == 1.0
    with pytest.raises(ValueError, match="natural_accuracy"):
        theorem1_bound(1.5, 0.9)
    with pytest.raises(ValueError, match=r"p must be in \[0.5, 1\)"):
        theorem1_bound(0.9, 1.0)


def test_robust_rule_closed_form_and_simulation():
    d, p, eta, k = 60, 0.8, 0.2, 20
    rule = robust_rule(d, k, p, eta)
    dist = TsiprasDistribution(d=d, p=p, eta=eta)
    closed = robust_rule_accuracy(k, p, eta)
    assert closed == pytest.approx(linear_rule_accuracy(rule, p, eta, eps=2 * eta, protected_k=k))
    nat = simulate_accuracy(rule, dist, 20000, seed=5, alpha=ALPHA)
    adv = simulate_accuracy(rule, dist, 20000, eps=2 * eta, protected_k=k, seed=5, alpha=ALPHA)
    assert nat.correct == adv.correct  # it reads nothing the adversary may touch
    assert adv.contains(closed)
    assert robust_rule_accuracy(16, 0.5, 0.25) == pytest.approx(meta_feature_accuracy(16, 0.25))


def test_fig9_table_shape_and_facts(tmp_path):
    rows = fig9_table()
    assert {r["eta"] for r in rows} == {0.1, 0.2, 0.3, 0.5, 1.0}
    for eta in {r["eta"] for r in rows}:
        sel = sorted((r for r in rows if r["eta"] == eta), key=lambda r: r["k"])
        robust = [r["robust_adv"] for r in sel]
        assert all(b >= a - 1e-12 for a, b in zip(robust, robust[1:]))  # more invariance helps
        assert robust[0] == pytest.approx(0.95)  # k = 0: the robust feature alone
        # k = d: nothing left to attack; the robust rule is the standard rule
        assert sel[-1]["k"] == 200
        assert sel[-1]["robust_adv"] == pytest.approx(sel[-1]["standard_nat"])
        assert sel[0]["standard_adv"] <= sel[0]["bound_no_invariant"] + 1e-12
    table = fig9_markdown(rows)
    assert table.count("\n") == len(rows) + 1
    path = tmp_path / "fig9.png"
    plot_fig9(rows, path)
    assert path.read_bytes()[:4] == b"\x89PNG"
    with pytest.raises(ValueError, match="eta <= 1"):
        fig9_table(etas=(1.5,))
    with pytest.raises(ValueError, match="k must be in 0..200"):
        fig9_table(ks=(201,))


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: TsiprasDistribution(d=0, p=0.9, eta=0.1), "d must be"),
        (lambda: TsiprasDistribution(d=3, p=0.3, eta=0.1), "p must be"),
        (lambda: TsiprasDistribution(d=3, p=0.9, eta=-1.0), "eta must be"),
        (lambda: meta_feature_accuracy(0, 0.5), "k must be"),
        (lambda: meta_feature_rule(5, 6), "k must be in 1..5"),
        (lambda: robust_rule(5, 0, 0.5, 0.1), "no unperturbable feature"),
        (
            lambda: simulate_accuracy(meta_feature_rule(3, 1), TsiprasDistribution(4, 0.9, 1.0), 5),
            "d=3",
        ),
    ],
)
def test_theory_input_errors(call, match):
    with pytest.raises((ValueError, TypeError), match=match):
        call()


def test_repetition_code_corrects_what_it_claims():
    code = RepetitionCode(5)
    rng = np.random.default_rng(0)
    bits = rng.integers(0, 2, (50, 7), dtype=np.uint8)
    assert np.array_equal(code.decode(code.encode(bits)), bits)
    with pytest.raises(ValueError, match="odd"):
        RepetitionCode(4)


def test_prf_ecc_toy_with_and_without_invariant():
    n_test = 1000
    rows = prf_ecc_comparison(n_bits=12, r=5, n_train=2000, n_test=n_test, seed=0)
    by = {(r["learner"].split(" ")[0], r["invariant"]): r for r in rows}
    assert (by["first", False]["natural"], by["first", False]["adversarial"]) == (1.0, 0.0)
    assert (by["first", True]["natural"], by["first", True]["adversarial"]) == (1.0, 1.0)
    assert (by["key", False]["natural"], by["key", False]["adversarial"]) == (1.0, 1.0)
    # without the key the codeword is noise to a learner: accuracy ~ 1/2 (binomial interval)
    keyless = by["keyless", False]["natural"]
    assert SimulatedAccuracy(round(keyless * n_test), n_test, ALPHA).contains(0.5)


def test_prf_ecc_attack_stays_within_decoding_radius():
    task = PRFECCTask(n_bits=10, r=5)
    z, b = task.sample(200, seed=3)
    attacked = task.attack(z, b, may_flip_first=False, seed=4)
    assert np.array_equal(attacked[:, 0], z[:, 0])
    assert np.array_equal(task.code.decode(attacked[:, 1:]), task.code.decode(z[:, 1:]))
    assert (attacked != z).sum(axis=1).min() == (task.n_bits + 1) * 2  # 2 flips per block
