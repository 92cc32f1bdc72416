"""What every attack on a hierarchy shares: the preamble, batch helpers, the judge loop.

:func:`prepare` is the one boundary of the hierarchy attacks (validate the factory, the threat
model, the labels; put the tree in eval mode; predict the clean batch once);
:func:`attack_rows` attacks one modality of some samples in chunks and judges every
adversarial input end to end with ``h.predict``.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from hierclass._utils.checks import check_labels
from hierclass._utils.modules import model_mode
from hierclass.attacks.threat_model import _check_threat_model
from hierclass.batch import Batch, batch_size, index_batch
from hierclass.hierarchy import Hierarchy
from hierclass.nodes import Node, Router

NodePath = tuple[int, ...]
AttackFactory = Callable[[Callable[[torch.Tensor], torch.Tensor]], Callable[..., torch.Tensor]]


# ----------------------------------------------------------------------------- batches
def modality(x: Batch, key: str | None) -> torch.Tensor:
    """The tensor a node with ``input_key=key`` reads."""
    return x if isinstance(x, torch.Tensor) else x[key]  # type: ignore[index]


def replace(x: Batch, key: str | None, value: torch.Tensor) -> Batch:
    """``x`` with modality ``key`` replaced by ``value`` (a new dict; ``x`` is not changed)."""
    if isinstance(x, torch.Tensor):
        return value
    return {**x, key: value}


def scatter(x_full: Batch, rows: torch.Tensor, key: str | None, value: torch.Tensor) -> Batch:
    """Copy of ``x_full`` whose modality ``key`` holds ``value`` at ``rows``."""
    target = modality(x_full, key).clone()
    target[rows] = value.to(target.dtype)
    return replace(x_full, key, target)


# ----------------------------------------------------------------------------- the tree
def node_targets(node: Node, y: torch.Tensor) -> torch.Tensor:
    """The node's own targets: coarse class ids for a router, local indices for a leaf."""
    if isinstance(node, Router):
        return torch.as_tensor(node.partition.class_of(y.cpu()), dtype=torch.long).to(y.device)
    lookup = torch.full((max(node.labels) + 1,), -1, dtype=torch.long)
    lookup[list(node.labels)] = torch.arange(len(node.labels))
    return lookup.to(y.device)[y]


def on_path(paths: dict[int, NodePath], y: torch.Tensor, node_path: NodePath) -> torch.Tensor:
    """Bool mask of the samples whose true route passes through the node at ``node_path``."""
    hit = [label for label, p in paths.items() if p[: len(node_path)] == node_path]
    return torch.isin(y, torch.tensor(hit, dtype=y.dtype, device=y.device))


def path_name(h: Any, path: NodePath) -> str:
    """``"root"``, ``"leaf round"``, ``"router high/low"``: how reports name a node."""
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


def predict(h: Any, x: Batch, chunk: int) -> torch.Tensor:
    """``h.predict`` in chunks of ``chunk`` samples, without gradients."""
    n = batch_size(x)
    outs = []
    with torch.no_grad():
        for start in range(0, n, chunk):
            rows = torch.arange(start, min(start + chunk, n))
            outs.append(h.predict(index_batch(x, rows)))
    return torch.cat(outs)


# ----------------------------------------------------------------------------- the boundary
@dataclass
class Setup:
    """A validated attack problem and its clean verdict, computed once per public call."""

    x: Batch
    y: torch.Tensor
    keys: frozenset[str] | None  # the perturbable modalities (None: a tensor batch)
    paths: dict[int, NodePath]  # each label's route
    natural: torch.Tensor  # bool [N]: clean prediction right
    chunk: int  # samples per attack call


def check_factory(make_attack: Any) -> None:
    if not callable(make_attack):
        raise TypeError(
            "make_attack must be a callable model -> attack, e.g. "
            "lambda model: PGD(model, eps=0.3, step_size=0.01, steps=40); got "
            f"{type(make_attack).__name__}"
        )


def check_chunk(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"batch_size must be an int, got {type(value).__name__}")
    if value < 1:
        raise ValueError(f"batch_size must be >= 1, got {value}")
    return value


@contextmanager
def prepare(
    h: Any,
    x: Batch,
    y: Any,
    make_attack: Any,
    perturbable: Collection[str] | None,
    chunk: Any,
) -> Iterator[Setup]:
    """The attack problem, validated once, its clean batch predicted once, ``h`` in eval mode.

    Every public attack on a hierarchy runs inside ``with prepare(...) as s:``; the nodes'
    train/eval flags are restored when the block ends.
    """
    if not isinstance(h, Hierarchy):
        raise TypeError(
            f"h must be a hierclass.Hierarchy, got {type(h).__name__} (for a flat model use "
            "evaluate_flat or PGD)"
        )
    check_factory(make_attack)
    chunk = check_chunk(chunk)
    keys = _check_threat_model(h, x, perturbable)
    n = batch_size(x)
    if n == 0:
        raise ValueError("empty batch: expected at least one sample")
    check_labels(y, modality(x, next(iter(x))) if isinstance(x, Mapping) else x, "y")
    bad = y[(y < 0) | (y >= h.num_labels)]
    if bad.numel():
        raise ValueError(f"labels {bad.unique().tolist()} outside 0..{h.num_labels - 1}")
    paths = {label: tuple(h.path_of_label(label)) for label in h.labels}
    with model_mode(h, False):
        natural = predict(h, x, chunk) == y
        yield Setup(x, y, keys, paths, natural, chunk)


# ----------------------------------------------------------------------------- attacking
class NodeScores(nn.Module):
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


def attack_rows(
    h: Any,
    s: Setup,
    rows: torch.Tensor,
    key: str | None,
    targets: torch.Tensor,
    model_for: Callable[[Batch], nn.Module],
    make_attack: AttackFactory,
    check_attack: Callable[[Any], None] | None = None,
) -> tuple[Batch, torch.Tensor]:
    """Attack modality ``key`` of samples ``rows`` in chunks; judge each end to end.

    ``model_for(x_part)`` is the model the attack sees for a chunk, ``targets`` its labels
    (one per row). Returns the adversarial batch restricted to ``rows`` and a bool mask
    ``[len(rows)]`` of the samples whose hierarchy prediction is now wrong.
    """
    adv_parts, broken_parts = [], []
    for start in range(0, rows.numel(), s.chunk):
        part = rows[start : start + s.chunk]
        x_part = index_batch(s.x, part)
        attack = make_attack(model_for(x_part))
        if check_attack is not None:
            check_attack(attack)
        xm_adv = attack(modality(x_part, key), targets[start : start + s.chunk])
        with torch.no_grad():
            broken_parts.append(h.predict(replace(x_part, key, xm_adv)) != s.y[part])
        adv_parts.append(xm_adv)
    xm_all = torch.cat(adv_parts) if adv_parts else modality(index_batch(s.x, rows), key)
    broken = torch.cat(broken_parts) if broken_parts else torch.zeros(0, dtype=torch.bool)
    return replace(index_batch(s.x, rows), key, xm_all), broken
