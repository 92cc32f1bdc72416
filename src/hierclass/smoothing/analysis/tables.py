"""From certification records to numbers: certified accuracy, curves, ACR, class tables.

Definitions follow Cohen et al. (Appendix D): the certified accuracy at radius ``r`` is the
fraction of inputs that are classified correctly *and* certified with radius ``>= r``
(abstentions count as wrong). The average certified radius (ACR) is the mean over all inputs
of ``radius * correct``, an infinite radius counting as infinite unless a cap is given
(:func:`average_certified_radius`, the one definition). Per-class tables report, like the
paper's Tables IV-VII, the mean and standard deviation of the certified radius over the
certified-correct inputs and the certified accuracy, baseline vs. hierarchy.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from hierclass.smoothing.records.checks import check_correct_column, check_hierarchy_columns
from hierclass.smoothing.records.tsv import ResultTable

__all__ = [
    "average_certified_radius",
    "certified_accuracy",
    "certified_accuracy_curve",
    "check_radii_to_evaluate",
    "check_results",
    "class_summary",
    "compare_radii",
    "comparison_table",
    "summary_table",
]


def _check_vectors(r: np.ndarray, c_raw: np.ndarray, what: str) -> np.ndarray:
    """Validate radii and correctness flags; returns the flags as bool."""
    if r.shape != c_raw.shape or r.ndim != 1:
        raise ValueError(
            f"{what}: radius and correct must be vectors of equal length, got {r.shape}, "
            f"{c_raw.shape}"
        )
    if np.isnan(r).any():
        rows = np.flatnonzero(np.isnan(r))[:5].tolist()
        raise ValueError(f"{what}: radius contains NaN (rows {rows})")
    if (r < 0).any():
        rows = np.flatnonzero(r < 0)[:5].tolist()
        raise ValueError(
            f"{what}: a certified radius is >= 0 (0 for an abstention), found "
            f"{r[r < 0][:5].tolist()} (rows {rows})"
        )
    if c_raw.dtype != bool:
        try:
            c_num = c_raw.astype(float)
        except (TypeError, ValueError):
            raise ValueError(f"{what}: correct must hold 0 or 1, got dtype {c_raw.dtype}") from None
        bad = ~np.isin(c_num, (0.0, 1.0))
        if bad.any():
            raise ValueError(
                f"{what}: correct must be 0 or 1, found {np.unique(c_raw[bad])[:5].tolist()} "
                f"(rows {np.flatnonzero(bad)[:5].tolist()})"
            )
        return c_num.astype(bool)
    return c_raw


def check_results(
    results: ResultTable, what: str = "results", first_line: int | None = None
) -> ResultTable:
    """Validate a results table before summarising it; returns it unchanged.

    Radii are ``>= 0`` and not NaN (``inf`` is allowed: a node nobody can perturb),
    ``correct`` is 0 or 1 and agrees with ``predict``/``label`` (and the route), no ``idx``
    repeats (an input counted twice would bias every number), and a hierarchy's routes and
    node radii fit one tree (:mod:`hierclass.smoothing.records.checks`). ``what`` names the
    table in the error (e.g. its file); with ``first_line`` (the file line of row 0, 2 for a
    TSV with its header) errors name ``file:line``, otherwise the row.

    Examples
    --------
    >>> t = ResultTable({"idx": np.array([0, 0]), "radius": np.array([0.5, 0.5]),
    ...                  "correct": np.array([1, 1])})
    >>> check_results(t, "run.tsv")
    Traceback (most recent call last):
    ...
    ValueError: run.tsv: index 0 appears 2 times; each input must be counted once
    """
    for col in ("radius", "correct"):
        if col not in results:
            raise ValueError(f"{what} has no {col!r} column")
    _check_vectors(np.asarray(results["radius"], dtype=float), np.asarray(results["correct"]), what)
    if "idx" in results:
        values, counts = np.unique(np.asarray(results["idx"]), return_counts=True)
        if (counts > 1).any():
            k = int(np.argmax(counts > 1))
            raise ValueError(
                f"{what}: index {values[k]} appears {counts[k]} times; each input must be "
                "counted once"
            )

    def where(i: int) -> str:
        return f"{what}:{first_line + i}" if first_line is not None else f"{what}: row {i}"

    check_correct_column(results, where)
    check_hierarchy_columns(results, where)
    return results


def _arrays(table_or_radius: Any, correct: Any = None) -> tuple[np.ndarray, np.ndarray]:
    if isinstance(table_or_radius, ResultTable):
        check_results(table_or_radius)
        radius, correct = table_or_radius["radius"], table_or_radius["correct"]
    else:
        if correct is None:
            raise TypeError("pass a ResultTable, or radius and correct arrays")
        radius = table_or_radius
    r = np.asarray(radius, dtype=float)
    c = _check_vectors(r, np.asarray(correct), "results")
    return r, c


def check_radii_to_evaluate(radii: Any) -> np.ndarray:
    """The radii a curve is read at: any shape, >= 0, not NaN (``inf`` and repeats allowed);
    ``None`` in them is refused, not read as NaN.

    Not :func:`~hierclass.smoothing.sequential.decisions.check_radii_to_certify`, which checks
    the radii a sequential test decides (a non-empty list of distinct finite radii).

    Examples
    --------
    >>> check_radii_to_evaluate([0.5, 0.0, float("inf")]).tolist()
    [0.5, 0.0, inf]
    >>> check_radii_to_evaluate(None)
    Traceback (most recent call last):
    ...
    TypeError: radii must be a number or a sequence of numbers, got None
    """
    if radii is None or isinstance(radii, str | bytes):
        raise TypeError(f"radii must be a number or a sequence of numbers, got {radii!r}")
    try:
        raw = np.asarray(radii, dtype=object).reshape(-1)
        if any(v is None or isinstance(v, str | bytes) for v in raw):
            raise TypeError
        rs = np.asarray(radii, dtype=float)
    except (TypeError, ValueError):
        raise TypeError(f"radii must be a number or a sequence of numbers, got {radii!r}") from None
    if np.isnan(rs).any() or (rs < 0).any():
        bad = rs[np.isnan(rs) | (rs < 0)].reshape(-1)[:5].tolist()
        raise ValueError(f"radii to evaluate at must be >= 0 and not NaN, got {bad}")
    return rs


def certified_accuracy(results: Any, radii: Any = 0.0, correct: Any = None) -> Any:
    """Fraction of inputs correct with certified radius ``>= r``, for each ``r`` in ``radii``.

    Parameters
    ----------
    results : ResultTable or array of float
        A results table, or the radii (then pass ``correct``).
    radii : float or array of float
        Radii to evaluate at.
    correct : array of bool, optional
        Correctness, when ``results`` is an array of radii.

    Examples
    --------
    >>> certified_accuracy(np.array([0.0, 0.5, 1.0, 2.0]), [0.0, 0.75],
    ...                    correct=np.array([0, 1, 1, 1]))
    array([0.75, 0.5 ])
    """
    r, c = _arrays(results, correct)
    rs = check_radii_to_evaluate(radii)
    if r.size == 0:
        raise ValueError("no results to summarise")
    acc = ((r[None, :] >= rs.reshape(-1, 1)) & c[None, :]).mean(1)
    return float(acc[0]) if rs.ndim == 0 else acc


def certified_accuracy_curve(
    results: Any, correct: Any = None, *, max_radius: float | None = None, num: int = 200
) -> tuple[np.ndarray, np.ndarray]:
    """``(radii, accuracy)`` on a grid from 0 to ``max_radius`` (default: the largest finite).

    Examples
    --------
    >>> r, a = certified_accuracy_curve(np.array([0.5, 1.0]), np.array([1, 1]), num=3)
    >>> r.tolist(), a.tolist()
    ([0.0, 0.5, 1.0], [1.0, 1.0, 0.5])
    """
    r, c = _arrays(results, correct)
    if max_radius is None:
        finite = r[np.isfinite(r) & c]
        max_radius = float(finite.max()) if finite.size else 1.0
        max_radius = max_radius if max_radius > 0 else 1.0
    grid = np.linspace(0.0, max_radius, num)
    return grid, certified_accuracy(r, grid, c)


def average_certified_radius(results: Any, correct: Any = None, *, cap: float = np.inf) -> float:
    """ACR: mean over all inputs of ``min(radius, cap) * correct`` (the one definition).

    An infinite radius (a path that reads nothing the adversary can touch) counts as
    ``cap``: by default ``inf``, so the ACR is then infinite, as the mean of the certified
    radii is; pass a finite ``cap`` to rank runs that contain infinite radii (partition
    search counts them at its ``radius_cap_``). Abstentions and wrong predictions count 0.

    Examples
    --------
    >>> average_certified_radius(np.array([1.0, 3.0, 0.0]), np.array([1, 0, 0]))
    0.3333333333333333
    >>> average_certified_radius(np.array([1.0, np.inf]), np.array([1, 1]), cap=2.0)
    1.5
    """
    r, c = _arrays(results, correct)
    return float(np.where(c, np.minimum(r, cap), 0.0).mean())


def class_summary(results: ResultTable, radius: float = 0.0) -> dict[str, dict[str, float]]:
    """Per equivalence class (column ``eqclass``): count, radius mean/std over certified-correct
    inputs, certified accuracy at ``radius``, number of infinite radii.

    Examples
    --------
    >>> t = ResultTable({"radius": np.array([1.0, 2.0, 0.0]), "correct": np.array([1, 1, 0]),
    ...                  "eqclass": np.array(["a", "a", "b"], dtype=object)})
    >>> class_summary(t)["a"]["cr_mean"]
    1.5
    """
    if "eqclass" not in results:
        raise ValueError("the results have no 'eqclass' column; certify with a partition")
    r, c = _arrays(results)
    classes = results["eqclass"]
    out: dict[str, dict[str, float]] = {}
    for name in list(dict.fromkeys(classes.tolist())) + ["all"]:
        mask = np.ones(len(r), bool) if name == "all" else classes == name
        rr, cc = r[mask], c[mask]
        good = rr[cc]
        finite = good[np.isfinite(good)]
        out[str(name)] = {
            "n": int(mask.sum()),
            "cr_mean": float(finite.mean()) if finite.size else float("nan"),
            "cr_std": float(finite.std()) if finite.size else float("nan"),
            "n_infinite": int(np.isinf(good).sum()),
            "ca": float(((rr >= radius) & cc).mean()) if mask.any() else float("nan"),
            "acr": average_certified_radius(rr, cc) if mask.any() else 0.0,
        }
    return out


def _cr(s: Mapping[str, float]) -> str:
    if np.isnan(s["cr_mean"]):
        text = "-"
    else:
        text = f"{s['cr_mean']:.3f} ± {s['cr_std']:.3f}"
    if s["n_infinite"]:
        text += f" (+{s['n_infinite']} ∞)"
    return text


def comparison_table(baseline: ResultTable, hierarchy: ResultTable, *, radius: float = 0.0) -> str:
    """Markdown table per equivalence class: certified radius (mean ± std over certified-correct
    inputs; infinite radii counted apart) and certified accuracy at ``radius``, baseline vs.
    hierarchy, as in the paper's Tables IV-VII.

    Both tables must cover the same inputs (same ``idx`` in the same order).

    Examples
    --------
    >>> cls = np.array(["a", "b"], dtype=object)
    >>> b = ResultTable({"idx": np.array([0, 1]), "radius": np.array([0.5, 0.0]),
    ...                  "correct": np.array([1, 0]), "eqclass": cls})
    >>> h = ResultTable({"idx": np.array([0, 1]), "radius": np.array([0.7, 0.2]),
    ...                  "correct": np.array([1, 1]), "eqclass": cls})
    >>> print(comparison_table(b, h))
    | class | n | baseline CR | hierarchy CR | baseline CA | hierarchy CA |
    |---|---|---|---|---|---|
    | a | 1 | 0.500 ± 0.000 | 0.700 ± 0.000 | 100.00% | 100.00% |
    | b | 1 | - | 0.200 ± 0.000 | 0.00% | 100.00% |
    | all | 2 | 0.500 ± 0.000 | 0.450 ± 0.250 | 50.00% | 100.00% |
    """
    if "idx" in baseline and "idx" in hierarchy:
        if not np.array_equal(baseline["idx"], hierarchy["idx"]):
            raise ValueError("baseline and hierarchy results cover different inputs (idx differ)")
    sb, sh = class_summary(baseline, radius), class_summary(hierarchy, radius)
    lines = [
        "| class | n | baseline CR | hierarchy CR | baseline CA | hierarchy CA |",
        "|---|---|---|---|---|---|",
    ]
    for name in sh:
        b, h = sb[name], sh[name]
        lines.append(f"| {name} | {h['n']} | {_cr(b)} | {_cr(h)} | {b['ca']:.2%} | {h['ca']:.2%} |")
    return "\n".join(lines)


def summary_table(
    runs: Mapping[str, ResultTable], radii: Sequence[float] = (0.0, 0.25, 0.5, 0.75, 1.0)
) -> str:
    """Markdown table: certified accuracy at each radius and ACR, one row per run.

    Examples
    --------
    >>> t = ResultTable({"radius": np.array([0.3, 0.9]), "correct": np.array([1, 1])})
    >>> print(summary_table({"flat": t}, radii=[0.0, 0.5]))
    | run | r=0.0 | r=0.5 | ACR |
    |---|---|---|---|
    | flat | 100.00% | 50.00% | 0.600 |
    """
    head = "| run | " + " | ".join(f"r={r}" for r in radii) + " | ACR |"
    lines = [head, "|---|" + "---|" * (len(radii) + 1)]
    for name, table in runs.items():
        acc = certified_accuracy(table, np.asarray(radii, dtype=float))
        cells = " | ".join(f"{a:.2%}" for a in acc)
        lines.append(f"| {name} | {cells} | {average_certified_radius(table):.3f} |")
    return "\n".join(lines)


def compare_radii(baseline: ResultTable, other: ResultTable) -> dict[str, int]:
    """Per input, is ``other``'s certified radius larger, smaller or equal to ``baseline``'s?

    The radius compared is the certified radius of a correct prediction and 0 otherwise (the
    quantity whose mean is the ACR). Both tables must cover the same inputs in the same order.

    Examples
    --------
    >>> b = ResultTable({"idx": np.array([0, 1, 2]), "radius": np.array([0.5, 0.4, 0.0]),
    ...                  "correct": np.array([1, 1, 0])})
    >>> h = ResultTable({"idx": np.array([0, 1, 2]), "radius": np.array([0.7, 0.4, 0.3]),
    ...                  "correct": np.array([1, 0, 1])})
    >>> compare_radii(b, h)
    {'better': 2, 'worse': 1, 'same': 0}
    """
    if not np.array_equal(baseline["idx"], other["idx"]):
        raise ValueError("the two tables cover different inputs (idx differ)")
    rb, cb = _arrays(baseline)
    ro, co = _arrays(other)
    eb, eo = np.where(cb, rb, 0.0), np.where(co, ro, 0.0)
    return {
        "better": int((eo > eb).sum()),
        "worse": int((eo < eb).sum()),
        "same": int((eo == eb).sum()),
    }
