"""How each node of a hierarchy is certified, and which models run once per noisy draw.

A :class:`SamplingPlan` groups the hierarchy's models so that each runs once per draw for
every node it serves: all :class:`~hierclass.nodes.RenormalizedLeaf` nodes built on one flat
model (and the flat baseline) share that model's forward pass and a
:class:`~hierclass.smoothing.certificates.subsets.SubsetHead`. Each node gets a :class:`NodeRole`:

* ``"constant"``: one output (a one-label leaf): infinite radius, no share of alpha;
* ``"clean"``: reads only modalities outside the threat model: evaluated once on the clean
  input, infinite radius, no share of alpha;
* ``"smoothed"``: everything else, rules included (a rule is a base classifier too).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np
import torch

from hierclass.channels_last import ChannelsLastForward, has_4d_weights
from hierclass.nodes import FlatVoteRouter, RenormalizedLeaf
from hierclass.smoothing.certificates.path import NODE_KINDS, NodeKind, NodePath, NodeVotes
from hierclass.smoothing.certificates.subsets import SubsetHead

__all__ = ["Group", "NodeRole", "PathDraws", "SamplingPlan", "Step", "clean_output"]


class Group:
    """A model run once per noisy draw for every node it serves.

    Examples
    --------
    >>> g = Group(0, torch.nn.Linear(3, 4), None, 4, node=False)
    >>> g.subset_slot([2, 0]), g.subset_slot([0, 2]), g.subsets
    (0, 0, [(0, 2)])
    """

    def __init__(self, gid: int, model: Any, input_key: str | None, num_outputs: int, node: bool):
        self.gid = gid
        self.node = node  # a hierarchy node: call .scores
        self.model = model
        self.input_key = input_key
        self.num_outputs = num_outputs
        self.subsets: list[tuple[int, ...]] = []
        self.head: SubsetHead | None = None
        self.fast: ChannelsLastForward | None = None  # made when channels-last is used
        self.convolutional = has_4d_weights(model)  # only these run channels-last
        # a rule's scores are -inf off its choice by design; it validates its own output
        self.finite_scores = not (node and getattr(model, "deterministic", False))

    def call(self, xm: torch.Tensor, channels_last: bool) -> Any:
        """The model's scores on a batch of its modality."""
        if channels_last and self.convolutional:
            if self.fast is None:
                self.fast = ChannelsLastForward(self.model, "scores" if self.node else "forward")
            return self.fast(xm)
        return self.model.scores(xm) if self.node else self.model(xm)

    def subset_slot(self, labels: Sequence[int]) -> int:
        """The subset head slot of a label set (added on first use)."""
        key = tuple(sorted(int(v) for v in labels))
        if key not in self.subsets:
            self.subsets.append(key)
        return self.subsets.index(key)


class NodeRole:
    """How one node is certified: ``"constant"``, ``"clean"`` or ``"smoothed"`` via a group.

    ``renorm`` marks a renormalised leaf read from its flat model's votes (``slot``: its
    subset head slot for base renormalisation, ``None`` for the restricted margin).
    ``pools`` marks a :class:`~hierclass.nodes.FlatVoteRouter`: its votes are its flat
    model's, over its labels (``slot``, or all labels when ``None``), summed per class.

    Examples
    --------
    >>> NodeRole((), object(), "clean").kind
    'clean'
    """

    def __init__(
        self,
        path: NodePath,
        node: Any,
        kind: NodeKind,
        group=None,
        renorm=False,
        slot=None,
        pools: tuple[tuple[int, ...], ...] | None = None,
    ):
        if kind not in NODE_KINDS:  # a typo here would silently certify a node as clean
            raise ValueError(f"node kind must be one of {NODE_KINDS}, got {kind!r}")
        self.path = path
        self.node = node
        self.kind = kind
        self.group = group
        self.renorm = renorm
        self.slot = slot
        self.pools = pools

    @property
    def is_leaf(self) -> bool:
        """True for a leaf (no partition below it)."""
        return not hasattr(self.node, "partition")


