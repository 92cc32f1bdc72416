"""Nodes of a hierarchy: routers enforce an invariance, leaves predict inside a class.

Nodes are plain :class:`torch.nn.Module` wrappers around any model or callable returning
scores. Each node reads one input *modality*: with ``input_key=None`` the batch is a tensor,
with ``input_key="lidar"`` the batch is a dict and the node reads ``x["lidar"]``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from functools import partial
from typing import Any

import numpy as np
import torch
from torch import nn

from hierclass._utils.deferred import check_or_defer
from hierclass.batch import Batch, batch_size
from hierclass.inputs import check_logits
from hierclass.partition import LabelPartition


class Node(nn.Module):
    """Base class of routers and leaves: modality selection and output validation.

    Subclasses set ``num_outputs`` and ``labels`` and implement :meth:`scores`, which maps
    the node's modality ``[B, ...]`` to scores ``[B, num_outputs]``.

    Examples
    --------
    >>> class Constant(Node):
    ...     num_outputs, labels = 2, (0, 1)
    ...     def scores(self, xm):
    ...         return torch.zeros(xm.shape[0], 2)
    >>> Constant(input_key="a")({"a": torch.ones(3, 5)}).shape
    torch.Size([3, 2])
    """

    #: True for nodes that are a fixed rule rather than a learned model (rules, constants).
    #: Deterministic is not robust: a rule that reads a modality the threat model perturbs is
    #: smoothed (certification) and attacked like any other node; only a node reading nothing
    #: perturbable has an infinite radius.
    deterministic: bool = False
    #: False only for nodes that read no input at all (a one-label leaf): always unperturbable.
    reads_input: bool = True

    def __init__(self, input_key: str | None = None) -> None:
        super().__init__()
        if input_key is not None and not isinstance(input_key, str):
            raise TypeError(f"input_key must be a str or None, got {type(input_key).__name__}")
        self.input_key = input_key

    #: Whether :meth:`forward` refuses non-finite scores. Only nodes that build their scores
    #: themselves as log-probabilities with ``-inf`` for "impossible" (rule routers) opt out.
    _finite_scores: bool = True

    # -- what subclasses provide
    num_outputs: int
    labels: tuple[int, ...]

    def scores(self, xm: Any) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    # -- shared machinery
    def select(self, x: Batch) -> Any:
        """The modality this node reads from a tensor-or-dict batch."""
        if isinstance(x, Mapping):
            if self.input_key is None:
                raise TypeError(
                    f"{self._name()} reads a plain tensor (input_key=None) but the batch is a "
                    f"dict with keys {sorted(x)}; set input_key to one of them"
                )
            if self.input_key not in x:
                raise ValueError(
                    f"{self._name()} reads modality {self.input_key!r}, missing from the batch "
                    f"(keys: {sorted(x)})"
                )
            return x[self.input_key]
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"a batch is a tensor or a dict of tensors, got {type(x).__name__}")
        if self.input_key is not None:
            raise ValueError(
                f"{self._name()} reads modality {self.input_key!r} but the batch is a plain "
                f"tensor; pass a dict {{{self.input_key!r}: tensor, ...}}"
            )
        return x

    def forward(self, x: Batch) -> torch.Tensor:
        """Scores ``[B, num_outputs]`` for a batch (tensor or dict of modalities)."""
        xm = self.select(x)
        out = self.scores(xm)
        return self._check_scores(out, batch_size(x))

    def _check_scores(self, out: Any, n: int) -> torch.Tensor:
        if not isinstance(out, torch.Tensor):
            raise TypeError(
                f"{self._name()}'s model must return a tensor, got {type(out).__name__}"
            )
        if out.dim() != 2 or out.shape[0] != n or out.shape[1] != self.num_outputs:
            raise ValueError(
                f"{self._name()} expected scores of shape [{n}, {self.num_outputs}] from its "
                f"model, got {list(out.shape)}"
            )
        if self._finite_scores:  # inside an attack's steps, read once at its end
            what = f"{self._name()}'s model"
            check_or_defer(partial(check_logits, what=what), out, _non_finite, (id(self), what))
        return out

    def _name(self) -> str:
        return type(self).__name__

    def describe(self) -> str:
        """One line for the hierarchy's tree drawing."""
        key = f"[{self.input_key}]" if self.input_key else ""
        return f"{self._name()}{key}"


