"""Attacks on a hierarchy: sequential worst case, joint, budgeted; the Table I/II report (§V).

* **Sequential** (the paper's worst case): attack the root with PGD on its own coarse targets;
  samples it does not misroute are attacked at the next node on their true path (a nested
  router, then their leaf) from the clean input. A sample is robust only if it survives every
  stage.
* **Joint**: PGD on the differentiable surrogate ``h.soft_forward`` (route probability times
  leaf probability), so one perturbation can trade off misrouting against misclassifying
  inside the class.
* **Budgeted**: the adversary attacks one node of its choice (the same node for the whole
  data set); the report names the node that hurts most.

Every adversarial input is judged end to end: a sample is broken when ``h.predict`` on that
input is wrong. Each attack perturbs only the modality its node reads, and only if the threat
model lists it as perturbable; rule routers and one-label leaves are never attacked. The
adversarial accuracy of the report is the worst case: the per-sample union of all attacks run.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from hierclass.attacks.base import check_labels, check_unit_interval, model_mode
from hierclass.batch import Batch, batch_size, index_batch
from hierclass.hierarchy import Hierarchy
from hierclass.nodes import Node, Router

NodePath = tuple[int, ...]
AttackFactory = Callable[[Callable[[torch.Tensor], torch.Tensor]], Callable[..., torch.Tensor]]

_LOG_FLOOR = 1e-30  # keeps log(soft_forward) finite where a probability underflows to 0


# ----------------------------------------------------------------------------- batch helpers
def _modality(x: Batch, key: str | None) -> torch.Tensor:
    return x if isinstance(x, torch.Tensor) else x[key]  # type: ignore[index]


def _replace(x: Batch, key: str | None, value: torch.Tensor) -> Batch:
    if isinstance(x, torch.Tensor):
        return value
    return {**x, key: value}


def _scatter(x_full: Batch, rows: torch.Tensor, key: str | None, value: torch.Tensor) -> Batch:
    """Copy of ``x_full`` whose modality ``key`` holds ``value`` at ``rows``."""
    target = _modality(x_full, key).clone()
    target[rows] = value.to(target.dtype)
    return _replace(x_full, key, target)


def _check_threat_model(x: Batch, perturbable: Collection[str] | None) -> frozenset[str] | None:
    if isinstance(x, torch.Tensor):
        if perturbable is not None:
            raise ValueError(
                f"perturbable={sorted(perturbable)} names modalities but the batch is a plain "
                "tensor (which is the one perturbable input); pass perturbable=None"
            )
        check_unit_interval(x, "x")
        return None
    if not isinstance(x, Mapping):
        raise TypeError(f"a batch is a tensor or a dict of tensors, got {type(x).__name__}")
    if perturbable is None:
        raise ValueError(
            f"the batch has modalities {sorted(x)}: name the ones the adversary can perturb "
            "with perturbable=[...] (the threat model)"
        )
    keys = frozenset(perturbable)
    unknown = sorted(keys - set(x))
    if unknown:
        raise ValueError(f"perturbable modalities {unknown} are not in the batch {sorted(x)}")
    for key in sorted(keys):
        check_unit_interval(x[key], f"x[{key!r}]")
    return keys


def is_attackable(node: Node, x: Batch, perturbable: Collection[str] | None) -> bool:
    """Whether the threat model lets the adversary act on ``node``.

    False for rule routers and one-label leaves (``node.deterministic``) and for nodes that
    read a modality outside ``perturbable``; a tensor batch is perturbable as a whole.

    Examples
    --------
    >>> from hierclass import Leaf
    >>> leaf = Leaf(torch.nn.Linear(3, 2), [0, 1], input_key="lidar")
    >>> is_attackable(leaf, {"lidar": torch.zeros(1, 3)}, perturbable=["image"])
    False
    """
    if getattr(node, "deterministic", False):
        return False
    if isinstance(x, torch.Tensor):
        return True
    return perturbable is not None and node.input_key in perturbable


def _node_targets(node: Node, y: torch.Tensor) -> torch.Tensor:
    """The node's own targets: coarse class ids for a router, local indices for a leaf."""
    if isinstance(node, Router):
        return torch.as_tensor(node.partition.class_of(y.cpu()), dtype=torch.long).to(y.device)
    lookup = torch.full((max(node.labels) + 1,), -1, dtype=torch.long)
    lookup[list(node.labels)] = torch.arange(len(node.labels))
    return lookup.to(y.device)[y]