class SamplingPlan:
    """Groups, heads and node roles of a hierarchy under a threat model.

    Parameters
    ----------
    hierarchy : Hierarchy
    perturbed_keys : tuple of str or None
        Modalities the adversary (and the noise) touches; ``None``: all (a plain tensor, or
        every floating-point modality of a dict).
    margin : bool
        Renormalised leaves use the restricted margin on the flat votes (else base
        renormalisation through a subset head).
    flat : callable, optional
        The flat baseline, certified on the same draws.
    flat_input_key : str, optional
        The modality ``flat`` reads.
    device : torch.device
        Where heads live.

    Examples
    --------
    >>> from hierclass import Hierarchy, LabelPartition, RenormalizedLeaf, Router
    >>> f = torch.nn.Linear(4, 4)
    >>> h = Hierarchy(Router(torch.nn.Linear(4, 2), LabelPartition([[0, 1], [2, 3]])),
    ...               [RenormalizedLeaf(f, [0, 1]), RenormalizedLeaf(f, [2, 3])])
    >>> plan = SamplingPlan(h, None, False, f, None, torch.device("cpu"))
    >>> len(plan.groups), [r.kind for r in plan.roles.values()]
    (2, ['smoothed', 'smoothed', 'smoothed'])
    """

    def __init__(
        self,
        hierarchy: Any,
        perturbed_keys: tuple[str, ...] | None,
        margin: bool,
        flat: Any,
        flat_input_key: str | None,
        device: torch.device,
    ) -> None:

        self.perturbed_keys = perturbed_keys
        self.margin = margin
        self.device = device
        groups: dict[tuple, Group] = {}
        roles: dict[NodePath, NodeRole] = {}
        num_labels = hierarchy.num_labels

        def group_for(key: tuple, model: Any, input_key: str | None, width: int) -> Group:
            if key not in groups:
                groups[key] = Group(len(groups), model, input_key, width, key[0] == "node")
            return groups[key]

        for path, node in hierarchy.nodes():
            if node.num_outputs == 1:
                roles[path] = NodeRole(path, node, "constant")
            elif not self.perturbed(node):
                roles[path] = NodeRole(path, node, "clean")
            elif isinstance(node, RenormalizedLeaf):
                key = ("flat", id(node.flat_model), node.input_key)
                g = group_for(key, node.flat_model, node.input_key, num_labels)
                slot = None if margin else g.subset_slot(node.labels)
                roles[path] = NodeRole(path, node, "smoothed", g, True, slot)
            elif isinstance(node, FlatVoteRouter):
                # The flat model's votes, summed per class: no forward pass of its own.
                key = ("flat", id(node.flat_model), node.input_key)
                g = group_for(key, node.flat_model, node.input_key, num_labels)
                every = tuple(node.labels) == tuple(range(num_labels))
                slot = None if every else g.subset_slot(node.labels)
                pools = tuple(tuple(int(v) for v in c) for c in node.partition.classes)
                roles[path] = NodeRole(path, node, "smoothed", g, slot=slot, pools=pools)
            else:
                g = group_for(("node", id(node)), node, node.input_key, node.num_outputs)
                roles[path] = NodeRole(path, node, "smoothed", g)
        self.flat_group: Group | None = None
        if flat is not None:
            shared = [k for k in groups if k[0] == "flat" and k[1] == id(flat)]
            if shared and (flat_input_key is None or shared[0][2] == flat_input_key):
                self.flat_group = groups[shared[0]]
            else:
                key = ("flat", id(flat), flat_input_key)
                self.flat_group = group_for(key, flat, flat_input_key, num_labels)
        for g in groups.values():
            if g.subsets:
                g.head = SubsetHead(g.subsets, g.num_outputs, device)
        self.groups = list(groups.values())
        self.roles = roles
        # head layout: per group, its argmax head then (optionally) its subset head
        self.head_slices: dict[int, tuple[int, int | None]] = {}
        sizes: list[int] = []
        for g in self.groups:
            a = len(sizes)
            sizes.append(g.num_outputs)
            b = None
            if g.head is not None:
                b = len(sizes)
                sizes.append(g.head.width)
            self.head_slices[g.gid] = (a, b)
        self.head_sizes = sizes

    def perturbed(self, node: Any) -> bool:
        """Whether the adversary can change what ``node`` reads (then it is smoothed).

        ``deterministic`` does not exempt a node: a rule on an attacked modality is smoothed.
        Only a node that reads nothing, or only modalities outside ``perturbed_keys``, is not.
        """
        if not getattr(node, "reads_input", True):
            return False
        if self.perturbed_keys is None:
            return True
        return node.input_key in self.perturbed_keys

    def keys_read(self) -> list | None:
        """The modalities the smoothed models read (``None``: a plain tensor)."""
        keys = {g.input_key for g in self.groups}
        return None if keys == {None} else sorted(k for k in keys if k is not None)

    # ------------------------------------------------------------------ counts -> votes
    def node_counts(self, role: NodeRole, counts: list) -> np.ndarray:
        """The votes a smoothed node is selected and certified with."""
        a, b = self.head_slices[role.group.gid]
        if role.pools is not None:
            votes = counts[a] if role.slot is None else role.group.head.decode(counts[b])[role.slot]
            votes = np.asarray(votes, dtype=np.int64)
            return np.array([votes[list(c)].sum() for c in role.pools], dtype=np.int64)
        if role.renorm and role.slot is not None:
            return role.group.head.decode(counts[b])[role.slot]
        return counts[a]

    def flat_counts(self, counts: list) -> np.ndarray:
        """The flat baseline's votes."""
        return counts[self.head_slices[self.flat_group.gid][0]]

    def votes(self, step: Step, sel: list, est: list) -> NodeVotes:
        """The :class:`~hierclass.smoothing.certificates.path.NodeVotes` of one step of a path."""
        role = step.role
        node = role.node
        if role.is_leaf:
            outputs = tuple((int(v),) for v in node.labels)
            names = None
        else:
            part = node.partition
            outputs = tuple(tuple(int(v) for v in c) for c in part.classes)
            names = tuple(str(n) for n in part.names)
        if role.kind != "smoothed":
            return NodeVotes(role.path, role.kind, outputs, choice=step.output, names=names,
                             router=not role.is_leaf)  # fmt: skip
        cs, ce = self.node_counts(role, sel), self.node_counts(role, est)
        bins = tuple(int(v) for v in node.labels) if role.renorm else None
        bound = "margin" if (role.renorm and self.margin) else "cohen"
        return NodeVotes(role.path, "smoothed", outputs, cs, ce, bins, bound, None, names,
                         router=not role.is_leaf)  # fmt: skip

    # ------------------------------------------------------------------ the path
    def walk(self, full: Any, sel: list) -> list[Step]:
        """The path the selection votes ``sel`` choose for one input, root first.

        This is the one place a node's kind decides its output: a constant node outputs 0, a
        clean node its argmax on the clean input ``full`` (run once here), a smoothed node the
        argmax of its selection votes (:meth:`node_counts`).
        """
        path: NodePath = ()
        steps = []
        while True:
            role = self.roles[path]
            steps.append(self._step(role, full, sel))
            if role.is_leaf:
                return steps
            path = path + (steps[-1].output,)

    def _step(self, role: NodeRole, full: Any, sel: list) -> Step:
        if role.kind == "constant":
            return Step(role, 0)
        if role.kind == "clean":
            return Step(role, clean_output(role.node, full))
        votes = self.node_counts(role, sel)
        if not role.renorm:  # votes per output; ties: the smallest, as certify_counts
            c = int(np.argmax(votes))
            return Step(role, c, c)
        labels = np.asarray(role.node.labels)  # votes per global label: the leaf's bins
        j = int(np.argmax(votes[labels]))
        return Step(role, j, int(labels[j]))


