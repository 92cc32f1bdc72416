"""The hierarchy: a tree of routers over leaves, routing each sample on its own (§IV-A, Fig. 3)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Union

import torch
from torch import nn

from hierclass._utils.deferred import check_batch_or_defer
from hierclass.batch import Batch, batch_device, batch_size, check_batch, index_batch
from hierclass.data.partitions import get_partition
from hierclass.inputs import InputRange, check_input_range
from hierclass.nodes import (
    FlatVoteRouter,
    Leaf,
    Node,
    RenormalizedLeaf,
    Root,
    Router,
    SingletonLeaf,
)
from hierclass.partition import LabelPartition
from hierclass.persistence import load_tree, save_hierarchy

NodePath = tuple[int, ...]
Child = Union[Leaf, "Hierarchy", None]


class Hierarchy:
    """A tree of classifiers: a router at each internal node, a leaf per equivalence class.

    Parameters
    ----------
    root : Router
        The node that sends each sample to one of ``root.partition``'s classes.
    children : sequence or mapping
        ``children[i]`` handles class ``i`` of ``root.partition`` (a mapping may key children
        by class name or id). Each child is a :class:`~hierclass.nodes.Leaf` over exactly that
        class's labels, a nested :class:`Hierarchy` whose labels are that class's labels, or
        ``None`` for a class of one label (a leaf by itself).
    input_range : (low, high), dict or None, optional
        The range of the inputs, declared once for the whole tree: one ``(low, high)`` pair
        for every floating-point modality, or ``{modality: (low, high) or None}`` (a plain
        tensor batch uses the key ``None``). Undeclared image-shaped inputs ``[B, 1|3, H, W]``
        must lie in ``[0, 1]``; other undeclared inputs have no range. :meth:`predict`,
        :meth:`route`, :meth:`node_outputs` (and the smoothing built on the hierarchy) refuse
        non-finite values and values outside the range in force; nothing is clamped.
        :meth:`forward`, the hierarchy as a model that smoothing evaluates on noisy copies,
        refuses non-finite values only. Saved and loaded with the hierarchy. A nested
        hierarchy's own ``input_range`` is not consulted: the tree you call declares it.

    Notes
    -----
    Routing is per sample: each node runs only on the samples routed to it, so a sample's
    output never depends on the rest of the batch (for models in ``eval`` mode; batch
    normalisation in training mode mixes samples by design). The hierarchy is a plain object;
    its nodes are ``nn.Module``\\ s.

    Examples
    --------
    >>> from hierclass import LabelPartition, Router, RenormalizedLeaf
    >>> p = LabelPartition({"low": [0, 1, 2], "high": [3, 4]})
    >>> flat = nn.Linear(6, 5)
    >>> h = Hierarchy(Router(nn.Linear(6, 2), p),
    ...               [RenormalizedLeaf(flat, [0, 1, 2]), RenormalizedLeaf(flat, [3, 4])])
    >>> x = torch.randn(4, 6)
    >>> h(x).shape, h.predict(x).shape, h.route(x).shape
    (torch.Size([4, 5]), torch.Size([4]), torch.Size([4, 1]))

    A declared range is enforced (and nothing is clamped):

    >>> bounded = Hierarchy(h.root, h.children, input_range=(-3, 3))
    >>> bounded.predict(torch.full((2, 6), 5.0))
    Traceback (most recent call last):
    ...
    ValueError: input must lie in [-3, 3] (the declared input_range), got values in [5, 5] ...
    """

    def __init__(
        self,
        root: Router,
        children: Sequence[Child] | Mapping[Any, Child],
        input_range: InputRange = None,
    ):
        input_range = check_input_range(input_range)
        if not isinstance(root, Router):
            raise TypeError(f"root must be a Router (or RuleRouter), got {type(root).__name__}")
        partition = root.partition
        if isinstance(children, Mapping):
            ordered: list[Child] = [None] * partition.num_classes
            for key, child in children.items():
                ordered[partition.class_index(key)] = child
            missing = [
                partition.names[i]
                for i, c in enumerate(ordered)
                if c is None and len(partition.classes[i]) > 1
            ]
            if missing:
                raise ValueError(f"no child given for classes {missing}")
            children = ordered
        if isinstance(children, (str, bytes)) or not isinstance(children, Sequence):
            raise TypeError(
                f"children must be a sequence or mapping, got {type(children).__name__}"
            )
        if len(children) != partition.num_classes:
            raise ValueError(
                f"the root's partition has {partition.num_classes} classes "
                f"{list(partition.names)} but {len(children)} children were given"
            )
        resolved: list[Leaf | Hierarchy] = []
        for i, child in enumerate(children):
            labels = partition.classes[i]
            name = partition.names[i]
            if child is None:
                if len(labels) != 1:
                    raise ValueError(
                        f"class {name!r} has labels {list(labels)}; only a one-label class "
                        "may have no child"
                    )
                child = SingletonLeaf(labels[0])
            if isinstance(child, Hierarchy):
                if isinstance(child.root, Root):
                    raise TypeError(
                        f"child {name!r} is a Hierarchy whose root is a Root; a Root stands "
                        "only at the top of a tree: make the sub-tree's router an Intermediate "
                        "(or a plain Router)"
                    )
                child_labels = child.labels
            elif isinstance(child, Leaf):
                child_labels = child.labels
            elif isinstance(child, Router):
                raise TypeError(
                    f"child {name!r} is a bare Router; wrap it with its children in a Hierarchy"
                )
            else:
                raise TypeError(
                    f"child {name!r} must be a Leaf, a Hierarchy or None, got "
                    f"{type(child).__name__}"
                )
            if sorted(child_labels) != list(labels):
                raise ValueError(
                    f"child {name!r} covers labels {sorted(child_labels)} but the partition's "
                    f"class {name!r} is {list(labels)}"
                )
            resolved.append(child)
        self.root = root
        self.children: tuple[Leaf | Hierarchy, ...] = tuple(resolved)
        self.input_range: InputRange = input_range
        self._label_index: dict[tuple[int, torch.device], tuple[Leaf, torch.Tensor]] = {}

    @classmethod
    def from_flat_model(
        cls,
        flat_model: Any,
        partition: LabelPartition | str,
        *,
        router: Any = "vote",
        input_key: str | None = None,
        input_range: InputRange = None,
    ) -> Hierarchy:
        """A two-level hierarchy from one flat classifier and a partition of its labels.

        Each class of more than one label gets a :class:`~hierclass.nodes.RenormalizedLeaf`
        (the flat softmax renormalised over the class, no training); a one-label class needs
        no leaf. The router is the flat model's own vote mapped to its class
        (:class:`~hierclass.nodes.FlatVoteRouter`), or a model you trained for the partition.
        Certified, the vote router and the leaves share the flat model's forward pass, so a
        hierarchical certificate with per-level radii costs about one flat certificate.

        Parameters
        ----------
        flat_model : nn.Module or callable
            Logits over ``partition.num_labels`` labels, ``[B, ...] -> [B, num_labels]``.
        partition : LabelPartition or str
            The invariance's classes, or the name of a shipped partition
            (:data:`hierclass.data.partitions.PARTITIONS`).
        router : "vote", nn.Module or callable, default "vote"
            ``"vote"`` for the flat model's vote; otherwise a router model returning
            ``[B, partition.num_classes]`` scores.
        input_key : str, optional
            The modality the models read (``None``: a plain tensor batch).
        input_range : (low, high), dict or None, optional
            As for :class:`Hierarchy`.

        Returns
        -------
        Hierarchy

        Examples
        --------
        >>> from hierclass import LabelPartition
        >>> flat = nn.Linear(6, 5)
        >>> h = Hierarchy.from_flat_model(flat, LabelPartition([[0, 1, 2], [3, 4]]))
        >>> type(h.root).__name__, [type(c).__name__ for c in h.children]
        ('FlatVoteRouter', ['RenormalizedLeaf', 'RenormalizedLeaf'])
        >>> x = torch.randn(8, 6)
        >>> bool((h.predict(x) == flat(x).argmax(1)).all())  # the vote router keeps the flat argmax
        True
        """

        if isinstance(partition, str):
            partition = get_partition(partition)
        if not isinstance(partition, LabelPartition):
            raise TypeError(
                f"partition must be a LabelPartition or a shipped name, got "
                f"{type(partition).__name__}"
            )
        if isinstance(router, str):
            if router != "vote":
                raise ValueError(f"router must be 'vote' or a model, got {router!r}")
            root: Router = FlatVoteRouter(flat_model, partition, input_key)
        else:
            root = Router(router, partition, input_key)
        children = [
            RenormalizedLeaf(flat_model, labels, input_key) if len(labels) > 1 else None
            for labels in partition.classes
        ]
        return cls(root, children, input_range=input_range)

    # ------------------------------------------------------------------ structure
    @property
    def partition(self):
        """The root's partition."""
        return self.root.partition

    @property
    def labels(self) -> tuple[int, ...]:
        """All labels the tree predicts (sorted)."""
        return self.root.partition.labels

    @property
    def num_labels(self) -> int:
        """Width of the full-label outputs: ``max(label) + 1``."""
        return self.root.partition.num_labels

    @property
    def depth(self) -> int:
        """Number of routers on the longest root-to-leaf path."""
        return 1 + max((c.depth for c in self.children if isinstance(c, Hierarchy)), default=0)

    def nodes(self) -> list[tuple[NodePath, Node]]:
        """Every node with its path (class ids from the root), depth first; the root is ``()``.

        Examples
        --------
        >>> from hierclass import LabelPartition, Router, Leaf
        >>> h = Hierarchy(Router(nn.Linear(2, 2), LabelPartition([[0, 1], [2]])),
        ...               [Leaf(nn.Linear(2, 2), [0, 1]), None])
        >>> [(path, type(n).__name__) for path, n in h.nodes()]
        [((), 'Router'), ((0,), 'Leaf'), ((1,), 'SingletonLeaf')]
        """
        out: list[tuple[NodePath, Node]] = [((), self.root)]
        for i, child in enumerate(self.children):
            if isinstance(child, Hierarchy):
                out.extend(((i,) + path, node) for path, node in child.nodes())
            else:
                out.append(((i,), child))
        return out

    def leaves(self) -> list[tuple[NodePath, Leaf]]:
        """The leaves with their paths."""
        return [(p, n) for p, n in self.nodes() if isinstance(n, Leaf)]

    def node_at(self, path: Sequence[int]) -> Node:
        """The node at ``path`` (a router or a leaf)."""
        path = tuple(path)
        if not path:
            return self.root
        head, rest = path[0], path[1:]
        if not 0 <= head < len(self.children):
            raise ValueError(f"path {path}: class id {head} outside 0..{len(self.children) - 1}")
        child = self.children[head]
        if isinstance(child, Hierarchy):
            return child.node_at(rest)
        if rest:
            raise ValueError(f"path {path} goes below a leaf")
        return child

    def path_of_label(self, label: int) -> NodePath:
        """Class ids along the route that leads to ``label``'s leaf."""
        cls = self.partition.class_of(int(label))
        child = self.children[cls]
        if isinstance(child, Hierarchy):
            return (cls,) + child.path_of_label(label)
        return (cls,)

    def modules(self) -> Iterator[nn.Module]:
        """Distinct ``nn.Module`` nodes (shared models are visited once by ``parameters``)."""
        for _, node in self.nodes():
            yield node

    def parameters(self) -> Iterator[nn.Parameter]:
        """Distinct parameters of all nodes (a flat model shared by leaves counts once)."""
        seen: set[int] = set()
        for node in self.modules():
            for p in node.parameters():
                if id(p) not in seen:
                    seen.add(id(p))
                    yield p

    def to(self, *args: Any, **kwargs: Any) -> Hierarchy:
        """Move every node (like ``nn.Module.to``); returns ``self``."""
        for node in self.modules():
            node.to(*args, **kwargs)
        return self

    def train(self, mode: bool = True) -> Hierarchy:
        """Set every node's training mode; returns ``self``."""
        for node in self.modules():
            node.train(mode)
        return self

    def eval(self) -> Hierarchy:
        """Evaluation mode for every node; returns ``self``."""
        return self.train(False)

    @property
    def training(self) -> bool:
        return any(node.training for node in self.modules())

    # ------------------------------------------------------------------ inference
    def __call__(self, x: Batch) -> torch.Tensor:
        return self.forward(x)

    def forward(self, x: Batch) -> torch.Tensor:
        """Probabilities over all labels ``[B, num_labels]``, zero outside the chosen class.

        Each sample's row is its leaf's softmax placed at the leaf's labels (Fig. 3).

        This is the hierarchy as a model (what ``Smooth(hierarchy, ...)`` evaluates on noisy
        copies of an input, which leave the input range by design): it refuses non-finite
        values (``ValueError``) but not values outside ``input_range``. :meth:`predict`,
        :meth:`route` and the smoothing and attack entry points check the range.
        """
        probs, _, _ = self._run(x, check_range=False)
        return probs

    def predict(self, x: Batch) -> torch.Tensor:
        """Predicted global label of each sample, ``LongTensor [B]``.

        Raises ``ValueError`` for non-finite inputs and for inputs outside the range in force
        (``input_range``; image-shaped inputs default to ``[0, 1]``), naming the range, the
        values found and the samples holding them.
        """
        _, labels, _ = self._run(x)
        return labels

    def route(self, x: Batch) -> torch.Tensor:
        """Class id chosen at each level, ``LongTensor [B, depth]``; ``-1`` below a leaf.

        Checks its input like :meth:`predict`.
        """
        _, _, route = self._run(x)
        return route

    def predict_with_route(self, x: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        """Labels ``[B]`` and routes ``[B, depth]`` from one pass (checked like :meth:`predict`)."""
        _, labels, route = self._run(x)
        return labels, route

    def _run(
        self, x: Batch, check_range: bool = True
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        n = check_batch(x, input_range=self.input_range, check_range=check_range)
        device = batch_device(x)
        probs = torch.zeros(n, self.num_labels, device=device)
        labels = torch.full((n,), -1, dtype=torch.long, device=device)
        route = torch.full((n, self.depth), -1, dtype=torch.long, device=device)
        rows = torch.arange(n, device=device)
        self._descend(x, rows, probs, labels, route, level=0)
        return probs, labels, route

    def _descend(self, x, rows, probs, labels, route, level) -> None:
        choice = self.root(x).argmax(dim=1)
        route[rows, level] = choice
        for k, child in enumerate(self.children):
            picked = (choice == k).nonzero().flatten()
            if picked.numel() == 0:
                continue
            x_k = index_batch(x, picked)
            rows_k = rows[picked.to(rows.device)]
            if isinstance(child, Hierarchy):
                child._descend(x_k, rows_k, probs, labels, route, level + 1)
                continue
            p = torch.softmax(child(x_k), dim=1)
            index = self._labels_of(k, probs.device)
            probs[rows_k.unsqueeze(1), index.unsqueeze(0)] = p.to(probs.dtype)
            labels[rows_k] = index[p.argmax(dim=1)]  # as _soft takes it

    def soft_forward(self, x: Batch) -> torch.Tensor:
        """Differentiable surrogate ``P(label) = P(route) * P(label | leaf)``, ``[B, num_labels]``.

        Every node runs on every sample; the probability of a label is the product of the
        router probabilities along its path times its leaf's probability. Joint attacks use
        it to trade off misrouting against misclassifying inside the class. Like
        :meth:`forward`, it refuses non-finite values but leaves the range to its callers.
        """
        probs, _ = self.soft_forward_and_predict(x, check_range=False)
        return probs

    def soft_forward_and_predict(
        self, x: Batch, *, check_range: bool = True
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """:meth:`soft_forward` and :meth:`predict` from one pass of every node on every sample.

        The labels are :meth:`predict`'s for nodes that treat samples independently (eval
        mode), found without routed sub-batches, so without a host sync: what an attack step
        needs. Input checked as by :meth:`predict` (``check_range=False``: :meth:`soft_forward`);
        inside an attack the checks are read once, at its end (``_utils.deferred``).

        Examples
        --------
        >>> from hierclass import LabelPartition, Router, Leaf
        >>> h = Hierarchy(Router(nn.Linear(3, 2), LabelPartition([[0, 1], [2]])),
        ...               [Leaf(nn.Linear(3, 2), [0, 1]), None])
        >>> x = torch.rand(5, 3)
        >>> probs, labels = h.soft_forward_and_predict(x)
        >>> probs.shape, torch.equal(labels, h.predict(x))
        (torch.Size([5, 3]), True)
        """
        n = check_batch_or_defer(x, self.input_range, check_range, site=id(self))
        return self._soft(x, n)

    def _soft(self, x: Batch, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        scores = self.root(x)
        route_p = torch.softmax(scores, dim=1)
        choice = scores.argmax(dim=1)  # the hard route, as _descend takes it
        out = torch.zeros(n, self.num_labels, device=route_p.device, dtype=route_p.dtype)
        labels = torch.full((n,), -1, dtype=torch.long, device=route_p.device)
        for k, child in enumerate(self.children):
            if isinstance(child, Hierarchy):
                inner, child_labels = child._soft(x, n)
                width = min(inner.shape[1], out.shape[1])
                out[:, :width] = out[:, :width] + route_p[:, k : k + 1] * inner[:, :width]
            else:
                leaf_p = torch.softmax(child(x), dim=1)
                index = self._labels_of(k, out.device)
                out = out.index_add(1, index, route_p[:, k : k + 1] * leaf_p)
                child_labels = index[leaf_p.argmax(dim=1)]
            labels = torch.where(choice == k, child_labels, labels)
        return out, labels

    def _labels_of(self, k: int, device: torch.device) -> torch.Tensor:
        """Leaf ``k``'s labels as an index on ``device``, made once (a normal tensor, not an
        inference one: autograd may save it)."""
        leaf, hit = self.children[k], self._label_index.get((k, device))
        if hit is None or hit[0] is not leaf:
            with torch.inference_mode(False):
                hit = (leaf, torch.tensor(leaf.labels, device=device))
            self._label_index[(k, device)] = hit
        return hit[1]

    def node_outputs(self, x: Batch) -> dict[NodePath, torch.Tensor]:
        """Each node's probabilities on every sample: ``{path: [B, node.num_outputs]}``."""
        check_batch(x, input_range=self.input_range)
        return {path: torch.softmax(node(x), dim=1) for path, node in self.nodes()}

    # ------------------------------------------------------------------ training sets
    def node_dataset(
        self, x: Batch, y: torch.Tensor, path: Sequence[int] = ()
    ) -> tuple[Batch, torch.Tensor]:
        """Training set of the node at ``path``: the samples whose label lies below it.

        Returns ``(x_subset, targets)``: coarse class ids for a router, local label indices
        (positions in ``leaf.labels``) for a leaf.

        Examples
        --------
        >>> from hierclass import LabelPartition, Router, Leaf
        >>> h = Hierarchy(Router(nn.Linear(2, 2), LabelPartition([[0, 2], [1]])),
        ...               [Leaf(nn.Linear(2, 2), [2, 0]), None])
        >>> y = torch.tensor([0, 1, 2, 2])
        >>> h.node_dataset(torch.zeros(4, 2), y)[1]
        tensor([0, 1, 0, 0])
        >>> h.node_dataset(torch.zeros(4, 2), y, path=(0,))[1]
        tensor([1, 0, 0])
        """
        if not isinstance(y, torch.Tensor) or y.dtype != torch.long:
            raise TypeError(f"y must be a LongTensor of labels, got {getattr(y, 'dtype', type(y))}")
        n = batch_size(x)
        if y.shape != (n,):
            raise ValueError(f"y must have shape [{n}] to match x, got {list(y.shape)}")
        bad = y[(y < 0) | (y >= self.num_labels)]
        if bad.numel():
            raise ValueError(f"labels {bad.unique().tolist()} outside 0..{self.num_labels - 1}")
        node = self.node_at(path)
        lookup = torch.full((self.num_labels,), -1, dtype=torch.long)
        if isinstance(node, Router):
            for label in node.labels:
                lookup[label] = node.partition.class_of(label)
        else:
            for local, label in enumerate(node.labels):
                lookup[label] = local
        targets = lookup.to(y.device)[y]
        keep = (targets >= 0).nonzero().flatten()
        return index_batch(x, keep), targets[keep]

    def router_targets(self, y: torch.Tensor) -> torch.Tensor:
        """The root's coarse targets (class id of each label)."""
        return self.partition.class_of(y)

    # ------------------------------------------------------------------ persistence
    def save(self, path: str | Path) -> Path:
        """Save to a directory: ``hierarchy.json`` (the tree) and ``weights.pt`` (tensors).

        Every node's whole ``state_dict`` is stored (each model once, plus the buffers and
        parameters a custom node registers), with the tree, the partitions and
        ``input_range``. Models are rebuilt on :meth:`load` by name (``hierclass.models``) or
        by a ``model_factory``; rules by the ``rules`` mapping, custom node classes by
        ``node_classes``. Nothing pickled is executed.
        """
        return save_hierarchy(self, path)

    @classmethod
    def load(
        cls,
        path: str | Path,
        model_factory: Any = None,
        rules: Mapping[str, Any] | None = None,
        map_location: str | torch.device = "cpu",
        node_classes: Mapping[str, Any] | None = None,
    ) -> Hierarchy:
        """Load a hierarchy saved by :meth:`save` (``torch.load(weights_only=True)``).

        Parameters
        ----------
        path : str or Path
            Directory written by :meth:`save`.
        model_factory : callable or mapping, optional
            For models not built by name: ``model_factory(entry) -> nn.Module`` receives the
            model's JSON entry (``index``, ``class``, ``spec``); a mapping is keyed by index.
        rules : mapping, optional
            Rule name -> callable for each :class:`~hierclass.nodes.RuleRouter`.
        map_location : str or torch.device
            Where to put the tensors.
        node_classes : mapping, optional
            Class name -> class (or ``callable(model, labels, input_key)``) for each leaf of a
            user-defined :class:`~hierclass.nodes.Leaf` subclass (``callable(model,
            partition, input_key)`` for a :class:`~hierclass.nodes.Router` subclass). The
            saved buffers and parameters are then loaded into the node, strictly.

        Raises
        ------
        FileNotFoundError
            ``path`` holds no ``hierarchy.json`` or ``weights.pt``.
        ValueError
            A corrupt, tampered or inconsistent file (the message names the file and the
            problem), a missing rule, model factory or node class.
        """
        return load_tree(
            path,
            cls,
            model_factory=model_factory,
            rules=rules,
            map_location=map_location,
            node_classes=node_classes,
        )

    # ------------------------------------------------------------------ display
    def __repr__(self) -> str:
        lines = ["Hierarchy", f"└─ {self.root.describe()}"]
        self._draw(lines, prefix="   ")
        return "\n".join(lines)

    def _draw(self, lines: list[str], prefix: str) -> None:
        for i, child in enumerate(self.children):
            last = i == len(self.children) - 1
            branch = "└─" if last else "├─"
            name = self.partition.names[i]
            node = child.root if isinstance(child, Hierarchy) else child
            lines.append(f"{prefix}{branch} {name}: {node.describe()}")
            if isinstance(child, Hierarchy):
                child._draw(lines, prefix + ("   " if last else "│  "))