def _label_paths(h: Any) -> dict[int, NodePath]:
    return {label: tuple(h.path_of_label(label)) for label in h.labels}


def _on_path(paths: dict[int, NodePath], y: torch.Tensor, node_path: NodePath) -> torch.Tensor:
    """Bool mask of the samples whose true route passes through the node at ``node_path``."""
    hit = [label for label, p in paths.items() if p[: len(node_path)] == node_path]
    return torch.isin(y, torch.tensor(hit, dtype=y.dtype, device=y.device))


def _path_name(h: Any, path: NodePath) -> str:
    if not path:
        return "root"
    names, sub = [], h
    for cid in path:
        names.append(sub.partition.names[cid])
        sub = sub.children[cid]
        if not isinstance(sub, Hierarchy):
            break
    kind = "router" if isinstance(h.node_at(path), Router) else "leaf"
    return f"{kind} {'/'.join(names)}"


def _predict(h: Any, x: Batch, chunk: int) -> torch.Tensor:
    n = batch_size(x)
    outs = []
    with torch.no_grad():
        for start in range(0, n, chunk):
            rows = torch.arange(start, min(start + chunk, n))
            outs.append(h.predict(index_batch(x, rows)))
    return torch.cat(outs)


def _check_xy(h: Any, x: Batch, y: torch.Tensor) -> int:
    n = batch_size(x)
    if n == 0:
        raise ValueError("empty batch: expected at least one sample")
    check_labels(y, _modality(x, next(iter(x))) if isinstance(x, Mapping) else x, "y")
    bad = y[(y < 0) | (y >= h.num_labels)]
    if bad.numel():
        raise ValueError(f"labels {bad.unique().tolist()} outside 0..{h.num_labels - 1}")
    return n


def _check_factory(make_attack: Any) -> None:
    if not callable(make_attack):
        raise TypeError(
            "make_attack must be a callable model -> attack, e.g. "
            "lambda model: PGD(model, eps=0.3, alpha=0.01, steps=40); got "
            f"{type(make_attack).__name__}"
        )


# ----------------------------------------------------------------------------- one node
class _NodeScores(nn.Module):
    """A node's scores as a function of its own modality, ``[B, ...] -> [B, K]``.

    A module (not a closure) so that an attack manages its train/eval mode and can run it
    channels-last; the node reads its modality only, so any sub-batch works (PGD's
    ``early_stop`` calls it on fewer rows).
    """

    def __init__(self, node: Node, key: str | None) -> None:
        super().__init__()
        self.node = node
        self.key = key

    def forward(self, xm: torch.Tensor) -> torch.Tensor:
        return self.node(xm if self.key is None else {self.key: xm})


class _LogSoftTree(nn.Module):
    """The joint attack's surrogate: log of the tree's route-times-leaf probabilities.

    ``rows_of`` holds the batch's other modalities when some node reads them (an unperturbed
    router, say); the surrogate then needs exactly that batch's rows.
    """

    def __init__(self, h: Hierarchy, key: str | None, rows_of: Batch | None) -> None:
        super().__init__()
        self.h = h
        self.nodes = nn.ModuleList(n for _, n in h.nodes() if isinstance(n, nn.Module))
        self.key = key
        self.rows_of = rows_of

    def forward(self, xm: torch.Tensor) -> torch.Tensor:
        if self.rows_of is None:
            full = xm if self.key is None else {self.key: xm}
        elif xm.shape[0] == batch_size(self.rows_of):
            full = _replace(self.rows_of, self.key, xm)
        else:
            raise ValueError(
                f"the joint attack's surrogate reads modalities besides {self.key!r}, so it "
                f"needs all {batch_size(self.rows_of)} rows of its batch but the attack passed "
                f"{xm.shape[0]}; an attack that drops rows (PGD early_stop=True) cannot run on it"
            )
        return self.h.soft_forward(full).clamp_min(_LOG_FLOOR).log()


