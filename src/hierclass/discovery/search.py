"""Partition search: which invariance widens the margin most, with a root that can be learned?

The paper leaves open how to choose invariances that maximise the margin (§VII, App. G: a
partition helps only when it separates a label from its runner-up). This module scores
candidate partitions by the certified-radius gain of renormalised leaves over the flat model,
all computed from *one* set of smoothed samples per input (:meth:`Smooth.certify_many` with
every candidate class as a label subset), subject to the root being learnable (its held-out
accuracy, from a user-given scorer or
:class:`~hierclass.discovery.root_probe.LinearProbeRootScorer`).

Each leaf certificate is Cohen's bound on the base classifier restricted to the class
(base renormalisation, sound on its own, see :mod:`hierclass.smoothing.certificates.counts`). The
score assumes correct routing: it measures what the leaves gain; the root's part is its
accuracy constraint, and a full hierarchy should then be certified with the hierarchical
certifier.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from hierclass.discovery._radii import certify_once, leaf_fields
from hierclass.discovery._validate import check_labels
from hierclass.discovery.candidates import Candidate
from hierclass.partition import LabelPartition


@dataclass
class PartitionScore:
    """The numbers behind one candidate's place in the ranking.

    Attributes
    ----------
    sources : tuple of str
        Every proposal that produced this partition.
    partition : LabelPartition or None
    flat_acr : float
        Average certified radius (0 for wrong or abstained samples; radii capped at
        ``radius_cap``) of the flat smoothed model and of the renormalised leaf each sample's
        true class routes it to.
    leaf_acr : float
        Average certified radius (0 for wrong or abstained samples; radii capped at
        ``radius_cap``) of the flat smoothed model and of the renormalised leaf each sample's
        true class routes it to.
    acr_gain : float
        ``leaf_acr - flat_acr``.
    flat_accuracy : float
        Certified accuracy at radius 0 (correct and not abstaining).
    leaf_accuracy : float
        Certified accuracy at radius 0 (correct and not abstaining).
    improved : int
        Samples whose (capped) leaf radius is above / below their flat radius.
    worsened : int
        Samples whose (capped) leaf radius is above / below their flat radius.
    root_accuracy : float
        Held-out accuracy of the root (``nan`` when no scorer was given).
    root_chance : float
        Share of the largest class among the certification labels (a constant root's
        accuracy), to read ``root_accuracy`` against.
    feasible : bool
        ``root_accuracy >= min_root_accuracy`` (True when the root was not assessed).
    rank : int
        1-based position in the ranking (0 for failed candidates).
    error : str or None

    Examples
    --------
    Scores come out of :class:`PartitionSearch` (or :func:`search_partitions`):

    >>> import torch
    >>> centres = torch.tensor([[0.0], [0.3], [3.0]])
    >>> model = lambda b: -torch.cdist(b, centres) ** 2
    >>> s = search_partitions(model, [LabelPartition([[0, 2], [1]])], centres,
    ...                       torch.arange(3), num_labels=3, sigma=0.25, n0=10, n=100)[0]
    >>> s.rank, s.feasible, s.error, s.leaf_acr > s.flat_acr
    (1, True, None, True)
    >>> s.partition.classes
    ((0, 2), (1,))
    """

    sources: tuple[str, ...]
    partition: LabelPartition | None
    flat_acr: float = math.nan
    leaf_acr: float = math.nan
    acr_gain: float = math.nan
    flat_accuracy: float = math.nan
    leaf_accuracy: float = math.nan
    improved: int = 0
    worsened: int = 0
    root_accuracy: float = math.nan
    root_chance: float = math.nan
    feasible: bool = False
    rank: int = 0
    error: str | None = None
    leaf_radii: np.ndarray | None = field(default=None, repr=False)


class PartitionSearch:
    """Rank candidate partitions by certified-radius gain, subject to a learnable root.

    Parameters
    ----------
    flat_model : nn.Module or callable
        The flat classifier ``f``: inputs ``[B, ...]`` -> logits ``[B, num_labels]``. Its
        renormalised leaves are certified (base renormalisation).
    num_labels : int
    sigma : float
        Smoothing noise level.
    n0 : int, default 100
        Selection draws per input (one set shared by every candidate).
    n : int, default 1000
        Estimation draws per input (one set shared by every candidate).
    alpha : float, default 0.001
        Failure probability of each certificate.
    batch_size : int, default 1000
    root_scorer : callable, optional
        ``root_scorer(partition) -> held-out root accuracy in [0, 1]``, e.g.
        :class:`~hierclass.discovery.root_probe.LinearProbeRootScorer`. Without it
        learnability is not assessed (the table says so) and every candidate counts as
        feasible.
    min_root_accuracy : float, default 0.0
        Candidates whose root scores below this are ranked after every feasible one.
    seed : int, default 0
        Base noise seed (results do not depend on batch size or order).
    verbose : bool or None, default False
        Progress bar over inputs: always, never, or (``None``) on a terminal.

    Attributes
    ----------
    scores_ : list of PartitionScore
        Feasible candidates by decreasing ``acr_gain``, then infeasible ones, then failed
        discoveries.
    best_ : PartitionScore or None
        The top feasible candidate.
    flat_radii_ : ndarray [N]
        Per-sample flat radius (capped, 0 if wrong or abstained).
    radius_cap_ : float
        ``sigma * Phi^-1(lower bound when all n draws agree)``: the largest radius ``n`` draws
        certify. A one-label class is constant (infinite radius); it is counted at the cap
        so that a mean stays finite.

    Examples
    --------
    >>> import torch
    >>> from hierclass.partition import LabelPartition
    >>> centres = torch.tensor([[0.0, 0.0], [0.4, 0.0], [3.0, 3.0], [3.4, 3.0]])
    >>> model = lambda b: -torch.cdist(b, centres) ** 2
    >>> x, y = centres.repeat(2, 1), torch.arange(4).repeat(2)
    >>> cands = [Candidate("near", LabelPartition([[0, 1], [2, 3]])),
    ...          Candidate("far", LabelPartition([[0, 2], [1, 3]]))]
    >>> search = PartitionSearch(model, 4, sigma=0.25, n0=20, n=200, batch_size=200)
    >>> [s.sources[0] for s in search.fit(cands, x, y).scores_]
    ['far', 'near']
    """

    def __init__(
        self,
        flat_model: Callable[[Any], torch.Tensor],
        num_labels: int,
        sigma: float,
        *,
        n0: int = 100,
        n: int = 1000,
        alpha: float = 0.001,
        batch_size: int = 1000,
        root_scorer: Callable[[LabelPartition], float] | None = None,
        min_root_accuracy: float = 0.0,
        seed: int = 0,
        verbose: bool = False,
    ) -> None:
        self.flat_model = flat_model
        self.num_labels = num_labels
        self.sigma = sigma
        self.n0 = n0
        self.n = n
        self.alpha = alpha
        self.batch_size = batch_size
        self.root_scorer = root_scorer
        self.min_root_accuracy = min_root_accuracy
        self.seed = seed
        self.verbose = verbose

    def fit(
        self, candidates: Iterable[Candidate | LabelPartition], x: torch.Tensor, y: Any
    ) -> PartitionSearch:
        """Certify ``x`` once, score every candidate, rank them.

        Parameters
        ----------
        candidates : iterable of Candidate or LabelPartition
        x : Tensor [N, ...]
            Certification inputs (in the model's input space).
        y : array-like or Tensor [N]
            Their labels.

        Returns
        -------
        self
        """
        yy, num_labels = self._check(x, y)
        scores, failed = _merge(candidates, num_labels)
        subsets = sorted({cls for s in scores for cls in s.partition.classes if len(cls) > 1})
        radii = certify_once(
            self.flat_model,
            x,
            yy,
            num_labels,
            subsets,
            sigma=self.sigma,
            n0=self.n0,
            n=self.n,
            alpha=self.alpha,
            batch_size=self.batch_size,
            seed=self.seed,
            verbose=self.verbose,
        )
        counts = np.bincount(yy, minlength=num_labels)
        for score in scores:
            for name, value in leaf_fields(score.partition, radii, yy).items():
                setattr(score, name, value)
            self._score_root(score, counts)
        # Infeasible roots rank last; ties in gain go to fewer classes (a simpler root).
        ranked = sorted(
            scores, key=lambda s: (not s.feasible, -s.acr_gain, s.partition.num_classes)
        )
        for rank, score in enumerate(ranked, start=1):
            score.rank = rank
        self.scores_ = ranked + failed
        self.best_ = next((s for s in ranked if s.feasible), None)
        self.flat_radii_ = radii.flat
        self.radius_cap_ = radii.cap
        self.subsets_ = tuple(subsets)
        return self

    def _check(self, x: Any, y: Any) -> tuple[np.ndarray, int]:
        """Validate the settings and the certification set; the labels and their count."""
        if not callable(self.flat_model):
            raise TypeError("flat_model must be callable (inputs -> logits)")
        if not 0.0 <= float(self.min_root_accuracy) <= 1.0:
            raise ValueError(f"min_root_accuracy must be in [0, 1], got {self.min_root_accuracy}")
        if not isinstance(x, torch.Tensor) or x.dim() < 2:
            raise TypeError("x must be a tensor [N, ...] of certification inputs")
        yy, num_labels = check_labels(y, x.shape[0], self.num_labels)
        if x.shape[0] == 0:
            raise ValueError("x holds no inputs to certify")
        return yy, num_labels

    def _score_root(self, score: PartitionScore, counts: np.ndarray) -> None:
        """The root's side: chance level, held-out accuracy (if a scorer was given), feasible."""
        part = score.partition
        class_counts = np.array([counts[list(cls)].sum() for cls in part.classes])
        score.root_chance = float(class_counts.max() / class_counts.sum())
        if self.root_scorer is None:
            score.feasible = True
            return
        acc = float(self.root_scorer(part))
        if not 0.0 <= acc <= 1.0:
            raise ValueError(f"root_scorer returned {acc}, expected an accuracy in [0, 1]")
        score.root_accuracy = acc
        score.feasible = acc >= self.min_root_accuracy

    def to_markdown(self) -> str:
        """The ranking as a markdown table (one row per candidate, failed ones last)."""
        if not hasattr(self, "scores_"):
            raise RuntimeError("call fit() before to_markdown()")
        assessed = self.root_scorer is not None
        lines = [
            "| rank | source | classes | leaf ACR | flat ACR | gain | improved/worsened "
            "| root acc | chance | feasible |",
            "|---|---|---|---|---|---|---|---|---|---|",
        ]
        for s in self.scores_:
            if s.partition is None:
                lines.append(f"| - | {', '.join(s.sources)} | failed: {s.error} | | | | | | | |")
                continue
            root = f"{s.root_accuracy:.3f}" if assessed else "n/a"
            classes = " / ".join(str(list(c)) for c in s.partition.classes)
            lines.append(
                f"| {s.rank} | {', '.join(s.sources)} | {classes} | {s.leaf_acr:.4f} | "
                f"{s.flat_acr:.4f} | {s.acr_gain:+.4f} | {s.improved}/{s.worsened} | {root} | "
                f"{s.root_chance:.3f} | {s.feasible} |"
            )
        note = (
            f"\nsigma = {self.sigma}, n0 = {self.n0}, n = {self.n}, alpha = {self.alpha}; "
            f"radii capped at {self.radius_cap_:.4f}; "
            + (
                f"feasible = root accuracy >= {self.min_root_accuracy}"
                if assessed
                else "root learnability NOT assessed (no root_scorer)"
            )
        )
        return "\n".join(lines) + note


def _merge(
    candidates: Iterable[Candidate | LabelPartition], num_labels: int
) -> tuple[list[PartitionScore], list[PartitionScore]]:
    """One score per distinct partition (proposals that found the same classes are merged),
    and one per failed discovery."""
    merged: dict[tuple, PartitionScore] = {}
    failed: list[PartitionScore] = []
    cands = []
    for i, c in enumerate(candidates):
        if isinstance(c, LabelPartition):
            c = Candidate(f"partition{i}", c)
        elif not isinstance(c, Candidate):
            raise TypeError(
                f"candidates must be Candidate or LabelPartition, got {type(c).__name__}"
            )
        cands.append(c)
    for c in cands:
        if c.partition is not None and c.partition.num_labels != num_labels:
            raise ValueError(
                f"candidate {c.source!r} covers {c.partition.num_labels} labels, the model "
                f"has {num_labels}"
            )
    for c in cands:
        if c.partition is None:
            failed.append(PartitionScore((c.source,), None, error=c.error))
            continue
        key = tuple(sorted(c.partition.classes))
        if key in merged:
            merged[key].sources += (c.source,)
        else:
            merged[key] = PartitionScore((c.source,), c.partition)
    return list(merged.values()), failed


def search_partitions(
    flat_model: Callable[[Any], torch.Tensor],
    candidates: Iterable[Candidate | LabelPartition],
    x: torch.Tensor,
    y: Any,
    *,
    num_labels: int,
    sigma: float,
    **options: Any,
) -> list[PartitionScore]:
    """One-call :class:`PartitionSearch`: the ranked scores.

    Examples
    --------
    >>> import torch
    >>> from hierclass.partition import LabelPartition
    >>> centres = torch.tensor([[0.0], [0.3], [3.0]])
    >>> model = lambda b: -torch.cdist(b, centres) ** 2
    >>> scores = search_partitions(model, [LabelPartition([[0, 2], [1]])], centres,
    ...                            torch.arange(3), num_labels=3, sigma=0.25, n0=10, n=100)
    >>> scores[0].acr_gain > 0
    True
    """
    search = PartitionSearch(flat_model, num_labels, sigma, **options)
    return search.fit(candidates, x, y).scores_
