"""Partition search: which invariance widens the margin most, with a root that can be learned?

The paper leaves open how to choose invariances that maximise the margin (§VII, App. G: a
partition helps only when it separates a label from its runner-up). This module scores
candidate partitions by the certified-radius gain of renormalised leaves over the flat model,
all computed from *one* set of smoothed samples per input (:meth:`Smooth.certify_many` with
every candidate class as a label subset), subject to the root being learnable (its held-out
accuracy, from a user-given scorer or :class:`LinearProbeRootScorer`).

Each leaf certificate is Cohen's bound on the base classifier restricted to the class
(base renormalisation, sound on its own, see :mod:`hierclass.smoothing.certificates`). The
score assumes correct routing: it measures what the leaves gain; the root's part is its
accuracy constraint, and a full hierarchy should then be certified with the hierarchical
certifier.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from hierclass._utils.progress import progress
from hierclass.discovery._validate import as_numpy, check_labels
from hierclass.discovery.confusion import confusion_partition
from hierclass.discovery.embeddings import extract_embeddings
from hierclass.discovery.kmeans import kmeans_partition
from hierclass.discovery.report import DiscoveryError, DiscoveryReport
from hierclass.partition import LabelPartition


@dataclass
class Candidate:
    """A proposed partition and where it came from.

    Attributes
    ----------
    source : str
        E.g. ``"kmeans(layer=rest.3, k=2)"``, ``"confusion(k=2)"``, ``"user:shape"``.
    partition : LabelPartition or None
        ``None`` when discovery failed (then ``error`` says why).
    report : DiscoveryReport or None
    error : str or None

    Examples
    --------
    >>> from hierclass.partition import LabelPartition
    >>> Candidate("user:halves", LabelPartition([[0, 1], [2, 3]])).ok
    True
    """

    source: str
    partition: LabelPartition | None
    report: DiscoveryReport | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.partition is not None


def propose_candidates(
    *,
    model: nn.Module | None = None,
    x: Any = None,
    y: Any = None,
    layers: Sequence[str] = (),
    ks: Sequence[int] = (2,),
    confusion: Any = None,
    user: Mapping[str, LabelPartition] | None = None,
    num_labels: int | None = None,
    batch_size: int = 256,
    **kmeans_options: Any,
) -> list[Candidate]:
    """Candidates from k-means at several layers and ``k``, a confusion matrix, and the user.

    Discovery failures (unseparated clusters, a cluster owning no label, ...) are kept as
    candidates with ``partition=None`` and the error, so the search table shows them.

    Parameters
    ----------
    model, x, y : optional
        Network, inputs and labels for Algorithm 1 (needed when ``layers`` is non-empty).
    layers : sequence of str
        Layers to cluster (see :func:`~hierclass.discovery.list_layers`).
    ks : sequence of int, default (2,)
        Numbers of classes to try, for k-means and for the confusion matrix.
    confusion : array-like [L, L], optional
        Confusion matrix for spectral clustering.
    user : mapping name -> LabelPartition, optional
        Hand-made proposals (domain knowledge).
    num_labels : int, optional
    batch_size : int, default 256
        For embedding extraction.
    **kmeans_options
        Passed to :class:`~hierclass.discovery.KMeansDiscovery`.

    Returns
    -------
    list of Candidate

    Examples
    --------
    >>> import numpy as np
    >>> c = np.full((4, 4), 1.0) + np.kron(np.eye(2), np.full((2, 2), 20.0))
    >>> [cand.source for cand in propose_candidates(confusion=c, ks=(2, 3))]
    ['confusion(k=2)', 'confusion(k=3)']
    """
    out: list[Candidate] = []
    if layers:
        if model is None or x is None or y is None:
            raise ValueError("k-means candidates need model, x and y")
        embeddings = extract_embeddings(model, x, list(layers), batch_size=batch_size)
        for layer in layers:
            for k in ks:
                source = f"kmeans(layer={layer}, k={k})"
                try:
                    part, rep = kmeans_partition(
                        embeddings[layer],
                        y,
                        k,
                        num_labels=num_labels,
                        layer=layer,
                        **kmeans_options,
                    )
                    out.append(Candidate(source, part, rep))
                except DiscoveryError as err:
                    out.append(Candidate(source, None, err.report, str(err)))
    if confusion is not None:
        for k in ks:
            source = f"confusion(k={k})"
            try:
                part, rep = confusion_partition(confusion, k)
                out.append(Candidate(source, part, rep))
            except DiscoveryError as err:
                out.append(Candidate(source, None, err.report, str(err)))
    for name, part in (user or {}).items():
        if not isinstance(part, LabelPartition):
            raise TypeError(f"user proposal {name!r} must be a LabelPartition, got {type(part)}")
        out.append(Candidate(f"user:{name}", part))
    return out


class LinearProbeRootScorer:
    """Root learnability: held-out accuracy of a logistic-regression root on given features.

    A cheap stand-in for training a root network per candidate: features can be flattened
    inputs or a network's embeddings. The probe is fitted on ``(x_train, class_of(y_train))``
    and scored on the held-out pair.

    Parameters
    ----------
    x_train, x_val : array-like or Tensor [N, ...]
        Features (flattened to ``[N, D]`` here, as a probe reads vectors).
    y_train, y_val : array-like or Tensor [N]
        Fine labels.
    max_iter : int, default 500
    C : float, default 1.0
        Inverse regularisation strength.

    Examples
    --------
    >>> import numpy as np
    >>> from hierclass.partition import LabelPartition
    >>> rng = np.random.default_rng(0)
    >>> y = np.repeat(np.arange(4), 30)
    >>> x = np.array([[0.0], [0.1], [3.0], [3.1]])[y] + 0.05 * rng.standard_normal((120, 1))
    >>> scorer = LinearProbeRootScorer(x[::2], y[::2], x[1::2], y[1::2])
    >>> scorer(LabelPartition([[0, 1], [2, 3]]))
    1.0
    """

    def __init__(
        self,
        x_train: Any,
        y_train: Any,
        x_val: Any,
        y_val: Any,
        *,
        max_iter: int = 500,
        C: float = 1.0,
    ) -> None:
        self.x_train = self._features(x_train, "x_train")
        self.x_val = self._features(x_val, "x_val")
        self.y_train, _ = check_labels(y_train, self.x_train.shape[0], None)
        self.y_val, _ = check_labels(y_val, self.x_val.shape[0], None)
        if self.x_train.shape[1] != self.x_val.shape[1]:
            raise ValueError(
                f"x_train has {self.x_train.shape[1]} features, x_val {self.x_val.shape[1]}"
            )
        self.max_iter = max_iter
        self.C = C

    @staticmethod
    def _features(x: Any, name: str) -> np.ndarray:
        arr = as_numpy(x, name)
        if arr.ndim < 2:
            raise ValueError(f"{name} must be [N, ...] with a feature dimension, got {arr.shape}")
        arr = arr.reshape(arr.shape[0], -1).astype(np.float64)
        if not np.isfinite(arr).all():
            raise ValueError(f"{name} contains NaN or inf")
        return arr

    def __call__(self, partition: LabelPartition) -> float:
        """Held-out accuracy of the probe root for ``partition``."""
        from sklearn.linear_model import LogisticRegression

        target = np.asarray(partition.class_of(self.y_train))
        probe = LogisticRegression(max_iter=self.max_iter, C=self.C)
        probe.fit(self.x_train, target)
        return float((probe.predict(self.x_val) == partition.class_of(self.y_val)).mean())


@dataclass
class PartitionScore:
    """The numbers behind one candidate's place in the ranking.

    Attributes
    ----------
    sources : tuple of str
        Every proposal that produced this partition.
    partition : LabelPartition or None
    flat_acr, leaf_acr : float
        Average certified radius (0 for wrong or abstained samples; radii capped at
        ``radius_cap``) of the flat smoothed model and of the renormalised leaf each sample's
        true class routes it to.
    acr_gain : float
        ``leaf_acr - flat_acr``.
    flat_accuracy, leaf_accuracy : float
        Certified accuracy at radius 0 (correct and not abstaining).
    improved, worsened : int
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
    n0, n : int, default 100, 1000
        Selection and estimation draws per input (one set shared by every candidate).
    alpha : float, default 0.001
        Failure probability of each certificate.
    batch_size : int, default 1000
    root_scorer : callable, optional
        ``root_scorer(partition) -> held-out root accuracy in [0, 1]``, e.g.
        :class:`LinearProbeRootScorer`. Without it learnability is not assessed (the table
        says so) and every candidate counts as feasible.
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
        from hierclass.smoothing import Smooth, clopper_pearson_lower
        from hierclass.smoothing.bounds import cohen_radius

        if not callable(self.flat_model):
            raise TypeError("flat_model must be callable (inputs -> logits)")
        if not 0.0 <= float(self.min_root_accuracy) <= 1.0:
            raise ValueError(f"min_root_accuracy must be in [0, 1], got {self.min_root_accuracy}")
        if not isinstance(x, torch.Tensor) or x.dim() < 2:
            raise TypeError("x must be a tensor [N, ...] of certification inputs")
        yy, num_labels = check_labels(y, x.shape[0], self.num_labels)
        if x.shape[0] == 0:
            raise ValueError("x holds no inputs to certify")
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
        # Merge proposals that found the same partition (compared by their classes).
        merged: dict[tuple, PartitionScore] = {}
        failed: list[PartitionScore] = []
        for c in cands:
            if c.partition is None:
                failed.append(PartitionScore((c.source,), None, error=c.error))
                continue
            key = tuple(sorted(c.partition.classes))
            if key in merged:
                merged[key].sources += (c.source,)
            else:
                merged[key] = PartitionScore((c.source,), c.partition)
        subsets = sorted({cls for key in merged for cls in key if len(cls) > 1})

        smooth = Smooth(self.flat_model, num_labels, self.sigma, seed=self.seed)
        cap = float(
            cohen_radius(float(clopper_pearson_lower(self.n, self.n, self.alpha)), self.sigma)
        )
        results = smooth.certify_many(
            list(x),
            self.n0,
            self.n,
            self.alpha,
            self.batch_size,
            indices=range(x.shape[0]),
            subsets=subsets or None,
            methods=("cohen",),
        )
        flat = np.zeros(x.shape[0])
        flat_ok = np.zeros(x.shape[0], dtype=bool)
        leaf = {cls: np.zeros(x.shape[0]) for cls in subsets}
        leaf_ok = {cls: np.zeros(x.shape[0], dtype=bool) for cls in subsets}
        iterator = progress(results, "certify", self.verbose, total=x.shape[0])
        for i, res in enumerate(iterator):
            if res.label == int(yy[i]):
                flat[i] = min(res.radius, cap)
                flat_ok[i] = True
            for cls in subsets:
                cert = res.subset_certificates[("cohen", cls)]
                if cert.label == int(yy[i]):
                    leaf[cls][i] = min(cert.radius, cap)
                    leaf_ok[cls][i] = True

        counts = np.bincount(yy, minlength=num_labels)
        for score in merged.values():
            part = score.partition
            owner = np.asarray(part.class_of(yy))
            radii = np.empty(x.shape[0])
            correct = np.empty(x.shape[0], dtype=bool)
            for c, cls in enumerate(part.classes):
                rows = owner == c
                # a one-label leaf is constant: counted at the cap (see radius_cap_)
                radii[rows] = cap if len(cls) == 1 else leaf[cls][rows]
                correct[rows] = True if len(cls) == 1 else leaf_ok[cls][rows]
            score.leaf_radii = radii
            score.flat_acr = float(flat.mean())
            score.leaf_acr = float(radii.mean())
            score.acr_gain = score.leaf_acr - score.flat_acr
            score.flat_accuracy = float(flat_ok.mean())
            score.leaf_accuracy = float(correct.mean())
            score.improved = int((radii > flat).sum())
            score.worsened = int((radii < flat).sum())
            class_counts = np.array([counts[list(cls)].sum() for cls in part.classes])
            score.root_chance = float(class_counts.max() / class_counts.sum())
            if self.root_scorer is not None:
                acc = float(self.root_scorer(part))
                if not 0.0 <= acc <= 1.0:
                    raise ValueError(f"root_scorer returned {acc}, expected an accuracy in [0, 1]")
                score.root_accuracy = acc
                score.feasible = acc >= self.min_root_accuracy
            else:
                score.feasible = True

        # Radius 0 for wrong/abstained samples; ties in gain go to fewer classes (simpler root).
        ranked = sorted(
            merged.values(),
            key=lambda s: (not s.feasible, -s.acr_gain, s.partition.num_classes),
        )
        for rank, score in enumerate(ranked, start=1):
            score.rank = rank
        self.scores_ = ranked + failed
        self.best_ = next((s for s in ranked if s.feasible), None)
        self.flat_radii_ = flat
        self.radius_cap_ = cap
        self.subsets_ = tuple(subsets)
        return self

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