def _attack_rows(
    h: Any,
    x: Batch,
    y: torch.Tensor,
    rows: torch.Tensor,
    key: str | None,
    targets: torch.Tensor,
    model_for: Callable[[Batch], nn.Module],
    make_attack: AttackFactory,
    chunk: int,
    check_attack: Callable[[Any], None] | None = None,
) -> tuple[Batch, torch.Tensor]:
    """Attack modality ``key`` of samples ``rows`` in chunks; judge each end to end.

    ``model_for(x_part)`` is the model the attack sees for a chunk, ``targets`` its labels
    (one per row). Returns the adversarial batch restricted to ``rows`` and a bool mask
    ``[len(rows)]`` of the samples whose hierarchy prediction is now wrong.
    """
    adv_parts, broken_parts = [], []
    for start in range(0, rows.numel(), chunk):
        part = rows[start : start + chunk]
        x_part = index_batch(x, part)
        attack = make_attack(model_for(x_part))
        if check_attack is not None:
            check_attack(attack)
        xm_adv = attack(_modality(x_part, key), targets[start : start + chunk])
        with torch.no_grad():
            broken_parts.append(h.predict(_replace(x_part, key, xm_adv)) != y[part])
        adv_parts.append(xm_adv)
    xm_all = torch.cat(adv_parts) if adv_parts else _modality(index_batch(x, rows), key)
    broken = torch.cat(broken_parts) if broken_parts else torch.zeros(0, dtype=torch.bool)
    return _replace(index_batch(x, rows), key, xm_all), broken


def _attack_node(
    h: Any,
    node: Node,
    x: Batch,
    y: torch.Tensor,
    rows: torch.Tensor,
    make_attack: AttackFactory,
    chunk: int,
) -> tuple[Batch, torch.Tensor]:
    """Attack ``node`` on samples ``rows`` (all on its true path); see :func:`_attack_rows`."""
    key = node.input_key
    scores = _NodeScores(node, key)  # reads one modality: the same module serves every chunk
    targets = _node_targets(node, y[rows])
    return _attack_rows(h, x, y, rows, key, targets, lambda _: scores, make_attack, chunk)


def _refuse_early_stop(attack: Any) -> None:
    if getattr(attack, "early_stop", False):
        # PGD would stop where the *soft* surrogate's argmax is wrong, but the result is
        # judged on the hard tree, which that point need not fool: a weaker attack
        raise ValueError(
            "the joint attack cannot use an attack with early_stop=True: it would stop "
            "where the soft surrogate is fooled, not the hierarchy itself; pass "
            "early_stop=False (or joint=False to evaluate_hierarchy)"
        )


# ----------------------------------------------------------------------------- results
@dataclass
class AttackResult:
    """Outcome of one attack on a hierarchy over ``N`` samples.

    Attributes
    ----------
    name : str
        ``"sequential"``, ``"joint"`` or ``"node <path>"``.
    robust : BoolTensor ``[N]``
        True where the hierarchy was right on the clean input and on every adversarial input
        the attack produced.
    x_adv : Tensor or dict
        Per sample, the adversarial input that broke it, else the last one tried (clean for
        samples never attacked).
    natural : BoolTensor ``[N]``
        Clean correctness.

    Examples
    --------
    >>> r = AttackResult("joint", torch.tensor([True, False]), torch.zeros(2, 3),
    ...                  torch.tensor([True, True]))
    >>> r.accuracy
    0.5
    """

    name: str
    robust: torch.Tensor
    x_adv: Batch
    natural: torch.Tensor

    @property
    def accuracy(self) -> float:
        """Fraction of samples robust to this attack."""
        return float(self.robust.float().mean())


