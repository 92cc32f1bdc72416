"""Certificates for a :class:`~hierclass.Hierarchy` (§IV-C, §VI-A): two-phase sampling.

Each node on a sample's path is smoothed on its own; the hierarchy's certified radius is the
minimum over the path, because an adversary that changes the output must change the choice of
at least one node on it. This module samples; the rest has one home each:

* :mod:`~hierclass.smoothing.hierarchy.plan`: which node is smoothed, clean or constant, and
  which models run once per draw for several nodes;
* :mod:`~hierclass.smoothing.certificates.path`: the pure function that turns a path's
  votes into the certificate (alpha split, minimum radius, per-level classes, abstention);
* :mod:`~hierclass.smoothing.records.rows` and
  :mod:`~hierclass.smoothing.analysis.hierarchy_results`: rows and per-level tables;
* :mod:`~hierclass.smoothing.runs.fixed_n`: the one resumable data-set driver and
  :func:`~hierclass.smoothing.runs.fixed_n.certify_hierarchy`.

Sampling, step by step:

* phase 1: the ``n0`` selection draws run through every smoothed model and fix the path;
* phase 2: ``n`` fresh estimation draws run only through the models on that path (and the
  flat baseline), so the selection draws are never reused for estimation;
* all nodes see the same noisy draws: the union bound does not need independence, and a flat
  model shared by renormalised leaves runs once per draw for all of them (and for the flat
  baseline), which is why a hierarchy of renormalised leaves costs about one flat
  certification.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from itertools import islice
from typing import Any

import numpy as np
import torch

from hierclass._utils.modules import model_device
from hierclass.channels_last import check_channels_last
from hierclass.hierarchy import Hierarchy
from hierclass.inputs import InputRange, check_input_range
from hierclass.smoothing.certificates.bounds import check_sigma
from hierclass.smoothing.certificates.counts import ABSTAIN, certify_counts_checked
from hierclass.smoothing.certificates.path import HierarchyCertificate, NodePath, certify_path
from hierclass.smoothing.engine.forward import checked_scores, resolve_forward
from hierclass.smoothing.engine.precision import check_amp_dtype, warn_slow_amp, with_autocast
from hierclass.smoothing.engine.prepare import (
    BatchSize,
    check_budget,
    indexed_stream,
    noise_index,
    prepare_sample,
    warn_training_mode,
)
from hierclass.smoothing.engine.protocol import Prepared, open_run
from hierclass.smoothing.engine.sampling import (
    STREAM_ESTIMATE,
    STREAM_SELECT,
    CountEngine,
    Request,
    Task,
)
from hierclass.smoothing.hierarchy.plan import (
    Group,
    NodeRole,
    PathDraws,
    SamplingPlan,
    Step,
    select_modality,
)

__all__ = ["LEAF_CERTIFICATES", "HierarchicalSmooth", "check_leaf_certificate"]

#: How renormalised leaves are certified: ``"renormalized"`` (base renormalisation: Cohen's
#: bound on ``argmax_{c in L}`` of the flat logits) or ``"margin"`` (restricted margin on
#: the flat votes). Other nodes always get Cohen's bound on their own argmax.
LEAF_CERTIFICATES = ("renormalized", "margin")


def check_leaf_certificate(leaf_certificate: str) -> str:
    """Validate ``leaf_certificate``, one of :data:`LEAF_CERTIFICATES`.

    Examples
    --------
    >>> check_leaf_certificate("margin")
    'margin'
    >>> check_leaf_certificate("cohen")
    Traceback (most recent call last):
    ...
    ValueError: leaf_certificate must be one of ('renormalized', 'margin'), got 'cohen'
    """
    if leaf_certificate not in LEAF_CERTIFICATES:
        raise ValueError(
            f"leaf_certificate must be one of {LEAF_CERTIFICATES}, got {leaf_certificate!r}"
        )
    return leaf_certificate


class HierarchicalSmooth:
    """Smooths every node of a :class:`~hierclass.Hierarchy` and certifies the whole tree.

    Certificates hold for the threat model ``perturbed_keys``: a node is smoothed unless it
    reads nothing (a one-label leaf) or only unperturbed modalities; a rule
    (:class:`~hierclass.nodes.RuleRouter`) on an attacked modality is smoothed like any other
    node. The path's certificate, with the alpha accounting, is
    :func:`hierclass.smoothing.certificates.path.certify_path`.

    Parameters
    ----------
    hierarchy : Hierarchy
        The tree; put its models in ``eval`` mode first.
    sigma : float
        Noise level (the same for every perturbed modality).
    seed : int, default 0
        Base seed of the per-sample noise streams (see :class:`~hierclass.Smooth`).
    perturbed_keys : sequence of str, optional
        The threat model for dict inputs: modalities the adversary (and the noise) touches.
        Nodes reading other modalities get an infinite radius. Default: every
        floating-point modality. Must be ``None`` for tensor inputs.
    leaf_certificate : {"renormalized", "margin"}, default "renormalized"
        Certificate of a :class:`~hierclass.nodes.RenormalizedLeaf`: base renormalisation
        (Cohen's bound on ``argmax_{c in L}`` of the flat logits) or the restricted margin on
        the flat model's votes (see :mod:`hierclass.smoothing.certificates.counts`). Every other
        node gets Cohen's bound on its own argmax.
    flat : callable, optional
        A flat baseline classifier ``[B, ...] -> [B, num_labels]`` certified on the same
        noisy draws (free when it is the renormalised leaves' flat model).
    flat_input_key : str, optional
        The modality ``flat`` reads for dict inputs (default: the key of the renormalised
        leaves sharing it).
    device : torch.device, optional
        Where noise is drawn (default: the root model's device).
    amp_dtype : torch.dtype, optional
        Run every node's model under ``torch.autocast`` in this precision; the certificate is
        then for the hierarchy as executed in that precision (see :class:`~hierclass.Smooth`).
    channels_last : bool or None
        Run the convolutional models channels-last (see :class:`~hierclass.Smooth`):
        ``None`` lets the ``batch_size="auto"`` probe decide, ``True`` always, ``False`` never.
    input_range : (low, high) or dict, optional
        Range of the inputs, per modality for dict inputs (:mod:`hierclass.inputs`); default
        the hierarchy's own ``input_range`` if it declares one, else image-shaped modalities
        in [0, 1]. Non-finite or out-of-range inputs and non-finite scores are errors.

    Examples
    --------
    >>> from torch import nn
    >>> from hierclass import LabelPartition, Router, RenormalizedLeaf, Hierarchy
    >>> torch.manual_seed(0)  # doctest: +ELLIPSIS
    <...>
    >>> p = LabelPartition([[0, 1], [2, 3]])
    >>> flat = nn.Linear(4, 4).eval()
    >>> h = Hierarchy(Router(nn.Linear(4, 2).eval(), p),
    ...               [RenormalizedLeaf(flat, [0, 1]), RenormalizedLeaf(flat, [2, 3])])
    >>> hs = HierarchicalSmooth(h, sigma=0.25, flat=flat)
    >>> c = hs.certify(torch.randn(4), n0=50, n=500, alpha=0.01, batch_size=256)
    >>> len(c.route), c.radius <= min(n.radius for n in c.nodes)
    (1, True)
    """

    ABSTAIN = ABSTAIN

    def __init__(
        self,
        hierarchy: Any,
        sigma: float,
        *,
        seed: int = 0,
        perturbed_keys: Sequence[str] | None = None,
        leaf_certificate: str = "renormalized",
        flat: Any = None,
        flat_input_key: str | None = None,
        device: str | torch.device | None = None,
        amp_dtype: torch.dtype | None = None,
        channels_last: bool | None = None,
        input_range: InputRange = None,
    ) -> None:
        if not isinstance(hierarchy, Hierarchy):
            raise TypeError(f"hierarchy must be a Hierarchy, got {type(hierarchy).__name__}")
        leaf_certificate = check_leaf_certificate(leaf_certificate)
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise ValueError(f"seed must be an int >= 0, got {seed!r}")
        if flat is not None and not callable(flat):
            raise TypeError(f"flat must be a callable returning logits, got {type(flat).__name__}")
        self.hierarchy = hierarchy
        self.sigma = check_sigma(sigma)
        self.seed = int(seed)
        self.perturbed_keys = None if perturbed_keys is None else tuple(perturbed_keys)
        self.leaf_certificate = leaf_certificate
        self.flat = flat
        self.amp_dtype = check_amp_dtype(amp_dtype)
        models = [node for _, node in hierarchy.nodes()] + ([] if flat is None else [flat])
        self.channels_last = check_channels_last(channels_last, *models)
        self.device = (
            torch.device(device) if device is not None else model_device(hierarchy.root.model)
        )
        if input_range is None:
            input_range = getattr(hierarchy, "input_range", None)
        warn_slow_amp(self.amp_dtype, self.device)
        self.input_range = check_input_range(input_range)
        # the learned models inside the nodes (node wrappers themselves hold no layers)
        warn_training_mode(*[getattr(node, "model", None) for _, node in hierarchy.nodes()], flat)
        self.plan = SamplingPlan(
            hierarchy,
            self.perturbed_keys,
            leaf_certificate == "margin",
            flat,
            flat_input_key,
            self.device,
        )

    @property
    def groups(self) -> list[Group]:
        """The models run once per draw (see :class:`SamplingPlan`)."""
        return self.plan.groups

    @property
    def roles(self) -> dict[NodePath, NodeRole]:
        """Each node's :class:`~hierclass.smoothing.hierarchy.plan.NodeRole`, by path."""
        return self.plan.roles

    # ------------------------------------------------------------------ the certifier protocol
    def prepare(self, x: Any) -> Prepared:
        """One input validated and on the device: ``full`` for clean nodes, ``sampled`` for
        the engine (only the modalities the smoothed nodes read).

        Part of the protocol every certifier uses
        (:class:`~hierclass.smoothing.engine.protocol.Smoothed`).
        """
        full = prepare_sample(x, self.device, input_range=self.input_range)
        if isinstance(full, torch.Tensor):
            if self.perturbed_keys is not None:
                raise ValueError(
                    "perturbed_keys names modalities but the input is a plain tensor; pass a "
                    "dict input or perturbed_keys=None"
                )
            return Prepared(full, full)
        if self.perturbed_keys is not None:
            missing = [k for k in self.perturbed_keys if k not in full]
            if missing:
                raise ValueError(f"perturbed_keys {missing} are not in the input ({sorted(full)})")
        keys = self.plan.keys_read() or []
        missing = [k for k in keys if k not in full]
        if missing:
            raise ValueError(f"nodes read modalities {missing} missing from the input")
        return Prepared(full, {k: full[k] for k in keys})

    def engine(self, batch_size: BatchSize, example: Prepared) -> CountEngine:
        """The engine counting every group's votes; ``"auto"`` probes the first group.

        The layout the probe picks for the first group's model applies to every
        convolutional group. Tasks must carry a
        :class:`~hierclass.smoothing.hierarchy.plan.PathDraws` payload: the groups they run.
        """
        if not self.groups:
            raise ValueError("no node of this hierarchy is smoothed: there is nothing to sample")
        g0 = self.plan.flat_group or self.groups[0]
        sampled = example.sampled
        if isinstance(sampled, Mapping) and g0.input_key is None:
            probe_input = sampled[(self.plan.keys_read() or list(sampled))[0]]
        else:
            probe_input = select_modality(sampled, g0.input_key)
        plan, _ = resolve_forward(
            batch_size,
            g0.model,
            probe_input,
            lambda channels_last: (lambda b: g0.call(b, channels_last)),
            sigma=self.sigma,
            layout=self.channels_last,
            convolutional=g0.convolutional,
            device=self.device,
            amp_dtype=self.amp_dtype,
        )
        forwards = {g.gid: self._forward(g, plan.channels_last) for g in self.groups}
        engine = CountEngine(
            lambda batch, segments: self._evaluate(engine, batch, segments, forwards),
            self.plan.head_sizes,
            sigma=self.sigma,
            seed=self.seed,
            batch_size=plan.batch_size,
            device=self.device,
            perturbed_keys=None if isinstance(sampled, torch.Tensor) else self.plan.keys_read(),
        )
        engine.nonfinite_what = "a model of the hierarchy"
        return engine

    # ------------------------------------------------------------------ sampling
    def _forward(self, g: Group, channels_last: bool) -> Callable[[Any], torch.Tensor]:
        """One group's checked scores on a batch of its modality, in the run's precision.

        Built once per engine, so a batch pays only the model's forward pass.
        """
        forward = functools.partial(g.call, channels_last=channels_last)
        if self.amp_dtype is not None:
            forward = with_autocast(forward, self.device, self.amp_dtype)
        what = f"model {type(g.model).__name__}"
        return functools.partial(
            checked_scores, forward, width=g.num_outputs, what=what,
            width_from="its number of outputs",
        )  # fmt: skip

    def _evaluate(self, engine: CountEngine, batch: Any, segments: list, forwards: dict) -> list:
        out: list = [None] * len(self.plan.head_sizes)
        draws = [m for _, m in segments]
        for g in self.groups:
            needs = [g.gid in task.payload.groups for task, _ in segments]
            a, b = self.plan.head_slices[g.gid]
            if not any(needs):
                empty = torch.zeros(0, dtype=torch.long, device=self.device)
                out[a] = (empty, empty)
                if b is not None:
                    out[b] = (empty.view(0, 1), empty)
                continue
            xm = select_modality(batch, g.input_key)
            rows = None
            if not all(needs):
                # the rows are known on the host: no device-side nonzero (a sync on a GPU)
                picked = np.flatnonzero(np.repeat(needs, draws))
                rows = torch.from_numpy(picked).to(self.device)
                xm = xm[rows]
            logits = forwards[g.gid](xm)
            if g.finite_scores:
                engine.flag_nonfinite(logits)
            out[a] = (logits.argmax(1), rows)
            if b is not None:
                out[b] = (g.head.bins(logits), rows)
        return out

    # ------------------------------------------------------------------ certification
    def certify(
        self,
        x: Any,
        n0: int = 100,
        n: int = 100_000,
        alpha: float = 0.001,
        batch_size: BatchSize = 1000,
        *,
        index: int | None = None,
    ) -> HierarchyCertificate:
        """Certify one input (no batch dimension); see the class docstring.

        ``index`` is the noise index; ``None`` (default) draws a fresh one, so that
        independent calls draw independent noise (see :meth:`hierclass.Smooth.certify`).
        """
        (res,) = self.certify_many([x], n0, n, alpha, batch_size, indices=[noise_index(index)])
        return res

    def certify_many(
        self,
        xs: Iterable[Any],
        n0: int = 100,
        n: int = 100_000,
        alpha: float = 0.001,
        batch_size: BatchSize = 1000,
        *,
        indices: Iterable[int] | None = None,
    ) -> Iterator[HierarchyCertificate]:
        """Certify a stream of inputs (``indices``: their noise indices, default fresh ones).

        Selection draws of a chunk of inputs run first and fix each input's path; the
        estimation draws then run only the models on that path (and the flat baseline).
        """
        n0, n, alpha = check_budget(n0, n, alpha)
        if not self.groups:  # nothing on any path is smoothed: no sampling at all
            _, pairs = indexed_stream(self.prepare, xs, indices)
            return (self._unsampled(x.full, i, alpha) for x, i in pairs)
        engine, pairs = open_run(self, xs, indices, batch_size)
        if engine is None:
            return iter(())
        chunk = max(1, engine.batch_size // max(1, n0))
        return self._iterate(pairs, n0, n, alpha, engine, chunk)

    def _iterate(self, pairs, n0, n, alpha, engine, chunk) -> Iterator[HierarchyCertificate]:
        every_group = {g.gid for g in self.groups}
        while items := list(islice(pairs, chunk)):
            # phase 1: selection draws through every smoothed model -> the path
            select = [Request(STREAM_SELECT, n0)]
            sel_tasks = [Task(x.sampled, i, select, PathDraws(every_group)) for x, i in items]
            selected = list(engine.run(sel_tasks))
            walks = [self.plan.walk(x.full, t.counts[0]) for (x, _), t in zip(items, selected)]
            # phase 2: fresh estimation draws, only through the models on each path
            estimate = [Request(STREAM_ESTIMATE, n)]
            est_tasks = [
                Task(x.sampled, i, estimate, PathDraws(self._path_groups(walk)))
                for (x, i), walk in zip(items, walks)
            ]
            estimated = list(engine.run(est_tasks))
            for t_sel, t_est, walk, (_, i) in zip(selected, estimated, walks, items):
                cert = self._certificate(i, walk, t_sel.counts[0], t_est.counts[0], alpha)
                cert.seconds = t_sel.seconds + t_est.seconds  # its share of both phases' batches
                yield cert

    def _path_groups(self, walk: list[Step]) -> set[int]:
        """The groups an input's estimation draws run: its path's and the flat baseline's."""
        groups = {s.role.group.gid for s in walk if s.role.group is not None}
        if self.plan.flat_group is not None:
            groups.add(self.plan.flat_group.gid)
        return groups

    def _unsampled(self, full: Any, index: int, alpha: float) -> HierarchyCertificate:
        # nothing is sampled: the input's time is its clean forward passes
        start = time.perf_counter()
        cert = self._certificate(index, self.plan.walk(full, []), [], [], alpha)
        cert.seconds = time.perf_counter() - start
        return cert

    def _certificate(self, index, walk, sel, est, alpha) -> HierarchyCertificate:
        votes = [self.plan.votes(step, sel, est) for step in walk]
        cert = certify_path(votes, alpha, self.sigma, index=index)
        if self.plan.flat_group is not None:
            fs, fe = self.plan.flat_counts(sel), self.plan.flat_counts(est)
            cert.flat_counts = (fs, fe)
            cert.flat = certify_counts_checked(fs, fe, alpha, self.sigma, None, "cohen")
        return cert