class PathDraws:
    """What a hierarchy's sampling task carries: the groups its draws run through.

    The hierarchy's evaluator runs a group's model only on the rows of tasks whose ``groups``
    hold its id; ``full`` is the clean input (read by clean nodes). Certifiers that keep more
    bookkeeping per input subclass it.

    Examples
    --------
    >>> PathDraws({0, 2}).groups
    {0, 2}
    """

    def __init__(self, groups: set[int], full: Any = None) -> None:
        self.groups = groups
        self.full = full


class Step(NamedTuple):
    """One node of an input's path: its role, its output and, when smoothed, its vote bin.

    ``bin`` is the index of the votes the node is certified on: its output, or the global
    label for a renormalised leaf (whose votes are over all labels); ``None`` when the node is
    clean or constant.

    Examples
    --------
    >>> Step(NodeRole((), object(), "constant"), 0).bin is None
    True
    """

    role: NodeRole
    output: int
    bin: int | None = None


def clean_output(node: Any, full: Any) -> int:
    """A node's output on the clean input (one sample, no batch dimension).

    Examples
    --------
    >>> from hierclass import Leaf
    >>> clean_output(Leaf(lambda b: b, [4, 7]), torch.tensor([0.0, 1.0]))
    1
    """
    one = (
        {k: v.unsqueeze(0) for k, v in full.items()}
        if isinstance(full, Mapping)
        else full.unsqueeze(0)
    )
    with torch.inference_mode():
        scores = node(one)
    return int(scores.argmax(1)[0])


def select_modality(batch: Any, key: str | None) -> Any:
    """``batch`` itself (``key=None``) or its modality ``key``.

    Examples
    --------
    >>> select_modality({"a": 1}, "a")
    1
    """
    if key is None:
        if isinstance(batch, Mapping):
            raise TypeError(
                "a node with input_key=None reads a plain tensor but the input is a dict"
            )
        return batch
    if not isinstance(batch, Mapping):
        raise ValueError(f"a node reads modality {key!r} but the input is a plain tensor")
    return batch[key]
