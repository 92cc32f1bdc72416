"""Certified information gain (Anani et al., 2024): how much a certificate narrows the labels.

A hierarchy certifies an input at radius ``r`` down to some node: the label itself, or only
its class at an upper level. Certifying a node whose class holds ``m`` of the ``K`` labels
gains ``log K - log m`` nats of information about the label; normalised by ``log K`` it is 1
for a certified label and 0 for nothing certified (an abstention, or a root that is not
certified). A certificate counts only when the certified node contains the true label -- a
wrong certificate carries no information -- so for a flat classifier the mean gain is its
certified accuracy, and a hierarchy's is at least its certified accuracy.

Rows of a hierarchy run store ``level_labels`` (the labels of the class chosen at each
level) and ``num_labels`` in their ``detail`` JSON; a file whose rows lack them has no gain
to report.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from hierclass.smoothing.analysis.tables import certified_accuracy, check_radii_to_evaluate
from hierclass.smoothing.records.tsv import ResultTable

__all__ = ["certified_information_gain", "information_gain_table"]


def _fields(text: Any) -> list[str]:
    text = str(text)
    return [] if text in ("", "nan") else text.split(";")


def _row_gain(row: Mapping[str, Any], radii: np.ndarray) -> np.ndarray | None:
    """Normalised gain of one hierarchy row at each radius (``None``: sizes not recorded)."""
    try:
        detail = json.loads(str(row["detail"]))
    except ValueError:
        return None
    sizes, k = detail.get("level_labels"), detail.get("num_labels")
    if not isinstance(sizes, list) or not isinstance(k, int) or k < 2:
        return None
    level_r = [float(v) for v in _fields(row["level_radii"])]
    level_ok = [v == "1" for v in _fields(row["level_correct"])]
    label_certified = int(row["correct"]) == 1
    out = np.zeros(len(radii))
    for j, r in enumerate(radii):
        if label_certified and float(row["radius"]) >= r:
            out[j] = 1.0
            continue
        for d in range(min(len(level_r), len(level_ok), len(sizes)) - 1, -1, -1):
            if level_ok[d] and level_r[d] >= r:
                out[j] = (math.log(k) - math.log(sizes[d])) / math.log(k)
                break
    return out


def certified_information_gain(results: ResultTable, radii: Any = 0.0) -> Any:
    """Mean normalised certified information gain of a run at each radius.

    Parameters
    ----------
    results : ResultTable
        A flat run (Cohen's columns) or a hierarchy run (``level_radii``, ``level_correct``
        and ``detail`` with ``level_labels``/``num_labels``).
    radii : float or sequence of float

    Returns
    -------
    float or ndarray
        In [0, 1]; NaN for a hierarchy file that does not record its classes' sizes.

    Examples
    --------
    >>> detail = '{"level_labels": [4], "num_labels": 10}'
    >>> t = ResultTable({"radius": np.array([0.5, 0.0]), "correct": np.array([1, 0]),
    ...                  "level_radii": np.array(["0.9", "0.8"], dtype=object),
    ...                  "level_correct": np.array(["1", "1"], dtype=object),
    ...                  "detail": np.array([detail, detail], dtype=object)})
    >>> gain = 1 - np.log(4) / np.log(10)  # the second row: only its class, of 4 labels
    >>> np.allclose(certified_information_gain(t, [0.0, 0.7]), [(1 + gain) / 2, gain])
    True
    """
    scalar = np.ndim(radii) == 0
    r = np.atleast_1d(check_radii_to_evaluate(radii))
    if "level_radii" not in results:
        out = np.atleast_1d(certified_accuracy(results, r))
    elif len(results) == 0:
        out = np.zeros(len(r))
    else:
        columns = ("radius", "correct", "level_radii", "level_correct", "detail")
        gains = []
        for i in range(len(results)):
            g = _row_gain({c: results[c][i] for c in columns}, r)
            if g is None:
                return float("nan") if scalar else np.full(len(r), np.nan)
            gains.append(g)
        out = np.mean(gains, axis=0)
    return float(out[0]) if scalar else out


def information_gain_table(runs: Mapping[str, ResultTable], radii: Sequence[float]) -> str:
    """Markdown: certified information gain at each radius, one row per run.

    Examples
    --------
    >>> t = ResultTable({"radius": np.array([0.3, 0.9]), "correct": np.array([1, 0])})
    >>> print(information_gain_table({"flat": t}, [0.0, 0.5]))
    | run | r=0.0 | r=0.5 |
    |---|---|---|
    | flat | 0.500 | 0.000 |
    """
    lines = ["| run | " + " | ".join(f"r={r}" for r in radii) + " |"]
    lines.append("|---|" + "---|" * len(radii))
    for name, table in runs.items():
        gain = certified_information_gain(table, list(radii))
        cells = " | ".join("-" if np.isnan(g) else f"{g:.3f}" for g in gain)
        lines.append(f"| {name} | {cells} |")
    return "\n".join(lines)