def _non_finite(t: torch.Tensor) -> torch.Tensor:
    """0-d bool, on the device: whether ``t`` holds ``nan`` or ``inf`` (``check_logits`` raises)."""
    return ~torch.isfinite(t).all()


def _outside_classes(ids: torch.Tensor, k: int) -> torch.Tensor:
    return ((ids < 0) | (ids >= k)).any()


def _check_class_ids(ids: torch.Tensor, k: int) -> None:
    if bool(_outside_classes(ids, k)):
        bad = ids[(ids < 0) | (ids >= k)].unique().tolist()
        raise ValueError(f"RuleRouter's rule returned class ids {bad} outside 0..{k - 1}")


def _check_model(model: Any, what: str) -> None:
    if not callable(model):
        raise TypeError(f"{what} must be an nn.Module or a callable, got {type(model).__name__}")


def _check_float_input(node: Node, xm: Any) -> None:
    if not isinstance(xm, torch.Tensor):
        raise TypeError(f"{node._name()} expected a tensor input, got {type(xm).__name__}")
    if not xm.is_floating_point():
        raise TypeError(
            f"{node._name()} expected a floating-point input tensor, got dtype {xm.dtype}"
        )


class Router(Node):
    """A root or intermediate node: one score per child class of ``partition``.

    Parameters
    ----------
    model : nn.Module or callable
        Maps the node's modality ``[B, ...]`` to scores ``[B, partition.num_classes]``.
    partition : LabelPartition
        The equivalence classes of this node's children.
    input_key : str, optional
        Which modality of a dict batch the router reads (``None``: the batch is a tensor).

    Examples
    --------
    >>> p = LabelPartition([[0, 1], [2]])
    >>> r = Router(nn.Linear(4, 2), p)
    >>> r(torch.zeros(5, 4)).shape
    torch.Size([5, 2])
    """

    def __init__(self, model: Any, partition: LabelPartition, input_key: str | None = None):
        super().__init__(input_key)
        _check_model(model, "Router model")
        if not isinstance(partition, LabelPartition):
            raise TypeError(f"partition must be a LabelPartition, got {type(partition).__name__}")
        self.model = model
        self.partition = partition

    @property
    def num_outputs(self) -> int:  # type: ignore[override]
        return self.partition.num_classes

    @property
    def labels(self) -> tuple[int, ...]:  # type: ignore[override]
        return self.partition.labels

    def scores(self, xm: Any) -> torch.Tensor:
        _check_float_input(self, xm)
        return self.model(xm)

    def describe(self) -> str:
        return f"{super().describe()} {self.partition.num_classes} classes"


class Root(Router):
    """The router at the top of a tree: the role :class:`Router` plays there, named.

    Same arguments and behaviour as :class:`Router`; a :class:`~hierclass.Hierarchy` refuses a
    ``Root`` anywhere but at the top (a plain ``Router`` is accepted in either role).

    Examples
    --------
    >>> p = LabelPartition([[0, 1], [2]])
    >>> Root(nn.Linear(4, 2), p)(torch.zeros(5, 4)).shape
    torch.Size([5, 2])
    """


class Intermediate(Router):
    """A router below the root (the root of a sub-tree): the role :class:`Router` plays there.

    Same arguments and behaviour as :class:`Router`; a tree whose root is an ``Intermediate``
    is meant to be nested as a child of another :class:`~hierclass.Hierarchy`.

    Examples
    --------
    >>> p = LabelPartition({"a": [0], "b": [1]})
    >>> Intermediate(nn.Linear(4, 2), p)(torch.zeros(3, 4)).shape
    torch.Size([3, 2])
    """


