"""Hierarchical metrics, as HiClass users know them, plus per-level certificates.

A sample's *path* is the sequence of nodes from the top of the tree down to its label: the
class ids chosen at each level, then the label (e.g. ``(1, 7)``: class 1, then digit 7).
A prediction's path may stop early (a node abstained); it then predicts only its prefix.

* hierarchical precision / recall / F1 (Kiritchenko et al., the definition HiClass uses): each
  path stands for the set of its nodes (the root excluded), and
  ``hP = sum |P & T| / sum |P|``, ``hR = sum |P & T| / sum |T|``, ``hF = 2 hP hR / (hP + hR)``,
  summed over samples (micro average);
* per-level accuracy: at level ``k`` (0 = the top-level class, the last level = the label),
  the fraction of samples whose predicted path agrees with the true one down to level ``k``;
* per-level certified accuracy at radius ``r``: the same, and the level's certified radius is
  ``>= r``. A level's radius is the minimum over the nodes that chose it and its ancestors (an
  adversary must flip one of them), so a sample's class can be certified to a larger radius
  than its label. One computation, :func:`level_certified_fraction`, serves both views: paths
  here (:func:`path_certified_accuracy`) and the rows of a hierarchy table
  (:func:`hierclass.smoothing.analysis.hierarchy_results.level_certified_accuracy`);
* mistake severity: the tree distance (edges) between the true and the predicted label, with
  labels hanging below their leaf: 0 when right, 2 for a sibling label, 4 for a label of
  another top-level class in a two-level tree. Undefined (NaN) for a prediction that stopped
  early.

:func:`paths_from_results` reads these paths and per-level radii from a hierarchy TSV
(``route``, ``true_route``, ``predict``, ``label``, ``node_radii``); :func:`hierarchy_report`
is the markdown ``hierclass analyze`` prints for such files.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from hierclass.smoothing.records.tsv import ResultTable

__all__ = [
    "hierarchical_precision_recall_f1",
    "hierarchy_report",
    "level_accuracy",
    "path_certified_accuracy",
    "mistake_severity",
    "paths_from_results",
]

Path = tuple[int, ...]


def _paths(true_paths: Sequence[Sequence[int]], pred_paths: Sequence[Sequence[int]]):
    t = [tuple(int(v) for v in p) for p in true_paths]
    p = [tuple(int(v) for v in q) for q in pred_paths]
    if len(t) != len(p):
        raise ValueError(f"{len(t)} true paths but {len(p)} predicted paths")
    if not t:
        raise ValueError("no samples to evaluate")
    depths = {len(q) for q in t}
    if len(depths) != 1 or 0 in depths:
        raise ValueError(
            f"true paths must be non-empty and all of one length (a tree of one depth), got "
            f"lengths {sorted(depths)}"
        )
    depth = depths.pop()
    long = [i for i, q in enumerate(p) if len(q) > depth]
    if long:
        raise ValueError(
            f"predicted paths are longer than the tree's {depth} levels (samples {long[:5]})"
        )
    return t, p, depth


def hierarchical_precision_recall_f1(
    true_paths: Sequence[Sequence[int]], pred_paths: Sequence[Sequence[int]]
) -> tuple[float, float, float]:
    """Hierarchical precision, recall and F1 (micro-averaged over samples).

    Examples
    --------
    One exact hit, one sibling label (right class, wrong digit), one prediction that stopped
    at the right class:

    >>> hierarchical_precision_recall_f1([(0, 2), (0, 3), (1, 7)], [(0, 2), (0, 5), (1,)])
    (0.8, 0.6666666666666666, 0.7272727272727272)
    """
    t, p, _ = _paths(true_paths, pred_paths)
    inter = sum(len(set(_prefixes(a)) & set(_prefixes(b))) for a, b in zip(t, p))
    n_pred = sum(len(b) for b in p)
    n_true = sum(len(a) for a in t)
    hp = inter / n_pred if n_pred else 0.0
    hr = inter / n_true
    hf = 2 * hp * hr / (hp + hr) if hp + hr > 0 else 0.0
    return hp, hr, hf


def _prefixes(path: Path) -> list[Path]:
    return [path[: k + 1] for k in range(len(path))]


def _agree(t: list[Path], p: list[Path], depth: int) -> np.ndarray:
    """``[N, depth]``: does the prediction agree with the truth down to level k?"""
    out = np.zeros((len(t), depth), dtype=bool)
    for i, (a, b) in enumerate(zip(t, p)):
        for k in range(len(b)):
            if a[k] != b[k]:
                break
            out[i, k] = True
    return out


def level_accuracy(
    true_paths: Sequence[Sequence[int]], pred_paths: Sequence[Sequence[int]]
) -> np.ndarray:
    """Accuracy at each level, top-level class first, label last.

    Examples
    --------
    >>> level_accuracy([(0, 2), (0, 3), (1, 7)], [(0, 2), (0, 5), (1,)]).tolist()
    [1.0, 0.3333333333333333]
    """
    t, p, depth = _paths(true_paths, pred_paths)
    return _agree(t, p, depth).mean(0)


def path_certified_accuracy(
    true_paths: Sequence[Sequence[int]],
    pred_paths: Sequence[Sequence[int]],
    level_radii: Any,
    radii: Any = 0.0,
) -> np.ndarray:
    """Certified accuracy at each level and radius: ``[len(radii), depth]``.

    ``level_radii[i, k]`` is the certified radius of sample ``i``'s level-``k`` choice
    (see :func:`paths_from_results`); a level counts at radius ``r`` when the prediction
    agrees with the truth down to it and its radius is ``>= r``.

    Examples
    --------
    The class is certified to 1.0 for both samples; the first label only to 0.3:

    >>> path_certified_accuracy([(0, 2), (1, 7)], [(0, 2), (1, 7)],
    ...                          [[1.0, 0.3], [1.0, 0.8]], [0.0, 0.5]).tolist()
    [[1.0, 1.0], [1.0, 0.5]]
    """
    t, p, depth = _paths(true_paths, pred_paths)
    lr = np.asarray(level_radii, dtype=float)
    if lr.shape != (len(t), depth):
        raise ValueError(f"level_radii must have shape {(len(t), depth)}, got {lr.shape}")
    if (lr < 0).any():
        raise ValueError("level radii must be >= 0 (NaN for a level that was not predicted)")
    rs = np.asarray(radii, dtype=float).reshape(-1)
    if np.isnan(rs).any() or (rs < 0).any():
        raise ValueError(f"radii must be >= 0 and not NaN, got {rs.tolist()}")
    return level_certified_fraction(_agree(t, p, depth), lr, rs)


def level_certified_fraction(
    correct: np.ndarray, level_radii: np.ndarray, radii: Any = 0.0, present: Any = None
) -> np.ndarray:
    """The one per-level certified-accuracy computation: ``[len(radii), depth]``.

    Entry ``[j, k]`` is the fraction of the samples that have a level ``k`` (``present``,
    default all) whose level-``k`` choice is correct and certified to ``radii[j]`` or more.
    Private inputs, already valid: ``correct`` bool ``[N, depth]``, ``level_radii`` float
    ``[N, depth]`` (NaN where nothing was certified, never counted). A level no sample has
    is NaN.

    Examples
    --------
    Three samples, two levels; the third has no level 1:

    >>> ok = np.array([[True, True], [True, False], [False, False]])
    >>> lr = np.array([[0.8, 0.3], [0.5, 0.5], [0.9, np.nan]])
    >>> have = np.array([[True, True], [True, True], [True, False]])
    >>> level_certified_fraction(ok, lr, [0.0, 0.4], have).tolist()
    [[0.6666666666666666, 0.5], [0.6666666666666666, 0.0]]
    """
    ok = np.asarray(correct, dtype=bool)
    lr = np.nan_to_num(np.asarray(level_radii, dtype=float), nan=-1.0)  # NaN: never certified
    have = np.ones_like(ok) if present is None else np.asarray(present, dtype=bool)
    n = have.sum(0)
    rows = []
    for r in np.asarray(radii, dtype=float).reshape(-1):
        hits = (ok & have & (lr >= r)).sum(0)
        with np.errstate(invalid="ignore", divide="ignore"):
            rows.append(np.where(n > 0, hits / np.maximum(n, 1), np.nan))
    return np.stack(rows)


def mistake_severity(
    true_paths: Sequence[Sequence[int]], pred_paths: Sequence[Sequence[int]]
) -> np.ndarray:
    """Tree distance (edges) between each true and predicted label; NaN if none predicted.

    Examples
    --------
    >>> mistake_severity([(0, 2), (0, 3), (1, 7), (1, 9)], [(0, 2), (0, 5), (0, 6), (1,)])
    array([ 0.,  2.,  4., nan])
    """
    t, p, depth = _paths(true_paths, pred_paths)
    out = np.full(len(t), np.nan)
    for i, (a, b) in enumerate(zip(t, p)):
        if len(b) == depth:
            common = 0
            while common < depth and a[common] == b[common]:
                common += 1
            out[i] = 2 * (depth - common)
    return out


def _ints(field: Any) -> Path:
    text = str(field)
    return tuple(int(v) for v in text.split(".")) if text else ()


def paths_from_results(table: ResultTable) -> tuple[list[Path], list[Path], np.ndarray]:
    """``(true_paths, pred_paths, level_radii)`` from a hierarchy results table.

    The level-``k`` radius is the running minimum of the node radii along the walk (column
    ``node_radii``, root first); levels below a node that abstained are NaN.

    Examples
    --------
    >>> t = ResultTable({"label": np.array([7]), "predict": np.array([7]),
    ...                  "route": np.array(["1"], dtype=object),
    ...                  "true_route": np.array(["1"], dtype=object),
    ...                  "node_radii": np.array(["root=inf;1=0.42"], dtype=object)})
    >>> paths_from_results(t)
    ([(1, 7)], [(1, 7)], array([[ inf, 0.42]]))
    """
    needed = ("label", "predict", "route", "true_route", "node_radii")
    missing = [c for c in needed if c not in table]
    if missing:
        raise ValueError(
            f"hierarchy metrics need the columns {list(needed)}; missing {missing} (a flat "
            "run's file has no routes)"
        )
    true_paths, pred_paths = [], []
    radii = []
    for label, pred, route, true_route, nodes in zip(
        table["label"], table["predict"], table["route"], table["true_route"], table["node_radii"]
    ):
        t = _ints(true_route) + (int(label),)
        r = _ints(route)
        p = r + ((int(pred),) if int(pred) >= 0 else ())
        node_r = [float(item.rpartition("=")[2]) for item in str(nodes).split(";") if item]
        levels = np.full(len(t), np.nan)
        running = np.inf
        for k in range(min(len(p), len(node_r))):
            running = min(running, node_r[k])
            levels[k] = running
        true_paths.append(t)
        pred_paths.append(p)
        radii.append(levels)
    depths = {len(t) for t in true_paths}
    if len(depths) > 1:
        raise ValueError(f"the routes have different depths {sorted(depths)}")
    return true_paths, pred_paths, np.array(radii)


def hierarchy_report(table: ResultTable, radii: Sequence[float] = (0.0, 0.25, 0.5)) -> str:
    """Markdown: hP/hR/hF, mistake severity, per-level accuracy and certified accuracy.

    Examples
    --------
    >>> t = ResultTable({"label": np.array([7, 2]), "predict": np.array([7, 5]),
    ...                  "route": np.array(["1", "0"], dtype=object),
    ...                  "true_route": np.array(["1", "0"], dtype=object),
    ...                  "node_radii": np.array(["root=inf;1=0.4", "root=inf;0=0.0"],
    ...                                         dtype=object)})
    >>> print(hierarchy_report(t, radii=[0.0]))
    hierarchical precision 0.750, recall 0.750, F1 0.750
    mistake severity (tree distance): mean 1.00 over 2 labelled predictions, 2.00 over 1 mistakes
    <BLANKLINE>
    | level | accuracy | CA r=0.0 |
    |---|---|---|
    | 1 (class) | 100.00% | 100.00% |
    | 2 (label) | 50.00% | 50.00% |
    """
    t, p, lr = paths_from_results(table)
    hp, hr, hf = hierarchical_precision_recall_f1(t, p)
    sev = mistake_severity(t, p)
    named = sev[~np.isnan(sev)]
    wrong = named[named > 0]
    line = (
        f"hierarchical precision {hp:.3f}, recall {hr:.3f}, F1 {hf:.3f}\nmistake severity "
        f"(tree distance): mean {named.mean() if named.size else float('nan'):.2f} over "
        f"{named.size} labelled predictions, "
        f"{wrong.mean() if wrong.size else 0.0:.2f} over {wrong.size} mistakes"
    )
    acc = level_accuracy(t, p)
    cert = path_certified_accuracy(t, p, lr, list(radii))
    depth = len(t[0])
    head = "| level | accuracy | " + " | ".join(f"CA r={r}" for r in radii) + " |"
    rows = [head, "|---|---|" + "---|" * len(radii)]
    for k in range(depth):
        name = f"{k + 1} (label)" if k == depth - 1 else f"{k + 1} (class)"
        cells = " | ".join(f"{cert[j, k]:.2%}" for j in range(len(radii)))
        rows.append(f"| {name} | {acc[k]:.2%} | {cells} |")
    return line + "\n\n" + "\n".join(rows)
