"""Certificates for a :class:`~hierclass.Hierarchy` (§IV-C, §VI-A).

Each node on a sample's path is smoothed on its own; the hierarchy's certified radius is the
minimum over the path, because an adversary that changes the output must change the choice of
at least one node on it. A node that reads only modalities the threat model leaves untouched
(a :class:`~hierclass.nodes.RuleRouter` on metadata, a router on LiDAR when only the camera is
attacked, a one-label leaf) is evaluated once on the clean input and has an infinite radius.

Soundness, step by step:

* The path is chosen with the ``n0`` selection draws only; the estimation draws are fresh.
* Each smoothed node on the path is certified at level ``alpha / k`` for the ``k`` smoothed
  nodes on that path, so all its bounds hold together with probability ``>= 1 - alpha``.
* Any node abstaining makes the hierarchy abstain; a sample is certified-correct at radius
  ``r`` only if its route and its label are right and the radius is ``>= r``.
* All nodes see the same noisy draws: the union bound does not need independence, and a flat
  model shared by renormalised leaves runs once per draw for all of them (and for the flat
  baseline), which is why a hierarchy of renormalised leaves costs about one flat
  certification.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from hierclass.channels_last import ChannelsLastForward, check_channels_last, has_4d_weights
from hierclass.smoothing.batch_size import resolve_plan
from hierclass.smoothing.bounds import check_alpha, check_sigma
from hierclass.smoothing.certificates import ABSTAIN, METHODS, Certificate, certify_counts
from hierclass.smoothing.precision import check_amp_dtype
from hierclass.smoothing.results import (
    COHEN_COLUMNS,
    FLAT_COLUMNS,
    PathLike,
    ResultTable,
    ResultWriter,
    format_counts,
    read_results,
)
from hierclass.smoothing.runner import (
    check_dataset,
    dataset_indices,
    eqclass_name,
    show_progress,
)
from hierclass.smoothing.sampling import STREAM_ESTIMATE, STREAM_SELECT, CountEngine, Request, Task
from hierclass.smoothing.smooth import BatchSize, check_count, model_device, noise_index
from hierclass.smoothing.subsets import SubsetHead

__all__ = [
    "HIERARCHY_COLUMNS",
    "HierarchicalSmooth",
    "HierarchyCertificate",
    "HierarchyResults",
    "certify_hierarchy",
]

#: Columns of a hierarchy certification run (Cohen's six first).
HIERARCHY_COLUMNS = COHEN_COLUMNS + (
    "eqclass",
    "route",
    "true_route",
    "route_correct",
    "node_radii",
    "detail",
)

NodePath = tuple[int, ...]


def _path_str(path: NodePath) -> str:
    return ".".join(str(p) for p in path) if path else "root"


@dataclass
class NodeCertificate:
    """One node's part of a hierarchical certificate.

    ``choice`` is the node's output index (a class id for a router, a position in
    ``node.labels`` for a leaf) or ``ABSTAIN``; ``certificate`` is ``None`` for a node
    evaluated without noise (infinite radius).
    """

    path: NodePath
    kind: str
    choice: int
    radius: float
    certificate: Certificate | None = None
    counts_select: np.ndarray | None = None
    counts: np.ndarray | None = None


@dataclass
class HierarchyCertificate:
    """A certified prediction of a smoothed hierarchy at one input.

    Attributes
    ----------
    index : int
        Noise index of the input.
    label : int
        Predicted global label or ``ABSTAIN``.
    radius : float
        ``min`` of the path's node radii (0 when abstaining, ``inf`` when no node on the path
        reads a perturbed modality).
    route : tuple of int
        Class ids chosen along the path (shorter when a router abstained).
    nodes : list of NodeCertificate
        The path's nodes, root first.
    alpha_node : float
        The level each smoothed node was certified at.
    flat : Certificate or None
        The flat baseline's certificate from the same draws, when requested.

    Examples
    --------
    A router that reads the input's two halves, and leaves whose logits are the input:

    >>> from hierclass import LabelPartition, Router, RenormalizedLeaf, Hierarchy
    >>> flat = lambda b: 4 * b
    >>> halves = lambda b: torch.stack([b[:, :2].sum(1), b[:, 2:].sum(1)], 1)
    >>> h = Hierarchy(Router(halves, LabelPartition([[0, 1], [2, 3]])),
    ...               [RenormalizedLeaf(flat, [0, 1]), RenormalizedLeaf(flat, [2, 3])])
    >>> hs = HierarchicalSmooth(h, sigma=0.25, flat=flat)
    >>> c = hs.certify(torch.tensor([0.0, 0.0, 0.0, 1.0]), n0=50, n=500, alpha=0.01,
    ...                batch_size=256)
    >>> c.label, c.route, [n.path for n in c.nodes], c.flat.label
    (3, (1,), [(), (1,)], 3)
    >>> c.radius == min(n.radius for n in c.nodes) > 0
    True
    """

    index: int
    label: int
    radius: float
    route: tuple[int, ...]
    nodes: list[NodeCertificate]
    alpha_node: float
    flat: Certificate | None = None
    flat_counts: tuple[np.ndarray, np.ndarray] | None = None


class _Group:
    """A model run once per noisy draw for every node it serves."""

    def __init__(self, gid: int, model: Any, input_key: str | None, num_outputs: int, node: bool):
        self.gid = gid
        self.node = node  # a hierarchy node: call .scores (validates its input)
        self.model = model
        self.input_key = input_key
        self.num_outputs = num_outputs
        self.subsets: list[tuple[int, ...]] = []
        self.head: SubsetHead | None = None
        self.fast: ChannelsLastForward | None = None  # made when channels-last is used
        self.convolutional = has_4d_weights(model)  # only these run channels-last

    def call(self, xm: torch.Tensor, channels_last: bool) -> Any:
        if channels_last and self.convolutional:
            if self.fast is None:
                self.fast = ChannelsLastForward(self.model, "scores" if self.node else "forward")
            return self.fast(xm)
        return self.model.scores(xm) if self.node else self.model(xm)

    def subset_slot(self, labels: Sequence[int]) -> int:
        key = tuple(sorted(int(v) for v in labels))
        if key not in self.subsets:
            self.subsets.append(key)
        return self.subsets.index(key)


class _Plan:
    """How each node is certified: clean (no noise) or through a group's head."""

    def __init__(self, path: NodePath, node: Any, kind: str, group=None, slot=None):
        self.path = path
        self.node = node
        self.kind = kind  # "clean" | "node" (argmax of its own outputs) | "renorm" (flat subset)
        self.group = group
        self.slot = slot