class _FlatScores:
    """Nodes whose scores are a function of a flat classifier's logits (``self.model``).

    Certification reads such a node off the flat model's votes, sharing its forward pass;
    ``from_flat_logits`` is that function.
    """

    model: Any

    @property
    def flat_model(self) -> Any:
        return self.model

    def scores(self, xm: Any) -> torch.Tensor:
        _check_float_input(self, xm)  # type: ignore[arg-type]
        return self.from_flat_logits(self.model(xm))

    def from_flat_logits(self, flat_logits: torch.Tensor) -> torch.Tensor:  # pragma: no cover
        raise NotImplementedError


class FlatVoteRouter(_FlatScores, Router):
    """A router read off a flat classifier: the class holding the flat prediction.

    Its score for a class is the largest flat logit among the class's labels, so its argmax
    is the class of ``argmax_{l in labels} flat_logits_l`` (the flat model's vote, mapped to
    its class). Smoothed, its votes are the flat model's votes summed per class: certified
    beside :class:`RenormalizedLeaf` nodes on the same flat model, it shares their forward
    pass, and a whole hierarchy costs about one flat certification.

    Parameters
    ----------
    flat_model : nn.Module or callable
        The flat classifier, returning logits over all labels ``[B, num_labels]``.
    partition : LabelPartition
        The classes of this node's children (a :class:`~hierclass.partition.NestedPartition`
        below the root: the vote is then the flat argmax over the node's labels only).
    input_key : str, optional
        Which modality the flat model reads.

    Examples
    --------
    >>> p = LabelPartition([[0, 2], [1, 3]])
    >>> router = FlatVoteRouter(nn.Identity(), p)
    >>> router(torch.tensor([[0.1, 0.9, 0.3, 0.2], [5.0, 0.0, 1.0, 2.0]])).argmax(1).tolist()
    [1, 0]
    """

    def __init__(
        self, flat_model: Any, partition: LabelPartition, input_key: str | None = None
    ) -> None:
        super().__init__(flat_model, partition, input_key)
        class_of = torch.full((partition.num_labels,), -1, dtype=torch.long)
        for c, labels in enumerate(partition.classes):
            class_of[list(labels)] = c
        self.register_buffer("_class_of", class_of, persistent=False)

    def from_flat_logits(self, flat_logits: torch.Tensor) -> torch.Tensor:
        """Per-class maxima ``[B, K]`` of already computed flat logits ``[B, M]``."""
        labels = self.partition.labels
        if flat_logits.dim() != 2 or flat_logits.shape[1] <= max(labels):
            raise ValueError(
                f"FlatVoteRouter over labels 0..{max(labels)} needs flat logits [B, M] with "
                f"M > {max(labels)}, got {list(flat_logits.shape)}"
            )
        index = torch.tensor(labels, dtype=torch.long, device=flat_logits.device)
        picked = flat_logits.index_select(1, index)
        classes = self._class_of.to(flat_logits.device).index_select(0, index)
        out = picked.new_full((picked.shape[0], self.partition.num_classes), float("-inf"))
        target = classes.unsqueeze(0).expand_as(picked)
        return out.scatter_reduce(1, target, picked, reduce="amax", include_self=True)

    def describe(self) -> str:
        return f"{super().describe()} (votes of the flat model)"