@dataclass
class RobustnessReport:
    """Natural, adversarial (worst case) and budgeted accuracy, like the paper's Tables I, II.

    Attributes
    ----------
    natural_accuracy : float
    adversarial_accuracy : float
        Worst case: a sample counts only if it survives every attack run (sequential, joint
        and each single-node attack), i.e. the per-sample union of the attacks.
    budgeted_accuracy : float
        The adversary attacks one node, chosen to hurt most: the minimum over nodes of the
        accuracy with only that node attacked. Equals ``adversarial_accuracy`` for a flat
        model; equals ``natural_accuracy`` if no node is attackable.
    budgeted_node : str or None
        Name of that node (None for a flat model or when nothing is attackable).
    sequential_accuracy, joint_accuracy : float
        Accuracy under each attack alone (NaN when not run).
    node_accuracy : dict of str -> float
        Accuracy with only that node attacked, for every attackable node.
    n : int
        Number of samples.

    Examples
    --------
    >>> r = RobustnessReport(0.98, 0.85, 0.9, "leaf round", n=100)
    >>> print(robustness_table({"Hierarchy": r}))
    | Model | Natural (%) | Adv (%) | Budget (%) | Budget node |
    |---|---|---|---|---|
    | Hierarchy | 98.00 | 85.00 | 90.00 | leaf round |
    """

    natural_accuracy: float
    adversarial_accuracy: float
    budgeted_accuracy: float
    budgeted_node: str | None = None
    sequential_accuracy: float = math.nan
    joint_accuracy: float = math.nan
    node_accuracy: dict[str, float] = field(default_factory=dict)
    n: int = 0

    def as_dict(self) -> dict[str, Any]:
        """Plain-dict copy."""
        return dict(vars(self))


def robustness_table(reports: Mapping[str, RobustnessReport], digits: int = 2) -> str:
    """Markdown table in the layout of the paper's Tables I and II (percentages).

    Parameters
    ----------
    reports : mapping of row name -> RobustnessReport
    digits : int
        Decimals of the percentages.

    Returns
    -------
    str
        ``| Model | Natural (%) | Adv (%) | Budget (%) | Budget node |`` and one row each.

    Examples
    --------
    >>> base = RobustnessReport(0.9879, 0.8713, 0.8713, n=1000)
    >>> print(robustness_table({"Baseline": base}, digits=1).splitlines()[-1])
    | Baseline | 98.8 | 87.1 | 87.1 | - |
    """
    lines = [
        "| Model | Natural (%) | Adv (%) | Budget (%) | Budget node |",
        "|---|---|---|---|---|",
    ]
    for name, r in reports.items():
        cells = [r.natural_accuracy, r.adversarial_accuracy, r.budgeted_accuracy]
        pct = " | ".join(f"{100 * v:.{digits}f}" for v in cells)
        lines.append(f"| {name} | {pct} | {r.budgeted_node or '-'} |")
    return "\n".join(lines)


# ----------------------------------------------------------------------------- attacks
def sequential_attack(
    h: Any,
    x: Batch,
    y: torch.Tensor,
    make_attack: AttackFactory,
    *,
    perturbable: Collection[str] | None = None,
    batch_size: int = 256,
) -> AttackResult:
    """The paper's worst-case adversary: root first, then the next node for the survivors.

    Level by level along each sample's true route, the node there is attacked (PGD on its own
    targets, from the clean input) for the samples still robust; a sample is broken as soon
    as the hierarchy mispredicts one of its adversarial inputs. Naturally misclassified
    samples count as broken and are not attacked.

    Parameters
    ----------
    h : Hierarchy
    x : Tensor ``[N, ...]`` or dict of modalities
        Clean inputs; perturbable modalities in [0, 1].
    y : LongTensor ``[N]``
        Global labels.
    make_attack : callable
        ``make_attack(model) -> attack`` with ``attack(x, y) -> x_adv``; ``model`` maps the
        node's modality to its scores. E.g. ``lambda m: PGD(m, eps, alpha, steps)``.
    perturbable : collection of str or None
        Modalities the adversary may change (dict batches); None for a tensor batch.
    batch_size : int
        Samples per attack call.

    Returns
    -------
    AttackResult

    Examples
    --------
    >>> from hierclass import Hierarchy, LabelPartition, Leaf, Router
    >>> from hierclass.attacks import PGD
    >>> torch.manual_seed(0)  # doctest: +ELLIPSIS
    <torch._C.Generator object at ...>
    >>> p = LabelPartition([[0, 1], [2, 3]])
    >>> h = Hierarchy(Router(torch.nn.Linear(4, 2), p),
    ...               [Leaf(torch.nn.Linear(4, 2), [0, 1]), Leaf(torch.nn.Linear(4, 2), [2, 3])])
    >>> x, y = torch.rand(8, 4), torch.randint(0, 4, (8,))
    >>> res = sequential_attack(h, x, y, lambda m: PGD(m, 0.1, 0.05, 5))
    >>> bool((res.robust <= res.natural).all())
    True
    """
    _check_factory(make_attack)
    keys = _check_threat_model(x, perturbable)
    _check_xy(h, x, y)
    paths = _label_paths(h)
    with model_mode(h, False):
        natural = _predict(h, x, batch_size) == y
        robust = natural.clone()
        x_best = x
        depth = max(len(p) for p in paths.values())
        by_depth: dict[int, list[tuple[NodePath, Node]]] = {}
        for path, node in h.nodes():
            by_depth.setdefault(len(path), []).append((path, node))
        for level in range(depth + 1):
            for path, node in by_depth.get(level, []):
                if not is_attackable(node, x, keys):
                    continue
                rows = (robust & _on_path(paths, y, path)).nonzero().flatten()
                if rows.numel() == 0:
                    continue
                x_adv, broken = _attack_node(h, node, x, y, rows, make_attack, batch_size)
                key = node.input_key
                x_best = _scatter(x_best, rows[broken], key, _modality(x_adv, key)[broken])
                robust[rows[broken]] = False
    return AttackResult("sequential", robust, x_best, natural)


