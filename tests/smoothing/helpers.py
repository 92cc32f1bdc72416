"""Linear base classifiers whose smoothed classifiers have exact, computable radii.

All logits depend on ``x`` only through ``t = u . x`` for a unit vector ``u``, as affine
functions ``a_c t + b_c``. The base classifier's argmax is then a union of intervals in ``t``,
and with noise ``N(0, sigma^2 I)`` the projection ``t + u . eps`` is ``N(t, sigma^2)``, so every
smoothed probability is a sum of normal-CDF differences over those intervals. The smoothed
classifier also depends on ``t`` only, so its exact L2 radius at ``x`` is the distance from
``t`` to the nearest point where its argmax changes (found by a fine scan plus bisection).
"""

from __future__ import annotations

import itertools

import numpy as np
import torch
from scipy.stats import norm
from torch import nn


class ProjectedLinear(nn.Module):
    """Logits ``a_c (u . x) + b_c`` for inputs ``x`` of dimension ``d``."""

    def __init__(self, slopes, intercepts, d: int = 5, seed: int = 0):
        super().__init__()
        g = np.random.default_rng(seed)
        u = g.normal(size=d)
        self.u = u / np.linalg.norm(u)
        self.slopes = np.asarray(slopes, float)
        self.intercepts = np.asarray(intercepts, float)
        self.linear = nn.Linear(d, len(slopes)).double()
        with torch.no_grad():
            self.linear.weight.copy_(torch.tensor(np.outer(self.slopes, self.u)))
            self.linear.bias.copy_(torch.tensor(self.intercepts))
        self.eval()

    def forward(self, x):
        return self.linear(x.double())

    def point(self, t: float) -> torch.Tensor:
        """An input with projection ``t`` (float32, as models receive)."""
        return torch.tensor(self.u * t, dtype=torch.float64)

    # -- exact quantities ---------------------------------------------------------------
    def intervals(self, labels=None):
        """``[(lo, hi, c)]``: where ``argmax_{c in labels}`` of the logits is ``c``."""
        labels = list(range(len(self.slopes))) if labels is None else list(labels)
        a, b = self.slopes[labels], self.intercepts[labels]
        cuts = []
        for i, j in itertools.combinations(range(len(labels)), 2):
            if a[i] != a[j]:
                cuts.append((b[j] - b[i]) / (a[i] - a[j]))
        cuts = sorted(set(cuts))
        edges = [-np.inf] + cuts + [np.inf]
        out = []
        for lo, hi in zip(edges[:-1], edges[1:]):
            mid = (
                (lo + hi) / 2
                if np.isfinite(lo) and np.isfinite(hi)
                else ((hi - 1) if np.isfinite(hi) else (lo + 1) if np.isfinite(lo) else 0.0)
            )
            c = labels[int(np.argmax(a * mid + b))]
            if out and out[-1][2] == c:
                out[-1] = (out[-1][0], hi, c)
            else:
                out.append((lo, hi, c))
        return out

    def probs(self, t, sigma, labels=None):
        """Smoothed probabilities ``[..., num_classes]`` of ``argmax_{c in labels}`` at ``t``."""
        t = np.asarray(t, float)
        p = np.zeros(t.shape + (len(self.slopes),))
        for lo, hi, c in self.intervals(labels):
            p[..., c] += norm.cdf((hi - t) / sigma) - norm.cdf((lo - t) / sigma)
        return p

    def exact_radius(self, t0, sigma, *, base_labels=None, among=None):
        """Exact radius of the smoothed classifier ``argmax_{c in among} p_c`` at ``t0``,
        with ``p`` the smoothed probabilities of the base ``argmax_{c in base_labels}``."""
        among = np.array(range(len(self.slopes)) if among is None else list(among))

        def g(t):
            p = self.probs(t, sigma, base_labels)
            return among[np.argmax(p[..., among], axis=-1)]

        c0 = int(g(t0))
        step = 5e-3 * sigma
        dist = step * np.arange(1, 4001)  # scan up to 20 sigma either way
        best = np.inf
        for direction in (-1.0, 1.0):
            changed = np.nonzero(g(t0 + direction * dist) != c0)[0]
            if changed.size == 0:
                continue
            k = changed[0]
            lo, hi = (dist[k - 1] if k else 0.0), dist[k]
            for _ in range(40):
                mid = (lo + hi) / 2
                if int(g(t0 + direction * mid)) != c0:
                    hi = mid
                else:
                    lo = mid
            best = min(best, hi)
        return c0, best