class RuleRouter(Router):
    """Routes by a known, non-learned invariant read from metadata (e.g. location, §VI-A4).

    ``rule(x_meta) -> LongTensor [B]`` of class ids. The scores are log-probabilities of a
    one-hot choice (0 for the chosen class, ``-inf`` elsewhere). Its radius is infinite only
    when the modality it reads is outside the threat model (metadata the adversary cannot
    touch); a rule on an attacked modality is smoothed like any other node.

    Examples
    --------
    >>> p = LabelPartition({"highway": [0, 1], "town": [2, 3]})
    >>> r = RuleRouter(lambda loc: (loc[:, 0] > 0).long(), p, input_key="location")
    >>> r({"location": torch.tensor([[-1.0], [2.0]])}).argmax(1)
    tensor([0, 1])
    """

    deterministic = True
    _finite_scores = False  # one-hot log-probabilities: -inf off the chosen class, by design

    def __init__(
        self,
        rule: Callable[[Any], torch.Tensor],
        partition: LabelPartition,
        input_key: str | None = None,
    ):
        super().__init__(rule, partition, input_key)

    @property
    def rule(self) -> Callable[[Any], torch.Tensor]:
        return self.model

    def scores(self, xm: Any) -> torch.Tensor:
        ids = self.model(xm)
        if not isinstance(ids, torch.Tensor) or ids.dtype not in (
            torch.int64,
            torch.int32,
            torch.int16,
            torch.int8,
            torch.uint8,
        ):
            raise TypeError(
                f"RuleRouter's rule must return an integer tensor of class ids, got "
                f"{ids.dtype if isinstance(ids, torch.Tensor) else type(ids).__name__}"
            )
        ids = ids.long().reshape(-1)
        k = self.partition.num_classes
        check = partial(_check_class_ids, k=k)
        check_or_defer(check, ids, partial(_outside_classes, k=k), (id(self), "class ids"))
        out = torch.full((ids.shape[0], k), float("-inf"), device=ids.device)
        # an id outside 0..k-1 is refused (now, or where deferred checks end): until then the
        # index stays in bounds (an out-of-bounds index would kill a CUDA context)
        out[torch.arange(ids.shape[0], device=ids.device), ids.clamp(0, k - 1)] = 0.0
        return out

    def describe(self) -> str:
        name = getattr(self.model, "__name__", type(self.model).__name__)
        return f"{super().describe()} (rule {name})"


class Leaf(Node):
    """Predicts inside one equivalence class (the *retraining* approach, §VI-A3).

    Parameters
    ----------
    model : nn.Module or callable
        Maps the node's modality to scores ``[B, len(labels)]``, in the order of ``labels``.
    labels : sequence of int
        Global label ids of the class; ``labels[i]`` is the model's output ``i``.
    input_key : str, optional
        Which modality the leaf reads.

    Notes
    -----
    Subclass it for custom leaves: override :meth:`scores` (``xm -> [B, len(labels)]``).
    A subclass is saved under its class name with its whole ``state_dict`` (its own buffers
    and parameters too); pass the class (or a ``callable(model, labels, input_key)`` that
    builds it) to :meth:`Hierarchy.load <hierclass.hierarchy.Hierarchy.load>` as
    ``node_classes``.

    Examples
    --------
    >>> leaf = Leaf(nn.Linear(4, 3), labels=[2, 5, 7])
    >>> leaf(torch.zeros(2, 4)).shape, leaf.labels
    (torch.Size([2, 3]), (2, 5, 7))
    """

    def __init__(self, model: Any, labels: Sequence[int], input_key: str | None = None):
        super().__init__(input_key)
        if model is not None:
            _check_model(model, f"{type(self).__name__} model")
        self.model = model
        self.labels = _check_labels(labels)

    @property
    def num_outputs(self) -> int:  # type: ignore[override]
        return len(self.labels)

    def scores(self, xm: Any) -> torch.Tensor:
        """The leaf's scores over its own labels: the extension point of custom leaves.

        Override it in a subclass to give a leaf behaviour of its own (a nearest-centroid
        rule, a temperature, a calibration head); everything else (picking the modality from
        a dict batch, checking the output, routing, attacks, smoothing) stays with the base
        class. The base implementation calls ``self.model(xm)``.

        Parameters
        ----------
        xm : Tensor
            The leaf's modality ``[B, ...]``, already picked from a dict batch by
            ``input_key`` (the hierarchy has checked it is finite and in range).

        Returns
        -------
        Tensor
            Scores ``[B, len(labels)]``; column ``k`` scores label ``labels[k]``. They must
            be finite: :meth:`forward` refuses ``nan``/``inf`` with a ``ValueError``, and a
            wrong shape with a ``ValueError`` naming the shape expected.

        Notes
        -----
        Smoothing calls ``scores`` on batches of noisy copies, so it must be per sample (no
        batch statistics). Buffers and parameters a subclass registers are saved with the
        hierarchy and restored by :meth:`Hierarchy.load <hierclass.hierarchy.Hierarchy.load>`
        (pass the subclass in ``node_classes``).

        Examples
        --------
        >>> class Sharp(Leaf):
        ...     def scores(self, xm):
        ...         return 3.0 * self.model(xm)
        >>> leaf = Sharp(nn.Linear(4, 2), labels=[0, 1])
        >>> torch.equal(leaf(torch.ones(1, 4)), 3.0 * leaf.model(torch.ones(1, 4)))
        True
        """
        _check_float_input(self, xm)
        return self.model(xm)

    def describe(self) -> str:
        return f"{super().describe()} labels {list(self.labels)}"