def joint_attack(
    h: Any,
    x: Batch,
    y: torch.Tensor,
    make_attack: AttackFactory,
    *,
    perturbable: Collection[str] | None = None,
    batch_size: int = 256,
) -> AttackResult:
    """PGD on the whole tree through ``log h.soft_forward`` (route x leaf probability).

    One perturbation of the (single) perturbable modality is optimised against the
    surrogate's cross-entropy on the global label, then judged with ``h.predict``.

    Parameters
    ----------
    h, x, y, make_attack, perturbable, batch_size
        As in :func:`sequential_attack`; ``model`` given to ``make_attack`` maps the
        perturbable modality to log-probabilities over all labels.

    Raises
    ------
    ValueError
        If the threat model names more than one perturbable modality read by an attackable
        node (one PGD perturbs one tensor).

    Examples
    --------
    >>> from hierclass import Hierarchy, LabelPartition, Leaf, Router
    >>> from hierclass.attacks import PGD
    >>> p = LabelPartition([[0, 1], [2]])
    >>> h = Hierarchy(Router(torch.nn.Linear(4, 2), p), [Leaf(torch.nn.Linear(4, 2), [0, 1]), None])
    >>> res = joint_attack(h, torch.rand(6, 4), torch.tensor([0, 1, 2, 0, 1, 2]),
    ...                    lambda m: PGD(m, 0.1, 0.05, 5))
    >>> res.robust.shape
    torch.Size([6])
    """
    _check_factory(make_attack)
    keys = _check_threat_model(x, perturbable)
    _check_xy(h, x, y)
    read = {node.input_key for _, node in h.nodes() if is_attackable(node, x, keys)}
    if len(read) > 1:
        raise ValueError(
            f"the joint attack perturbs one modality, but attackable nodes read {sorted(read)}; "
            "restrict perturbable to one of them"
        )
    with model_mode(h, False):
        natural = _predict(h, x, batch_size) == y
        robust = natural.clone()
        if not read:
            return AttackResult("joint", robust, x, natural)
        key = next(iter(read))
        # nodes reading other (unperturbed) modalities tie the surrogate to its batch's rows
        tied = key is not None and any(node.input_key != key for _, node in h.nodes())
        rows = natural.nonzero().flatten()
        x_adv, broken = _attack_rows(
            h,
            x,
            y,
            rows,
            key,
            y[rows],
            lambda x_part: _LogSoftTree(h, key, x_part if tied else None),
            make_attack,
            batch_size,
            check_attack=_refuse_early_stop,
        )
        x_best = _scatter(x, rows, key, _modality(x_adv, key))
        robust[rows[broken]] = False
    return AttackResult("joint", robust, x_best, natural)


