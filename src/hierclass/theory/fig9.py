"""Fig. 9 of the paper: accuracy of the robust, meta-feature and standard rules in the
Tsipras setting as the number of protected features grows (table, markdown, plot)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ._checks import _check_int, _check_pos, _check_prob
from .tsipras import (
    linear_rule_accuracy,
    meta_feature_accuracy,
    robust_rule_accuracy,
    standard_rule,
    theorem1_bound,
)

FIG9_COLUMNS = (
    "eta",
    "k",
    "robust_adv",
    "meta_feature",
    "standard_nat",
    "standard_adv",
    "bound_no_invariant",
)


def fig9_table(
    d: int = 200,
    etas: Sequence[float] = (0.1, 0.2, 0.3, 0.5, 1.0),
    ks: Sequence[int] | None = None,
    p: float = 0.95,
) -> list[dict[str, float]]:
    """Fig. 9: adversarial accuracy against ``k``, the number of protected weak features.

    The adversary is ``l_inf``-bounded with ``eps = 2 * eta`` on the weak features it may
    touch (all but the first ``k``). Columns, all closed forms:

    - ``robust_adv``: the robust-and-accurate rule (:func:`robust_rule`); its adversarial
      accuracy equals its natural accuracy.
    - ``meta_feature``: the meta-feature alone, ``Phi(sqrt(k) * eta)`` (``nan`` at k = 0).
    - ``standard_nat`` / ``standard_adv``: the naturally optimal rule (:func:`standard_rule`)
      without attack and under the same restricted attack.
    - ``bound_no_invariant``: Theorem 1's cap on adversarial accuracy for ``standard_nat`` with the
      robust feature alone (``p``), i.e. without the invariant.

    The meta-feature alone exceeds 90% once ``k >= (1.2816 / eta)**2``, so *small* ``eta``
    needs *more* protected features (``eta = 0.1``: 165; ``eta = 1``: 2). The paper's remark
    that small ``eta`` exceeds 90% with ``k << d`` reads the other way round; with the robust
    feature included (``p = 0.95``) every curve starts at ``p`` and only rises.

    Parameters
    ----------
    d : int, default 200
    etas : sequence of float, default (0.1, 0.2, 0.3, 0.5, 1.0)
        Values in (0, 1].
    ks : sequence of int, optional
        Protected-feature counts in 0..d; default 0, 1, 2, 5, 10, 20, ..., d.
    p : float, default 0.95

    Returns
    -------
    list of dict with keys :data:`FIG9_COLUMNS`

    Examples
    --------
    >>> rows = fig9_table(d=200, etas=(1.0,), ks=(0, 9))
    >>> [round(r["robust_adv"], 3) for r in rows]
    [0.95, 0.999]
    """
    d = _check_int(d, "d", 1)
    p = _check_prob(p, "p")
    if ks is None:
        ks = sorted({0, 1, 2, 5, *range(10, d + 1, 10), d})
    ks = [_check_int(k, "k", 0, d) for k in ks]
    rows = []
    for eta in etas:
        eta = _check_pos(eta, "eta")
        if eta > 1.0:
            raise ValueError(f"Fig. 9 uses eta <= 1, got {eta}")
        standard = standard_rule(d, p, eta)
        nat = linear_rule_accuracy(standard, p, eta)
        for k in ks:
            rows.append(
                {
                    "eta": eta,
                    "k": k,
                    "robust_adv": robust_rule_accuracy(k, p, eta),
                    "meta_feature": meta_feature_accuracy(k, eta) if k else float("nan"),
                    "standard_nat": nat,
                    "standard_adv": linear_rule_accuracy(
                        standard, p, eta, eps=2 * eta, protected_k=k
                    ),
                    "bound_no_invariant": theorem1_bound(nat, p),
                }
            )
    return rows


def fig9_markdown(rows: Sequence[dict[str, float]]) -> str:
    """Render :func:`fig9_table` rows as a markdown table.

    Examples
    --------
    >>> print(fig9_markdown(fig9_table(d=10, etas=(1.0,), ks=(1,))).splitlines()[0])
    | eta | k | robust_adv | meta_feature | standard_nat | standard_adv | bound_no_invariant |
    """
    lines = ["| " + " | ".join(FIG9_COLUMNS) + " |", "|" + "---|" * len(FIG9_COLUMNS)]
    for row in rows:
        cells = [f"{row['eta']:g}", str(row["k"])]
        cells += [f"{row[c]:.4f}" for c in FIG9_COLUMNS[2:]]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot_fig9(rows: Sequence[dict[str, float]], path: Any = None, *, ax: Any = None) -> Any:
    """Plot Fig. 9 (adversarial accuracy vs ``k``, one line per ``eta``); save if ``path``.

    Solid lines: the robust-and-accurate rule; dotted: the standard rule under the same
    restricted attack.

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> fig = plot_fig9(fig9_table(d=20, etas=(0.5,), ks=(0, 5, 20)))
    >>> len(fig.axes)
    1
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    if ax is None:
        fig, ax = plt.subplots(figsize=(6, 4))
    else:
        fig = ax.figure
    for eta in sorted({r["eta"] for r in rows}):
        sel = sorted((r for r in rows if r["eta"] == eta), key=lambda r: r["k"])
        ks = [r["k"] for r in sel]
        (line,) = ax.plot(ks, [r["robust_adv"] for r in sel], label=f"eta = {eta:g}")
        ax.plot(ks, [r["standard_adv"] for r in sel], ":", color=line.get_color())
    ax.set_xlabel("k (weak features the adversary may not touch)")
    ax.set_ylabel("adversarial accuracy")
    ax.set_ylim(0, 1.02)
    ax.set_title("Tsipras setting: robust rule (solid) vs standard rule (dotted)")
    ax.legend(loc="lower right")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=120)
        plt.close(fig)
    return fig
