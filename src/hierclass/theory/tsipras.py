"""The Tsipras et al. setting (App. C): robustness and accuracy at odds, and the invariant
that reconciles them.

A sample is ``x = (x_1, x_2, ..., x_{d+1})`` with ``y`` uniform in ``{-1, +1}``; ``x_1 = y``
with probability ``p`` (else ``-y``) is the *robust* feature and ``x_2..x_{d+1} ~ N(eta*y, 1)``
are the *weak* features. In code, column 0 is ``x_1`` and columns ``1..d`` are the weak
features.

The adversary is ``l_inf``-bounded by ``eps`` (``eps = 2*eta`` flips the weak features'
distribution) on the weak features; ``x_1`` is the robust feature and stays untouched (in
Tsipras et al. ``eps < 1`` cannot change its sign; here that is part of the threat model for
every ``eta``). The *invariant* forbids touching the first ``k`` weak features
(``x_2..x_{k+1}``).

All classifiers here are linear rules ``y_hat = sign(w . x)`` (``+1`` on ties). For them the
worst-case attack is known in closed form (``delta_i = -eps * y * sign(w_i)`` on every
perturbable feature), and so is the accuracy, which lets tests compare simulation with theory.

This module holds the setting and its closed forms; the Monte-Carlo check is
:mod:`hierclass.theory.simulation`, the Fig. 9 table and plot :mod:`hierclass.theory.fig9`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from scipy.stats import norm

from ._checks import _check_int, _check_pos, _check_prob


@dataclass(frozen=True)
class TsiprasDistribution:
    """Sampler for the Tsipras et al. distribution ``D`` (App. C).

    Parameters
    ----------
    d : int
        Number of weak features.
    p : float
        Probability that the robust feature ``x_1`` equals ``y`` (in [0.5, 1)).
    eta : float
        Mean of the weak features, ``N(eta * y, 1)`` (> 0).

    Examples
    --------
    >>> dist = TsiprasDistribution(d=5, p=0.9, eta=0.5)
    >>> x, y = dist.sample(4, seed=0)
    >>> tuple(x.shape), sorted(set(y.tolist())) <= [-1, 1]
    ((4, 6), True)
    """

    d: int
    p: float
    eta: float

    def __post_init__(self) -> None:
        _check_int(self.d, "d", 1)
        _check_prob(self.p, "p")
        _check_pos(self.eta, "eta")

    def sample(self, n: int, *, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        """Draw ``n`` samples.

        Parameters
        ----------
        n : int
            Number of samples.
        seed : int, default 0
            Seed of the ``torch.Generator`` used.

        Returns
        -------
        x : Tensor [n, d + 1] float64
            Column 0 is the robust feature (+-1), columns 1..d the weak features.
        y : Tensor [n] int64 with values in {-1, +1}
        """
        n = _check_int(n, "n", 1)
        gen = torch.Generator().manual_seed(seed)
        y = torch.randint(0, 2, (n,), generator=gen) * 2 - 1
        agree = torch.rand(n, generator=gen, dtype=torch.float64) < self.p
        robust = torch.where(agree, y, -y).to(torch.float64)
        weak = self.eta * y[:, None].to(torch.float64) + torch.randn(
            n, self.d, generator=gen, dtype=torch.float64
        )
        return torch.cat([robust[:, None], weak], dim=1), y


def theorem1_bound(natural_accuracy: float, p: float) -> float:
    """Theorem 1 (Tsipras et al.): the best adversarial accuracy given natural accuracy.

    Any classifier with natural accuracy ``1 - gamma`` on ``D`` has adversarial accuracy at
    most ``p / (1 - p) * gamma`` against an ``l_inf`` adversary with ``eps >= 2 * eta``
    (capped at 1, an accuracy). With an invariant the same statement holds with the
    meta-feature's accuracy ``p'`` in place of ``p`` (see :func:`meta_feature_accuracy`).

    Parameters
    ----------
    natural_accuracy : float in [0, 1]
    p : float in [0.5, 1)
        Accuracy of the robust feature.

    Returns
    -------
    float in [0, 1]

    Examples
    --------
    >>> round(theorem1_bound(0.99, 0.95), 4)   # the paper's example: at most 19%
    0.19
    """
    if not 0.0 <= float(natural_accuracy) <= 1.0:
        raise ValueError(f"natural_accuracy must be in [0, 1], got {natural_accuracy}")
    p = _check_prob(p, "p")
    gamma = 1.0 - float(natural_accuracy)
    return min(1.0, p / (1.0 - p) * gamma)


def meta_feature_accuracy(k: int | np.ndarray, eta: float) -> float | np.ndarray:
    """Accuracy ``p' = P(x'_1 = y) = Phi(sqrt(k) * eta)`` of the invariant meta-feature.

    The meta-feature is ``x'_1 = sign(mean(x_2..x_{k+1}))``; the mean is ``N(eta*y, 1/k)``,
    so ``p' = P(N(eta, 1/k) >= 0) = Phi(sqrt(k) * eta)``. The paper's equation (6) prints
    ``1 - Phi^{-1}(-sqrt(k) * eta)``, a typo (``Phi^{-1}`` is the quantile function, and
    ``1 - Phi(-sqrt(k) * eta)`` was meant); both that corrected form and the one used here
    equal ``Phi(sqrt(k) * eta)``. The paper's claim "``k >= 9 / eta**2`` gives
    ``p' > 0.99``" holds with this formula (``Phi(3) = 0.99865``).

    Parameters
    ----------
    k : int or ndarray of int
        Number of protected weak features (>= 1).
    eta : float
        Weak-feature mean (> 0).

    Returns
    -------
    float or ndarray

    Examples
    --------
    >>> round(meta_feature_accuracy(9, 1.0), 5)
    0.99865
    >>> float(meta_feature_accuracy(100, 0.3)) > 0.99
    True
    """
    eta = _check_pos(eta, "eta")
    ks = np.asarray(k)
    if ks.dtype.kind not in "iu" or (ks < 1).any():
        raise ValueError(f"k must be integer(s) >= 1, got {k!r}")
    out = norm.cdf(np.sqrt(ks) * eta)
    return float(out) if out.ndim == 0 else out


def min_protected_features(eta: float, target_accuracy: float) -> int:
    """Smallest ``k`` with ``Phi(sqrt(k) * eta) >= target_accuracy``.

    Examples
    --------
    >>> min_protected_features(1.0, 0.99)
    6
    """
    eta = _check_pos(eta, "eta")
    if not 0.5 < float(target_accuracy) < 1.0:
        raise ValueError(f"target_accuracy must be in (0.5, 1), got {target_accuracy}")
    k = max(1, math.ceil((norm.ppf(target_accuracy) / eta) ** 2))
    # ceil of a float square can land one off; settle it on the exact criterion.
    while k > 1 and norm.cdf(math.sqrt(k - 1) * eta) >= target_accuracy:
        k -= 1
    while norm.cdf(math.sqrt(k) * eta) < target_accuracy:
        k += 1
    return k


# ---------------------------------------------------------------------- linear rules
@dataclass(frozen=True)
class LinearRule:
    """A classifier ``y_hat = sign(w . x)`` on Tsipras samples (``+1`` on ties).

    Parameters
    ----------
    weights : sequence of float, length d + 1
        Weight of the robust feature first, then one per weak feature.
    name : str
        Label for tables and plots.

    Examples
    --------
    >>> rule = meta_feature_rule(d=4, k=2)
    >>> rule.weights
    (0.0, 1.0, 1.0, 0.0, 0.0)
    >>> import torch
    >>> rule(torch.tensor([[1.0, 0.3, -0.1, -5.0, -5.0]])).tolist()
    [1]
    """

    weights: tuple[float, ...]
    name: str = "linear"

    def __post_init__(self) -> None:
        w = np.asarray(self.weights, dtype=np.float64)
        if w.ndim != 1 or w.size < 2 or not np.isfinite(w).all():
            raise ValueError("weights must be a finite 1-D sequence of length d + 1 >= 2")
        if not w.any():
            raise ValueError("weights are all zero; the rule would ignore its input")
        object.__setattr__(self, "weights", tuple(float(v) for v in w))

    @property
    def d(self) -> int:
        """Number of weak features the rule expects."""
        return len(self.weights) - 1

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """Predicted labels in {-1, +1}, LongTensor [n], for ``x`` [n, d + 1]."""
        if not isinstance(x, torch.Tensor) or x.dim() != 2 or x.shape[1] != len(self.weights):
            shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise ValueError(f"x must be a tensor [n, {len(self.weights)}], got {shape}")
        w = torch.tensor(self.weights, dtype=x.dtype, device=x.device)
        return torch.where(x @ w >= 0, 1, -1)


def meta_feature_rule(d: int, k: int) -> LinearRule:
    """The invariant meta-feature ``sign(mean(x_2..x_{k+1}))`` as a rule.

    Examples
    --------
    >>> meta_feature_rule(3, 1).weights
    (0.0, 1.0, 0.0, 0.0)
    """
    d = _check_int(d, "d", 1)
    k = _check_int(k, "k", 1, d)
    return LinearRule((0.0,) + (1.0,) * k + (0.0,) * (d - k), name=f"meta-feature (k={k})")


def robust_rule(d: int, k: int, p: float, eta: float) -> LinearRule:
    """The robust-and-accurate rule: Bayes-optimal on what the adversary cannot touch.

    It combines the robust feature and the ``k`` protected weak features by their
    log-likelihood ratios, ``log(p / (1 - p)) * x_1 + 2 * eta * sum(x_2..x_{k+1})``, and ignores
    the perturbable features, so its adversarial accuracy equals its natural accuracy (see
    :func:`robust_rule_accuracy`). With ``p = 0.5`` it is the meta-feature alone.

    Examples
    --------
    >>> robust_rule(3, 2, p=0.5, eta=0.5).weights
    (0.0, 1.0, 1.0, 0.0)
    """
    d = _check_int(d, "d", 0)
    k = _check_int(k, "k", 0, d)
    p = _check_prob(p, "p")
    eta = _check_pos(eta, "eta")
    if k == 0 and p == 0.5:
        raise ValueError("with k = 0 and p = 0.5 no unperturbable feature carries information")
    return LinearRule(
        (math.log(p / (1 - p)),) + (2.0 * eta,) * k + (0.0,) * (d - k),
        name=f"robust (k={k})",
    )


def standard_rule(d: int, p: float, eta: float) -> LinearRule:
    """The naturally Bayes-optimal rule: every feature by its log-likelihood ratio.

    Examples
    --------
    >>> [round(w, 3) for w in standard_rule(2, p=0.9, eta=0.5).weights]
    [2.197, 1.0, 1.0]
    """
    d = _check_int(d, "d", 1)
    p = _check_prob(p, "p")
    eta = _check_pos(eta, "eta")
    return LinearRule((math.log(p / (1 - p)),) + (2.0 * eta,) * d, name="standard (Bayes)")


def restricted_linf_attack(
    rule: LinearRule, x: torch.Tensor, y: torch.Tensor, eps: float, protected_k: int = 0
) -> torch.Tensor:
    """Worst-case ``l_inf`` attack on a linear rule, under the invariant.

    Every perturbable weak feature (``x_{k+2}..x_{d+1}``) moves by ``-eps * y * sign(w_i)``,
    which minimises ``y * (w . x)`` over the ``l_inf`` ball: no attack on a linear rule does
    better. The robust feature and the ``protected_k`` first weak features are untouched.

    Parameters
    ----------
    rule : LinearRule
    x : Tensor [n, d + 1]
    y : Tensor [n] in {-1, +1}
    eps : float >= 0
    protected_k : int in 0..d

    Returns
    -------
    Tensor [n, d + 1]

    Examples
    --------
    >>> import torch
    >>> rule = LinearRule((0.0, 1.0, 1.0))
    >>> restricted_linf_attack(rule, torch.zeros(1, 3), torch.tensor([1]), 0.5, 1).tolist()
    [[0.0, 0.0, -0.5]]
    """
    eps = _check_pos(eps, "eps", allow_zero=True)
    d = rule.d
    protected_k = _check_int(protected_k, "protected_k", 0, d)
    if not isinstance(x, torch.Tensor) or x.dim() != 2 or x.shape[1] != d + 1:
        raise ValueError(f"x must be a tensor [n, {d + 1}] for this rule")
    if not isinstance(y, torch.Tensor) or y.shape != (x.shape[0],):
        raise ValueError(f"y must be a tensor [{x.shape[0]}] of labels in {{-1, +1}}")
    if not bool(((y == 1) | (y == -1)).all()):
        raise ValueError("y must hold labels in {-1, +1}")
    sign_w = torch.sign(torch.tensor(rule.weights, dtype=x.dtype, device=x.device))
    mask = torch.zeros(d + 1, dtype=x.dtype, device=x.device)
    mask[1 + protected_k :] = 1.0
    return x - eps * y.to(x.dtype)[:, None] * (sign_w * mask)[None, :]


def linear_rule_accuracy(
    rule: LinearRule, p: float, eta: float, *, eps: float = 0.0, protected_k: int = 0
) -> float:
    """Closed-form accuracy of a linear rule on ``D``, under the worst-case restricted attack.

    ``y * (w . x) = w_1 * s + G`` with ``s = +1`` w.p. ``p`` (else ``-1``) and ``G`` Gaussian
    with mean ``eta * sum(w_weak) - eps * sum_{perturbable}|w_i|`` and variance
    ``sum(w_weak ** 2)``, so the accuracy is
    ``p * Phi((mu + w_1) / sd) + (1 - p) * Phi((mu - w_1) / sd)``.

    Parameters
    ----------
    rule : LinearRule
    p : float
        Parameters of ``D``.
    eta : float
        Parameters of ``D``.
    eps : float, default 0
        Attack budget on the perturbable weak features (0: natural accuracy).
    protected_k : int, default 0
        Weak features the invariant protects.

    Returns
    -------
    float

    Examples
    --------
    >>> rule = meta_feature_rule(d=200, k=9)
    >>> round(linear_rule_accuracy(rule, p=0.9, eta=1.0, eps=2.0, protected_k=9), 5)
    0.99865
    """
    p = _check_prob(p, "p")
    eta = _check_pos(eta, "eta")
    eps = _check_pos(eps, "eps", allow_zero=True)
    protected_k = _check_int(protected_k, "protected_k", 0, rule.d)
    w = np.asarray(rule.weights)
    w1, weak = w[0], w[1:]
    mu = eta * weak.sum() - eps * np.abs(weak[protected_k:]).sum()
    sd = math.sqrt(float((weak**2).sum()))
    if sd == 0.0:  # only the robust feature: sign(w1 * x1), ties impossible since x1 = +-1
        return p if w1 > 0 else 1.0 - p
    return float(p * norm.cdf((mu + w1) / sd) + (1 - p) * norm.cdf((mu - w1) / sd))


def robust_rule_accuracy(k: int, p: float, eta: float) -> float:
    """Natural = adversarial accuracy of :func:`robust_rule` (it reads no perturbable feature).

    ``p * Phi((2 k eta^2 + L) / (2 eta sqrt(k))) + (1 - p) * Phi((2 k eta^2 - L) / (2 eta
    sqrt(k)))`` with ``L = log(p / (1 - p))``; ``p`` at ``k = 0``; ``Phi(sqrt(k) eta)`` at
    ``p = 0.5``.

    Examples
    --------
    >>> round(robust_rule_accuracy(0, 0.95, 0.5), 3)
    0.95
    >>> round(robust_rule_accuracy(16, 0.5, 0.25), 4) == round(meta_feature_accuracy(16, 0.25), 4)
    True
    """
    k = _check_int(k, "k", 0)
    return linear_rule_accuracy(robust_rule(k, k, p, eta) if k else _robust_only(p), p, eta)


def _robust_only(p: float) -> LinearRule:
    p = _check_prob(p, "p")
    if p == 0.5:
        raise ValueError("with k = 0 and p = 0.5 no unperturbable feature carries information")
    return LinearRule((math.log(p / (1 - p)), 0.0), name="robust feature only")


# Moved to their own modules; still importable from here (resolved on first use, PEP 562).
_MOVED = {
    "FIG9_COLUMNS": "fig9",
    "fig9_markdown": "fig9",
    "fig9_table": "fig9",
    "plot_fig9": "fig9",
    "SimulatedAccuracy": "simulation",
    "simulate_accuracy": "simulation",
}


def __getattr__(name: str) -> Any:
    if name in _MOVED:
        import importlib

        return getattr(importlib.import_module(f"hierclass.theory.{_MOVED[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