class RenormalizedLeaf(_FlatScores, Leaf):
    """A leaf from a flat classifier: its softmax renormalised over ``labels`` (no training).

    The output is ``log_softmax(flat_logits[:, labels])``, the log of the flat softmax
    renormalised over the class. Its argmax is the flat argmax restricted to ``labels``, so a
    smoothed renormalised leaf is an ordinary smoothed classifier (Cohen's bound holds).

    Parameters
    ----------
    flat_model : nn.Module or callable
        The flat classifier, returning logits over all labels ``[B, num_labels]``.
    labels : sequence of int
        Global label ids kept by this leaf.
    input_key : str, optional
        Which modality the flat model reads.

    Examples
    --------
    >>> flat = nn.Linear(4, 10)
    >>> leaf = RenormalizedLeaf(flat, [1, 4, 7, 9])
    >>> p = leaf(torch.randn(3, 4)).exp()
    >>> torch.allclose(p.sum(1), torch.ones(3))
    True
    """

    def __init__(self, flat_model: Any, labels: Sequence[int], input_key: str | None = None):
        super().__init__(flat_model, labels, input_key)
        self.register_buffer(
            "_index", torch.tensor(self.labels, dtype=torch.long), persistent=False
        )

    def from_flat_logits(self, flat_logits: torch.Tensor) -> torch.Tensor:
        """The leaf's log-probabilities from already computed flat logits ``[B, M]``."""
        if flat_logits.dim() != 2 or flat_logits.shape[1] <= max(self.labels):
            raise ValueError(
                f"RenormalizedLeaf over labels {list(self.labels)} needs flat logits "
                f"[B, M] with M > {max(self.labels)}, got {list(flat_logits.shape)}"
            )
        index = self._index.to(flat_logits.device)
        return torch.log_softmax(flat_logits.index_select(1, index), dim=1)


class SingletonLeaf(Leaf):
    """The leaf of a one-label class: always predicts that label, reads nothing.

    Its certified radius is infinite: no perturbation changes a constant.

    Examples
    --------
    >>> SingletonLeaf(4)(torch.zeros(2, 3))
    tensor([[0.],
            [0.]])
    """

    deterministic = True
    reads_input = False

    def __init__(self, label: int, input_key: str | None = None):
        super().__init__(None, [label], input_key)

    def select(self, x: Batch) -> Any:
        return x  # reads no modality; only the batch size matters

    def scores(self, xm: Any) -> torch.Tensor:
        n = batch_size(xm)
        device = xm.device if isinstance(xm, torch.Tensor) else next(iter(xm.values())).device
        return torch.zeros(n, 1, device=device)


def _check_labels(labels: Any) -> tuple[int, ...]:
    if isinstance(labels, (torch.Tensor, np.ndarray)):
        labels = labels.tolist()
    if isinstance(labels, (str, bytes)) or not isinstance(labels, Sequence):
        raise TypeError(f"labels must be a sequence of int, got {type(labels).__name__}")
    out = []
    for label in labels:
        if isinstance(label, bool) or not isinstance(label, (int, np.integer)):
            raise TypeError(f"labels must be ints, got {label!r}")
        if label < 0:
            raise ValueError(f"labels must be >= 0, got {label}")
        out.append(int(label))
    if not out:
        raise ValueError("a leaf needs at least one label, got none")
    if len(set(out)) != len(out):
        dup = sorted({lab for lab in out if out.count(lab) > 1})
        raise ValueError(f"a leaf's labels must be distinct; repeated: {dup}")
    return tuple(out)