def node_attacks(
    h: Any,
    x: Batch,
    y: torch.Tensor,
    make_attack: AttackFactory,
    *,
    perturbable: Collection[str] | None = None,
    batch_size: int = 256,
) -> dict[NodePath, AttackResult]:
    """Attack every attackable node alone, on all the samples whose true route passes it.

    Returns ``{path: AttackResult}``; samples off the node's route keep their clean result.
    The budgeted adversary picks the node with the lowest accuracy; the sequential adversary
    breaks a sample if any node on its route does.

    Examples
    --------
    >>> from hierclass import Hierarchy, LabelPartition, Leaf, Router
    >>> from hierclass.attacks import PGD
    >>> p = LabelPartition([[0, 1], [2]])
    >>> h = Hierarchy(Router(torch.nn.Linear(4, 2), p), [Leaf(torch.nn.Linear(4, 2), [0, 1]), None])
    >>> res = node_attacks(h, torch.rand(6, 4), torch.tensor([0, 1, 2, 0, 1, 2]),
    ...                    lambda m: PGD(m, 0.1, 0.05, 5))
    >>> sorted(res)  # the one-label leaf at (1,) is never attacked
    [(), (0,)]
    """
    _check_factory(make_attack)
    keys = _check_threat_model(x, perturbable)
    _check_xy(h, x, y)
    paths = _label_paths(h)
    out: dict[NodePath, AttackResult] = {}
    with model_mode(h, False):
        natural = _predict(h, x, batch_size) == y
        for path, node in h.nodes():
            if not is_attackable(node, x, keys):
                continue
            robust = natural.clone()
            rows = (natural & _on_path(paths, y, path)).nonzero().flatten()
            x_best = x
            if rows.numel():
                x_adv, broken = _attack_node(h, node, x, y, rows, make_attack, batch_size)
                key = node.input_key
                x_best = _scatter(x, rows, key, _modality(x_adv, key))
                robust[rows[broken]] = False
            out[path] = AttackResult(f"node {path}", robust, x_best, natural)
    return out


def budgeted_attack(
    h: Any,
    x: Batch,
    y: torch.Tensor,
    make_attack: AttackFactory,
    *,
    perturbable: Collection[str] | None = None,
    batch_size: int = 256,
) -> tuple[NodePath | None, AttackResult]:
    """The budgeted adversary: attack the one node that hurts most.

    Returns ``(path, result)`` for the node whose attack leaves the lowest accuracy (ties:
    the first in depth-first order); ``(None, clean result)`` if no node is attackable.

    Examples
    --------
    >>> from hierclass import Hierarchy, LabelPartition, Leaf, Router
    >>> from hierclass.attacks import PGD
    >>> p = LabelPartition([[0, 1], [2]])
    >>> h = Hierarchy(Router(torch.nn.Linear(4, 2), p), [Leaf(torch.nn.Linear(4, 2), [0, 1]), None])
    >>> path, res = budgeted_attack(h, torch.rand(6, 4), torch.tensor([0, 1, 2, 0, 1, 2]),
    ...                             lambda m: PGD(m, 0.1, 0.05, 5))
    >>> path in [(), (0,)]
    True
    """
    results = node_attacks(h, x, y, make_attack, perturbable=perturbable, batch_size=batch_size)
    if not results:
        with model_mode(h, False):
            natural = _predict(h, x, batch_size) == y
        return None, AttackResult("budgeted", natural.clone(), x, natural)
    path = min(results, key=lambda p: results[p].accuracy)
    return path, results[path]