class HierarchicalSmooth:
    """Smooths every node of a :class:`~hierclass.Hierarchy` and certifies the whole tree.

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
    method : {"cohen", "margin"}, default "cohen"
        Per-node certificate: Cohen's bound on the node's own argmax (for a
        :class:`~hierclass.nodes.RenormalizedLeaf`, base renormalisation) or the restricted
        margin bound (for a renormalised leaf: on the flat model's votes restricted to the
        leaf's labels). See :mod:`hierclass.smoothing.certificates`.
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
        method: str = "cohen",
        flat: Any = None,
        flat_input_key: str | None = None,
        device: str | torch.device | None = None,
        amp_dtype: torch.dtype | None = None,
        channels_last: bool | None = None,
    ) -> None:
        from hierclass.hierarchy import Hierarchy

        if not isinstance(hierarchy, Hierarchy):
            raise TypeError(f"hierarchy must be a Hierarchy, got {type(hierarchy).__name__}")
        if method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}, got {method!r}")
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise ValueError(f"seed must be an int >= 0, got {seed!r}")
        if flat is not None and not callable(flat):
            raise TypeError(f"flat must be a callable returning logits, got {type(flat).__name__}")
        self.hierarchy = hierarchy
        self.sigma = check_sigma(sigma)
        self.seed = int(seed)
        self.perturbed_keys = None if perturbed_keys is None else tuple(perturbed_keys)
        self.method = method
        self.flat = flat
        self.amp_dtype = check_amp_dtype(amp_dtype)
        models = [node for _, node in hierarchy.nodes()] + ([] if flat is None else [flat])
        self.channels_last = check_channels_last(channels_last, *models)
        self.device = (
            torch.device(device) if device is not None else model_device(hierarchy.root.model)
        )
        self._build(flat_input_key)

    # ------------------------------------------------------------------ planning
    def _perturbed(self, node: Any) -> bool:
        """Whether the adversary can change what ``node`` reads (then it must be smoothed).

        A rule is a base classifier like any other: ``deterministic`` does not exempt a node.
        Only a node that reads nothing (a one-label leaf) or reads only modalities outside
        ``perturbed_keys`` is evaluated on the clean input.
        """
        if not getattr(node, "reads_input", True):
            return False
        if self.perturbed_keys is None:
            return True  # plain tensors, and every floating modality of a dict, are attacked
        return node.input_key in self.perturbed_keys

    def _build(self, flat_input_key: str | None) -> None:
        from hierclass.nodes import RenormalizedLeaf

        groups: dict[tuple, _Group] = {}
        plans: dict[NodePath, _Plan] = {}
        num_labels = self.hierarchy.num_labels

        def group_for(key: tuple, model: Any, input_key: str | None, width: int) -> _Group:
            if key not in groups:
                groups[key] = _Group(len(groups), model, input_key, width, key[0] == "node")
            return groups[key]

        for path, node in self.hierarchy.nodes():
            if node.num_outputs == 1:  # a constant: infinite radius, no share of alpha
                plans[path] = _Plan(path, node, "constant")
            elif not self._perturbed(node):
                plans[path] = _Plan(path, node, "clean")
            elif isinstance(node, RenormalizedLeaf):
                g = group_for(
                    ("flat", id(node.flat_model), node.input_key),
                    node.flat_model,
                    node.input_key,
                    num_labels,
                )
                slot = g.subset_slot(node.labels) if self.method == "cohen" else None
                plans[path] = _Plan(path, node, "renorm", g, slot)
            else:
                g = group_for(("node", id(node)), node, node.input_key, node.num_outputs)
                plans[path] = _Plan(path, node, "node", g)
        self.flat_group: _Group | None = None
        if self.flat is not None:
            key_of = [k for k in groups if k[0] == "flat" and k[1] == id(self.flat)]
            if key_of and (flat_input_key is None or key_of[0][2] == flat_input_key):
                self.flat_group = groups[key_of[0]]
            else:
                self.flat_group = group_for(
                    ("flat", id(self.flat), flat_input_key), self.flat, flat_input_key, num_labels
                )
        for g in groups.values():
            if g.subsets:
                g.head = SubsetHead(g.subsets, g.num_outputs, self.device)
        self.groups = list(groups.values())
        self._channels_last = False  # chosen per run by the "auto" probe
        self.plans = plans
        # head layout: per group, the argmax head then (optionally) its subset head
        self._head_slices: dict[int, tuple[int, int | None]] = {}
        sizes: list[int] = []
        for g in self.groups:
            a = len(sizes)
            sizes.append(g.num_outputs)
            b = None
            if g.head is not None:
                b = len(sizes)
                sizes.append(g.head.width)
            self._head_slices[g.gid] = (a, b)
        self._head_sizes = sizes

    def _keys_read(self) -> list | None:
        keys = {g.input_key for g in self.groups}
        return None if keys == {None} else sorted(k for k in keys if k is not None)

    # ------------------------------------------------------------------ sampling
    def _select(self, batch: Any, key: str | None) -> torch.Tensor:
        if key is None:
            if isinstance(batch, Mapping):
                raise TypeError(
                    "a node with input_key=None reads a plain tensor but the input is a dict"
                )
            return batch
        if not isinstance(batch, Mapping):
            raise ValueError(f"a node reads modality {key!r} but the input is a plain tensor")
        return batch[key]

    def _run_group(self, g: _Group, xm: torch.Tensor, channels_last: bool | None = None) -> Any:
        if channels_last is None:
            channels_last = self._channels_last
        if self.amp_dtype is None:
            out = g.call(xm, channels_last)
        else:
            with torch.autocast(self.device.type, dtype=self.amp_dtype):
                out = g.call(xm, channels_last)
            out = out.float() if isinstance(out, torch.Tensor) else out
        if not isinstance(out, torch.Tensor):
            raise TypeError(f"a node's model must return a tensor, got {type(out).__name__}")
        if out.dim() != 2 or out.shape[0] != xm.shape[0] or out.shape[1] != g.num_outputs:
            raise ValueError(
                f"model {type(g.model).__name__} must return scores of shape "
                f"[{xm.shape[0]}, {g.num_outputs}], got {list(out.shape)}"
            )
        return out

    def _evaluate(self, batch: Any, segments: list) -> list:
        out: list = [None] * len(self._head_sizes)
        total = sum(m for _, m in segments)
        for g in self.groups:
            needs = [g.gid in task.payload["groups"] for task, _ in segments]
            a, b = self._head_slices[g.gid]
            if not any(needs):
                empty = torch.zeros(0, dtype=torch.long, device=self.device)
                out[a] = (empty, empty)
                if b is not None:
                    out[b] = (empty.view(0, 1), empty)
                continue
            xm = self._select(batch, g.input_key)
            rows = None
            if not all(needs):
                mask = torch.tensor(np.repeat(needs, [m for _, m in segments]), device=self.device)
                rows = mask.nonzero().flatten()
                xm = xm[rows]
            logits = self._run_group(g, xm)
            out[a] = (logits.argmax(1), rows)
            if b is not None:
                out[b] = (g.head.bins(logits), rows)
        assert total >= 0
        return out

    def _engine(self, batch_size: BatchSize, example: Any) -> CountEngine:
        g0 = self.flat_group or self.groups[0]
        # the probe times the first group's model on the modality it reads
        if isinstance(example, Mapping) and g0.input_key is None:
            probe_input = example[(self._keys_read() or list(example))[0]]
        else:
            probe_input = self._select(example, g0.input_key)
        fixed = self.channels_last
        if batch_size == "auto":
            probe_layout = fixed is None and g0.convolutional
            plan = resolve_plan(
                "auto",
                g0.model,
                probe_input,
                sigma=self.sigma,
                forward=lambda b: self._run_group(g0, b, bool(fixed)),
                channels_last=(lambda b: self._run_group(g0, b, True)) if probe_layout else None,
                variant=(self.amp_dtype, fixed),
            )
        else:
            plan = resolve_plan(batch_size, None, probe_input)
        # the layout the probe chose for the first group applies to every convolutional group
        self._channels_last = plan.channels_last if fixed is None else fixed
        return CountEngine(
            self._evaluate,
            self._head_sizes,
            sigma=self.sigma,
            seed=self.seed,
            batch_size=plan.batch_size,
            device=self.device,
            perturbed_keys=None if isinstance(example, torch.Tensor) else self._keys_read(),
        )

    # ------------------------------------------------------------------ inputs
    def _prepare(self, x: Any) -> tuple[Any, Any]:
        """(full input for clean nodes, reduced input holding only the sampled modalities)."""
        if isinstance(x, np.ndarray):
            x = torch.from_numpy(x)
        if isinstance(x, torch.Tensor):
            if self.perturbed_keys is not None:
                raise ValueError(
                    "perturbed_keys names modalities but the input is a plain tensor; pass a "
                    "dict input or perturbed_keys=None"
                )
            if not x.is_floating_point():
                raise TypeError(f"the input must be floating point, got dtype {x.dtype}")
            if bool(torch.isnan(x).any()):
                raise ValueError("the input contains NaN")
            x = x.to(self.device)
            return x, x
        if not isinstance(x, Mapping) or not x:
            raise TypeError(f"the input must be a tensor or a non-empty dict, got {type(x)}")
        full = {}
        for k, v in x.items():
            if not isinstance(v, torch.Tensor):
                raise TypeError(f"modality {k!r} must be a tensor, got {type(v).__name__}")
            if v.is_floating_point() and bool(torch.isnan(v).any()):
                raise ValueError(f"modality {k!r} contains NaN")
            full[k] = v.to(self.device)
        if self.perturbed_keys is not None:
            missing = [k for k in self.perturbed_keys if k not in full]
            if missing:
                raise ValueError(f"perturbed_keys {missing} are not in the input ({sorted(full)})")
        keys = self._keys_read() or []
        missing = [k for k in keys if k not in full]
        if missing:
            raise ValueError(f"nodes read modalities {missing} missing from the input")
        return full, {k: full[k] for k in keys}

    def _clean_choice(self, plan: _Plan, full: Any) -> int:
        node = plan.node
        one = (
            {k: v.unsqueeze(0) for k, v in full.items()}
            if isinstance(full, Mapping)
            else full.unsqueeze(0)
        )
        with torch.inference_mode():
            scores = node(one)
        return int(scores.argmax(1)[0])

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
        n0 = check_count("n0", n0)
        n = check_count("n", n)
        alpha = check_alpha(alpha)
        xs = list(xs)
        if indices is None:
            idx = [noise_index(None) for _ in xs]
        else:
            idx = [noise_index(i) for i in indices]
        if len(idx) != len(xs):
            raise ValueError(f"{len(xs)} inputs but {len(idx)} indices")
        if not xs:
            return iter(())
        if not self.groups:  # nothing on any path is smoothed: no sampling at all
            return iter(
                self._certificate(i, full, self._walk(full, []), [], [], alpha)
                for (full, _), i in ((self._prepare(x), i) for x, i in zip(xs, idx))
            )
        prepared = [self._prepare(x) for x in xs[:1]]
        engine = self._engine(batch_size, prepared[0][1])
        chunk = max(1, engine.batch_size // max(1, n0))
        return self._iterate(xs, idx, n0, n, alpha, engine, chunk)

    def _iterate(self, xs, idx, n0, n, alpha, engine, chunk) -> Iterator[HierarchyCertificate]:
        all_groups = {g.gid for g in self.groups}
        for start in range(0, len(xs), chunk):
            items = [(self._prepare(x), i) for x, i in zip(xs[start : start + chunk], idx[start:])]
            # phase 1: selection draws through every smoothed model -> the path
            sel_tasks = [
                Task(red, i, [Request(STREAM_SELECT, n0)], {"groups": all_groups, "full": full})
                for (full, red), i in items
            ]
            selected = list(engine.run(sel_tasks))
            walks = [self._walk(t.payload["full"], t.counts[0]) for t in selected]
            # phase 2: fresh estimation draws, only through the models on each path
            est_tasks = []
            for ((_full, red), i), walk in zip(items, walks):
                groups = {p.group.gid for p in walk if p.group is not None}
                if self.flat_group is not None:
                    groups.add(self.flat_group.gid)
                est_tasks.append(Task(red, i, [Request(STREAM_ESTIMATE, n)], {"groups": groups}))
            estimated = list(engine.run(est_tasks))
            for t_sel, t_est, walk, ((full, _), i) in zip(selected, estimated, walks, items):
                yield self._certificate(i, full, walk, t_sel.counts[0], t_est.counts[0], alpha)

    def _node_counts(self, plan: _Plan, counts: list) -> np.ndarray:
        a, b = self._head_slices[plan.group.gid]
        if plan.kind == "renorm" and plan.slot is not None:
            return plan.group.head.decode(counts[b])[plan.slot]
        return counts[a]

    def _walk(self, full: Any, sel_counts: list) -> list[_Plan]:
        """The path the selection draws choose: a list of plans, root first."""
        path: NodePath = ()
        walk = []
        while True:
            plan = self.plans[path]
            walk.append(plan)
            if path and not hasattr(plan.node, "partition"):
                return walk  # a leaf
            if plan.kind == "constant":
                choice = 0
            elif plan.kind == "clean":
                choice = self._clean_choice(plan, full)
            else:
                choice = int(np.argmax(self._node_counts(plan, sel_counts)))
            path = path + (choice,)

    def _certificate(self, index, full, walk, sel, est, alpha) -> HierarchyCertificate:
        smoothed = [p for p in walk if p.kind not in ("clean", "constant")]
        alpha_node = alpha / max(1, len(smoothed))
        nodes: list[NodeCertificate] = []
        route: list[int] = []
        label, radius = ABSTAIN, math.inf
        for plan in walk:
            is_leaf = bool(plan.path) and not hasattr(plan.node, "partition")
            if plan.kind in ("clean", "constant"):
                choice = 0 if plan.kind == "constant" else self._clean_choice(plan, full)
                nodes.append(NodeCertificate(plan.path, plan.kind, choice, math.inf))
            else:
                cs, ce = self._node_counts(plan, sel), self._node_counts(plan, est)
                if plan.kind == "renorm":
                    if self.method == "margin":
                        cs = sel[self._head_slices[plan.group.gid][0]]
                        ce = est[self._head_slices[plan.group.gid][0]]
                    cert = certify_counts(
                        cs,
                        ce,
                        alpha_node,
                        self.sigma,
                        labels=plan.node.labels,
                        method=self.method,
                    )
                    choice = (
                        ABSTAIN if cert.label == ABSTAIN else plan.node.labels.index(cert.label)
                    )
                else:
                    cert = certify_counts(cs, ce, alpha_node, self.sigma, method=self.method)
                    choice = cert.label
                nodes.append(
                    NodeCertificate(plan.path, plan.kind, choice, cert.radius, cert, cs, ce)
                )
            radius = min(radius, nodes[-1].radius)
            if choice == ABSTAIN:
                label, radius = ABSTAIN, 0.0
                break
            if is_leaf:
                label = int(plan.node.labels[choice])
            else:
                route.append(choice)
        flat_cert, flat_counts = None, None
        if self.flat_group is not None:
            a = self._head_slices[self.flat_group.gid][0]
            flat_counts = (sel[a], est[a])
            flat_cert = certify_counts(sel[a], est[a], alpha, self.sigma)
        return HierarchyCertificate(
            index, label, radius, tuple(route), nodes, alpha_node, flat_cert, flat_counts
        )


@dataclass
class HierarchyResults:
    """Rows of a hierarchy certification run and, optionally, of the flat baseline.

    Attributes
    ----------
    hierarchy : ResultTable
        One row per input (columns :data:`HIERARCHY_COLUMNS`).
    flat : ResultTable or None
        The flat baseline on the same inputs and draws (columns of a flat run).
    certificates : list of HierarchyCertificate
        The full certificates of this run's inputs (not of rows resumed from a file).

    Examples
    --------
    >>> from hierclass import LabelPartition, Router, RenormalizedLeaf, Hierarchy
    >>> flat = lambda b: 4 * b
    >>> halves = lambda b: torch.stack([b[:, :2].sum(1), b[:, 2:].sum(1)], 1)
    >>> h = Hierarchy(Router(halves, LabelPartition([[0, 1], [2, 3]])),
    ...               [RenormalizedLeaf(flat, [0, 1]), RenormalizedLeaf(flat, [2, 3])])
    >>> res = certify_hierarchy(h, torch.eye(4), torch.arange(4), sigma=0.25, n0=20, n=200,
    ...                         alpha=0.01, batch_size=256, flat=flat, verbose=False)
    >>> res.hierarchy["predict"], res.flat["predict"], len(res.certificates)
    (array([0, 1, 2, 3]), array([0, 1, 2, 3]), 4)
    >>> res.table().splitlines()[-1].startswith("| all | 4 |")
    True
    """

    hierarchy: ResultTable
    flat: ResultTable | None = None
    certificates: list = field(default_factory=list)

    def table(self, radius: float = 0.0) -> str:
        """Per-equivalence-class markdown table: baseline vs. hierarchy (Tables IV-VII)."""
        from hierclass.smoothing.analysis import comparison_table

        if self.flat is None:
            raise ValueError("no flat baseline was certified; pass flat= to certify_hierarchy")
        return comparison_table(self.flat, self.hierarchy, radius=radius)


def _node_detail(node: NodeCertificate) -> dict[str, Any]:
    d: dict[str, Any] = {"kind": node.kind, "choice": node.choice, "radius": node.radius}
    if node.certificate is not None:
        d["p_lower"] = node.certificate.p_lower
        d["counts_select"] = np.asarray(node.counts_select).tolist()
        d["counts"] = np.asarray(node.counts).tolist()
    return d


def hierarchy_row(cert: HierarchyCertificate, label: int, true_route, seconds, partition):
    """The TSV row of one :class:`HierarchyCertificate`."""
    detail = {
        "alpha_node": cert.alpha_node,
        "nodes": {_path_str(n.path): _node_detail(n) for n in cert.nodes},
    }
    radii = ";".join(f"{_path_str(n.path)}={n.radius:.6g}" for n in cert.nodes)
    route_ok = tuple(cert.route) == tuple(true_route[: len(cert.route)]) and len(cert.route) == len(
        true_route
    )
    return {
        "idx": cert.index,
        "label": label,
        "predict": cert.label,
        "radius": cert.radius,
        "correct": int(cert.label == label and route_ok),
        "time": round(seconds, 4),
        "eqclass": eqclass_name(partition, label),
        "route": ".".join(map(str, cert.route)),
        "true_route": ".".join(map(str, true_route)),
        "route_correct": int(route_ok),
        "node_radii": radii,
        "detail": json.dumps(detail, separators=(",", ":"), default=float),
    }


def _flat_row(cert: HierarchyCertificate, label: int, seconds: float, partition) -> dict:
    fc = cert.flat
    sel, est = cert.flat_counts
    return {
        "idx": cert.index,
        "label": label,
        "predict": fc.label,
        "radius": fc.radius,
        "correct": int(fc.label == label),
        "time": round(seconds, 4),
        "eqclass": eqclass_name(partition, label),
        "p_lower": fc.p_lower,
        "counts_select": format_counts(sel),
        "counts": format_counts(est),
        "extra": "{}",
    }


def _row_of(x: Any, i: int) -> Any:
    return x[i] if isinstance(x, torch.Tensor) else {k: v[i] for k, v in x.items()}


def certify_hierarchy(
    hierarchy: Any,
    x: Any,
    y: Any,
    *,
    sigma: float,
    n0: int = 100,
    n: int = 100_000,
    alpha: float = 0.001,
    batch_size: BatchSize = 1000,
    seed: int = 0,
    perturbed_keys: Sequence[str] | None = None,
    flat: Any = None,
    method: str = "cohen",
    indices: Sequence[int] | None = None,
    out: PathLike | None = None,
    flat_out: PathLike | None = None,
    resume: bool = True,
    verbose: bool | None = None,
) -> HierarchyResults:
    """Certify a hierarchy on a data set, optionally against a flat baseline on the same draws.

    Parameters
    ----------
    hierarchy : Hierarchy
        The tree to certify (models in ``eval`` mode).
    x : Tensor [N, ...] or dict of Tensors
        Inputs in [0, 1].
    y : Tensor [N]
        True global labels.
    sigma, n0, n, alpha, batch_size, seed
        As in :class:`~hierclass.Smooth`; ``alpha`` is split across each path's smoothed
        nodes. The flat baseline is certified at the full ``alpha``.
    perturbed_keys : sequence of str, optional
        Threat model for dict inputs (see :class:`HierarchicalSmooth`).
    flat : callable, optional
        Flat baseline classifier over all labels (e.g. the renormalised leaves' flat model).
    method : {"cohen", "margin"}
        Per-node certificate.
    indices : sequence of int, optional
        Positions of ``x`` to certify (default all); also the noise indices.
    out, flat_out : path, optional
        TSV files for the hierarchy and flat rows (resumable; see ``ResultWriter``).
    resume : bool
        Skip positions already in ``out``.
    verbose : bool, optional
        Progress bar (default: only on a terminal).

    Returns
    -------
    HierarchyResults
        ``.hierarchy`` and ``.flat`` tables; ``.table()`` gives the per-class comparison.

    Examples
    --------
    >>> from torch import nn
    >>> from hierclass import LabelPartition, Router, RenormalizedLeaf, Hierarchy
    >>> p = LabelPartition([[0, 1], [2, 3]])
    >>> flat = nn.Linear(4, 4).eval()
    >>> h = Hierarchy(Router(nn.Linear(4, 2).eval(), p),
    ...               [RenormalizedLeaf(flat, [0, 1]), RenormalizedLeaf(flat, [2, 3])])
    >>> res = certify_hierarchy(h, torch.rand(6, 4), torch.tensor([0, 1, 2, 3, 0, 2]),
    ...                         sigma=0.25, n0=20, n=200, alpha=0.01, batch_size=256, flat=flat,
    ...                         verbose=False)
    >>> len(res.hierarchy), len(res.flat)
    (6, 6)
    >>> print(res.table().splitlines()[0])  # doctest: +ELLIPSIS
    | class | n | baseline CR | hierarchy CR | baseline CA | hierarchy CA |
    """
    hs = HierarchicalSmooth(
        hierarchy, sigma, seed=seed, perturbed_keys=perturbed_keys, method=method, flat=flat
    )
    x, y, size = check_dataset(x, y, hierarchy.num_labels)
    todo = dataset_indices(size, indices)
    partition = hierarchy.partition
    writer = ResultWriter(out, HIERARCHY_COLUMNS, resume=resume) if out is not None else None
    fwriter = None
    if flat is not None and flat_out is not None:
        fwriter = ResultWriter(flat_out, FLAT_COLUMNS, resume=resume)
    rows, frows, certs = [], [], []
    try:
        if writer is not None:
            todo = [i for i in todo if i not in writer.done]
        bar = tqdm(total=len(todo), disable=not show_progress(verbose), desc="certify hierarchy")
        stream = hs.certify_many(
            (_row_of(x, i) for i in todo), n0, n, alpha, batch_size, indices=todo
        )
        tick = time.perf_counter()  # after the batch-size probe: it is no input's time
        for cert in stream:
            now = time.perf_counter()
            label = int(y[cert.index])
            true_route = hierarchy.path_of_label(label)
            row = hierarchy_row(cert, label, true_route, now - tick, partition)
            if cert.flat is not None:
                frow = _flat_row(cert, label, now - tick, partition)
                if fwriter is not None and cert.index not in fwriter.done:
                    fwriter.write(frow)  # a kill between the two writes left only this one
                frows.append(frow)
            if writer is not None:
                writer.write(row)  # after the flat row: a resumed run redoes both or neither
            rows.append(row)
            certs.append(cert)
            tick = now
            bar.update(1)
        bar.close()
    finally:
        if writer is not None:
            writer.close()
        if fwriter is not None:
            fwriter.close()
    htable = (
        read_results(out) if out is not None else ResultTable.from_rows(rows, HIERARCHY_COLUMNS)
    )
    ftable = None
    if flat is not None:
        if flat_out is not None:
            ftable = read_results(flat_out)
        else:
            ftable = ResultTable.from_rows(frows, FLAT_COLUMNS)
    return HierarchyResults(htable, ftable, certs)
