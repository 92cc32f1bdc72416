"""Monte-Carlo check of the Tsipras-setting closed forms, with an exact confidence interval.

The interval is Clopper-Pearson from :mod:`hierclass.smoothing.certificates.bounds` (the one home of
the library's binomial bounds): two one-sided ``alpha / 2`` bounds make a two-sided ``1 - alpha``
interval.
"""

from __future__ import annotations

from dataclasses import dataclass

from hierclass.smoothing.certificates.bounds import clopper_pearson_lower, clopper_pearson_upper

from .tsipras import LinearRule, TsiprasDistribution, restricted_linf_attack


@dataclass(frozen=True)
class SimulatedAccuracy:
    """Monte-Carlo accuracy with its exact (Clopper-Pearson) confidence interval.

    Examples
    --------
    >>> s = SimulatedAccuracy(correct=90, n=100, alpha=0.01)
    >>> s.accuracy, s.interval[0] < 0.9 < s.interval[1]
    (0.9, True)
    """

    correct: int
    n: int
    alpha: float = 0.001

    @property
    def accuracy(self) -> float:
        return self.correct / self.n

    @property
    def interval(self) -> tuple[float, float]:
        """Two-sided ``1 - alpha`` Clopper-Pearson interval for the true accuracy."""
        half = self.alpha / 2
        return (
            clopper_pearson_lower(self.correct, self.n, half),
            clopper_pearson_upper(self.correct, self.n, half),
        )

    def contains(self, value: float) -> bool:
        low, high = self.interval
        return low <= value <= high


def simulate_accuracy(
    rule: LinearRule,
    dist: TsiprasDistribution,
    n: int,
    *,
    eps: float = 0.0,
    protected_k: int = 0,
    seed: int = 0,
    alpha: float = 0.001,
) -> SimulatedAccuracy:
    """Monte-Carlo accuracy of ``rule`` on ``n`` samples, attacked when ``eps > 0``.

    Examples
    --------
    >>> from hierclass.theory import meta_feature_accuracy, meta_feature_rule
    >>> dist = TsiprasDistribution(d=20, p=0.9, eta=0.5)
    >>> sim = simulate_accuracy(meta_feature_rule(20, 4), dist, 2000, eps=1.0, protected_k=4)
    >>> sim.contains(meta_feature_accuracy(4, 0.5))
    True
    """
    if rule.d != dist.d:
        raise ValueError(f"rule expects d={rule.d} weak features, the distribution has {dist.d}")
    x, y = dist.sample(n, seed=seed)
    if eps > 0:
        x = restricted_linf_attack(rule, x, y, eps, protected_k)
    correct = int((rule(x) == y).sum())
    return SimulatedAccuracy(correct=correct, n=n, alpha=alpha)