def evaluate_hierarchy(
    h: Any,
    x: Batch,
    y: torch.Tensor,
    make_attack: AttackFactory,
    *,
    perturbable: Collection[str] | None = None,
    joint: bool = True,
    batch_size: int = 256,
) -> RobustnessReport:
    """Natural, worst-case adversarial and budgeted accuracy of a hierarchy (Tables I, II).

    Runs every single-node attack once (each node on all samples routed through it by their
    true label); the sequential worst case is their per-sample union along each route
    (identical to attacking survivors only, as each PGD run is per sample), the budgeted
    adversary their minimum. With ``joint=True`` the joint attack is added to the union.

    Parameters
    ----------
    h, x, y, make_attack, perturbable, batch_size
        As in :func:`sequential_attack`.
    joint : bool
        Also run :func:`joint_attack` (needs a single perturbable modality).

    Returns
    -------
    RobustnessReport

    Examples
    --------
    >>> from hierclass import Hierarchy, LabelPartition, Leaf, Router
    >>> from hierclass.attacks import PGD
    >>> p = LabelPartition([[0, 1], [2, 3]])
    >>> h = Hierarchy(Router(torch.nn.Linear(4, 2), p),
    ...               [Leaf(torch.nn.Linear(4, 2), [0, 1]), Leaf(torch.nn.Linear(4, 2), [2, 3])])
    >>> r = evaluate_hierarchy(h, torch.rand(8, 4), torch.randint(0, 4, (8,)),
    ...                        lambda m: PGD(m, 0.1, 0.05, 5))
    >>> r.adversarial_accuracy <= r.budgeted_accuracy <= r.natural_accuracy
    True
    """
    results = node_attacks(h, x, y, make_attack, perturbable=perturbable, batch_size=batch_size)
    with model_mode(h, False):
        natural = _predict(h, x, batch_size) == y
    worst = natural.clone()
    for res in results.values():
        worst &= res.robust
    sequential = worst.clone()
    joint_acc = math.nan
    if joint:
        jres = joint_attack(h, x, y, make_attack, perturbable=perturbable, batch_size=batch_size)
        worst &= jres.robust
        joint_acc = jres.accuracy
    node_acc = {_path_name(h, p): r.accuracy for p, r in results.items()}
    if results:
        path = min(results, key=lambda p: results[p].accuracy)
        budget, budget_node = results[path].accuracy, _path_name(h, path)
    else:
        budget, budget_node = float(natural.float().mean()), None
    return RobustnessReport(
        natural_accuracy=float(natural.float().mean()),
        adversarial_accuracy=float(worst.float().mean()),
        budgeted_accuracy=budget,
        budgeted_node=budget_node,
        sequential_accuracy=float(sequential.float().mean()),
        joint_accuracy=joint_acc,
        node_accuracy=node_acc,
        n=int(y.shape[0]),
    )


def evaluate_flat(
    model: Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    y: torch.Tensor,
    make_attack: AttackFactory,
    *,
    batch_size: int = 256,
) -> RobustnessReport:
    """The same report for a flat classifier (the baseline rows of Tables I, II).

    A flat model is one node, so the budgeted adversary is the full adversary:
    ``budgeted_accuracy == adversarial_accuracy``.

    Examples
    --------
    >>> from hierclass.attacks import PGD
    >>> net = torch.nn.Linear(4, 3)
    >>> r = evaluate_flat(net, torch.rand(8, 4), torch.randint(0, 3, (8,)),
    ...                   lambda m: PGD(m, 0.1, 0.05, 5))
    >>> r.budgeted_accuracy == r.adversarial_accuracy
    True
    """
    _check_factory(make_attack)
    check_unit_interval(x, "x")
    check_labels(y, x, "y")
    natural_parts, robust_parts = [], []
    with model_mode(model, False):
        attack = make_attack(model)
        for start in range(0, x.shape[0], batch_size):
            xb, yb = x[start : start + batch_size], y[start : start + batch_size]
            with torch.no_grad():
                ok = model(xb).argmax(1) == yb
            x_adv = attack(xb, yb)
            with torch.no_grad():
                robust_parts.append(ok & (model(x_adv).argmax(1) == yb))
            natural_parts.append(ok)
    natural = torch.cat(natural_parts).float().mean()
    robust = float(torch.cat(robust_parts).float().mean())
    return RobustnessReport(
        natural_accuracy=float(natural),
        adversarial_accuracy=robust,
        budgeted_accuracy=robust,
        budgeted_node=None,
        sequential_accuracy=robust,
        n=int(y.shape[0]),
    )


__all__ = [
    "AttackResult",
    "RobustnessReport",
    "budgeted_attack",
    "evaluate_flat",
    "evaluate_hierarchy",
    "is_attackable",
    "joint_attack",
    "node_attacks",
    "robustness_table",
    "sequential_attack",
]
