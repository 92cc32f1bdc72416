"""Consistency of a results table's rows with each other: what a number on screen relies on.

:func:`~hierclass.smoothing.analysis.tables.check_results` calls these before anything is counted.
Each check names the file and line of the first offending row, so a user can open it:

* ``correct`` agrees with ``predict``/``label`` (and ``route_correct`` in a hierarchy's file):
  an abstention marked correct would count as certified;
* a hierarchy's ``route``/``true_route`` are dotted child indices, ``node_radii`` names the
  nodes of the route (root first) with radii, and the routes fit one tree: a label has one
  true route, and a predicted label sits where that label's true route says;
* :func:`missing_indices` lists the indices a run skipped inside its range (a gap is not an
  error -- a run may be unfinished -- but a table computed over it should say so).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from hierclass.smoothing.records.tsv import ResultTable

__all__ = ["check_hierarchy_columns", "check_correct_column", "missing_indices"]

Where = Callable[[int], str]


def _ints(text: str) -> tuple[int, ...] | None:
    if text == "":
        return ()
    parts = text.split(".")
    if not all(p.isdigit() for p in parts):
        return None
    return tuple(int(p) for p in parts)


def check_correct_column(table: ResultTable, where: Where) -> None:
    """Refuse rows whose ``correct`` contradicts ``predict``, ``label`` (and the route).

    A row is correct exactly when it predicts its label (an abstention, -1, never is) and, in
    a hierarchy's file, its route is the true one.

    Examples
    --------
    >>> t = ResultTable({"idx": np.array([0]), "label": np.array([3]),
    ...                  "predict": np.array([-1]), "radius": np.array([0.0]),
    ...                  "correct": np.array([1])})
    >>> check_correct_column(t, lambda i: f"run.tsv:{i + 2}")
    Traceback (most recent call last):
    ...
    ValueError: run.tsv:2: correct is 1 but predict -1 (an abstention) is not label 3
    """
    if "label" not in table or "predict" not in table:
        return
    label = np.asarray(table["label"], dtype=np.int64)
    predict = np.asarray(table["predict"], dtype=np.int64)
    expected = (predict == label) & (predict >= 0)
    if "route_correct" in table:
        expected &= np.asarray(table["route_correct"], dtype=np.int64) == 1
    correct = np.asarray(table["correct"]).astype(float) == 1
    bad = np.flatnonzero(correct != expected)
    if bad.size == 0:
        return
    i = int(bad[0])
    more = f" (and {bad.size - 1} more rows)" if bad.size > 1 else ""
    p, y = int(predict[i]), int(label[i])
    if correct[i]:
        why = f"predict {p}{' (an abstention)' if p < 0 else ''} is not label {y}"
        if p == y:
            why = "its route_correct is 0"
        raise ValueError(f"{where(i)}: correct is 1 but {why}{more}")
    raise ValueError(
        f"{where(i)}: correct is 0 but predict {p} equals label {y}"
        f"{' and the route is right' if 'route_correct' in table else ''}{more}"
    )


def _node_radii(text: str, route: tuple[int, ...], where: str) -> None:
    """``root=R;0=R;0.1=R``: the walked nodes, root first, each with a radius >= 0."""
    items = [item for item in text.split(";") if item]
    expected = ["root"] + [".".join(map(str, route[: d + 1])) for d in range(len(route))]
    names = [item.rpartition("=")[0] for item in items]
    if names != expected[: len(names)] or len(names) < len(expected):
        raise ValueError(
            f"{where}: node_radii names the nodes {names}, but route "
            f"{'.'.join(map(str, route)) or '(none)'} walks {expected}"
        )
    for item in items:
        value = item.rpartition("=")[2]
        try:
            r = float(value)
        except ValueError:
            raise ValueError(
                f"{where}: node_radii entry {item!r} holds {value!r}, expected a radius "
                "(a number >= 0 or inf)"
            ) from None
        if not r >= 0:
            raise ValueError(f"{where}: node_radii entry {item!r} is not a radius >= 0")


def check_hierarchy_columns(table: ResultTable, where: Where) -> None:
    """Validate a hierarchy file's routes and node radii, and that they fit one tree.

    Examples
    --------
    >>> t = ResultTable({"label": np.array([0, 1]), "predict": np.array([0, 0]),
    ...                  "route": np.array(["0", "1"], dtype=object),
    ...                  "true_route": np.array(["0", "1"], dtype=object),
    ...                  "node_radii": np.array(["root=0.5;0=0.4", "root=0.5;1=0.3"],
    ...                                         dtype=object)})
    >>> check_hierarchy_columns(t, lambda i: f"h.tsv:{i + 2}")
    Traceback (most recent call last):
    ...
    ValueError: h.tsv:3: predict 0 under route 1, but label 0's true route is 0 (h.tsv:2): ...
    """
    needed = ("label", "predict", "route", "true_route", "node_radii")
    if not all(c in table for c in needed):
        return
    true_of: dict[int, tuple[tuple[int, ...], int]] = {}
    routes = []
    for i, (label, route_text, true_text) in enumerate(
        zip(table["label"], table["route"], table["true_route"])
    ):
        route, true = _ints(str(route_text)), _ints(str(true_text))
        for name, text, value in (("route", route_text, route), ("true_route", true_text, true)):
            if value is None:
                raise ValueError(
                    f"{where(i)}: {name} {str(text)!r} is not a dotted path of child indices "
                    "(e.g. 1.0)"
                )
        if len(route) > len(true):
            raise ValueError(
                f"{where(i)}: route {route_text} is deeper than true_route {true_text}"
            )
        seen = true_of.setdefault(int(label), (true, i))
        if seen[0] != true:
            raise ValueError(
                f"{where(i)}: label {int(label)} has true_route {true_text}, but "
                f"{'.'.join(map(str, seen[0]))} at {where(seen[1])}: a label sits in one class"
            )
        routes.append(route)
    depths = {len(t) for t, _ in true_of.values()}
    if len(depths) > 1:
        raise ValueError(f"{where(0).rpartition(':')[0]}: the true routes have different depths "
                         f"{sorted(depths)}")  # fmt: skip
    for i, (pred, route, nodes) in enumerate(zip(table["predict"], routes, table["node_radii"])):
        _node_radii(str(nodes), route, where(i))
        p = int(pred)
        if p >= 0 and p in true_of and true_of[p][0] != route:
            t, j = true_of[p]
            raise ValueError(
                f"{where(i)}: predict {p} under route {'.'.join(map(str, route))}, but label "
                f"{p}'s true route is {'.'.join(map(str, t))} ({where(j)}): the route is "
                "outside the hierarchy these rows describe"
            )


def missing_indices(table: ResultTable, most: int = 5) -> tuple[int, list[int]]:
    """How many indices between the table's first and last ``idx`` have no row, and the
    first ``most`` of them.

    Examples
    --------
    >>> missing_indices(ResultTable({"idx": np.array([3, 4, 7, 9])}))
    (3, [5, 6, 8])
    """
    if "idx" not in table or len(table) == 0:
        return 0, []
    idx = np.unique(np.asarray(table["idx"], dtype=np.int64))
    gaps = np.diff(idx) - 1  # never builds the whole range: idx may be far apart
    count = int(gaps.sum())
    first: list[int] = []
    for start, gap in zip(idx[:-1][gaps > 0], gaps[gaps > 0]):
        first += range(int(start) + 1, int(start) + 1 + min(int(gap), most - len(first)))
        if len(first) >= most:
            break
    return count, first
