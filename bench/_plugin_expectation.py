"""Sequential vs fixed-n on the same images, in expectation rather than on one noise draw.

Twenty images make a noisy comparison: one image whose ``pA`` sits just above a threshold is
five points of certified accuracy, and whether a given run certifies it is close to a coin
flip for *any* method. Taking each image's ``pA`` as its fixed-n estimate (``count / n``,
recovered from the recorded radius), this computes what each method certifies on average:
fixed-n exactly (a binomial tail), sequential exactly (dynamic programming over the count,
:func:`hierclass.smoothing.sequential.exact.certify_probability`, with the library's own
rule), and the sequential draws by simulating the library's rule on 400 count paths per
image. It is a plug-in estimate (the true ``pA`` is not known), reported beside, never
instead of, the measured numbers.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.stats import norm


def _estimated_pa(radius: float, sigma: float, n: int, alpha: float) -> float:
    """The fixed-n estimate ``k / n`` behind a recorded radius ``sigma Phi^-1(p_lower)``: the
    smallest count whose bound reaches the recorded one (the radius is stored rounded down)."""
    from hierclass.smoothing.sequential.exact import fixed_n_certify_count

    return min(fixed_n_certify_count(n, alpha, norm.cdf(radius / sigma) - 1e-12), n) / n


def _simulated_draws(p: float, rows: Any, looks: np.ndarray, thresholds, rng, paths: int):
    """Mean estimation draws of the library's rule (every radius decided, or max_n)."""
    from hierclass.smoothing.sequential.sessions import UNDECIDED, decide, update_decisions

    succ = np.zeros(paths, np.int64)
    status = np.zeros((paths, len(thresholds)), np.int8)
    used = np.full(paths, int(looks[-1]))
    active = np.ones(paths, bool)
    prev = 0
    for k, n in enumerate(looks):
        succ += rng.binomial(int(n - prev), p, paths)
        prev = int(n)
        idx = np.flatnonzero(active)
        final = rows.final_alpha if k == len(looks) - 1 else 0.0
        new = decide(rows.sequence, succ[idx], int(n), thresholds, final)
        status[idx] = update_decisions(status[idx], new)
        done = ~np.any(status[idx] == UNDECIDED, axis=1)
        used[idx[done]] = int(n)
        active[idx[done]] = False
        if not active.any():
            break
    return float(used.mean())


def expected_under_estimates(
    recs: list[dict[str, Any]], sigma: float, radii, n0: int, n: int, alpha: float
) -> dict[str, Any]:
    """Expected certified accuracy of both methods and the sequential passes ratio."""
    from hierclass.smoothing.sequential.exact import (
        certify_probability,
        fixed_n_certify_probability,
    )
    from hierclass.smoothing.sequential.sessions import sequential_setup

    setup = sequential_setup(sigma, radii, n0, n, alpha)
    rows = setup.decisions(1)
    rng = np.random.default_rng(0)
    fixed = np.zeros(len(radii))
    seq = np.zeros(len(radii))
    draws = 0.0
    for r in recs:
        f = r["fixed"]
        if not f["correct"] or f["radius"] <= 0:
            draws += r["sequential"]["n_samples"]  # no estimate of pA: count what it used
            continue
        p = _estimated_pa(f["radius"], sigma, n, alpha)
        for j, t in enumerate(setup.thresholds):
            fixed[j] += fixed_n_certify_probability(p, n, alpha, t)
            seq[j] += certify_probability(
                p, rows.sequence, setup.looks, t, final_alpha=rows.final_alpha
            )
        draws += _simulated_draws(p, rows, setup.looks, setup.thresholds, rng, 400)
    m = len(recs)
    return {
        "fixed": (fixed / m).tolist(),
        "sequential": (seq / m).tolist(),
        "points_below_fixed": (100 * (fixed - seq) / m).tolist(),
        "passes_ratio": m * (n0 + n) / (m * n0 + draws),
    }
