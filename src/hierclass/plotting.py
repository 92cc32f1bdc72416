"""Figures: certified-accuracy curves and radius box plots (matplotlib, Agg backend).

Nothing here opens a window: figures are written to files, so plots work on servers and in
tests. Functions return the ``Figure`` for notebooks that want to show or tweak it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["plot_certified_accuracy", "plot_radius_boxplot"]


def _pyplot():
    import matplotlib

    if matplotlib.get_backend().lower() not in ("agg", "module://matplotlib_inline.backend_inline"):
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_certified_accuracy(
    runs: Mapping[str, Any],
    path: str | Path | None = None,
    *,
    max_radius: float | None = None,
    title: str = "Certified accuracy",
) -> Any:
    """Certified accuracy against radius, one line per run (Cohen et al.'s Fig. 1 style).

    Parameters
    ----------
    runs : mapping
        Name -> :class:`~hierclass.smoothing.records.tsv.ResultTable` (or ``(radius, correct)``).
    path : path, optional
        Where to write the PNG (parent folders are created).
    max_radius : float, optional
        Right end of the x axis (default: the largest finite certified radius).
    title : str
        Figure title.

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> import tempfile, os
    >>> fig = plot_certified_accuracy({"flat": (np.array([0.2, 0.8]), np.array([1, 1]))},
    ...                               os.path.join(tempfile.mkdtemp(), "ca.png"))
    >>> fig.axes[0].get_xlabel()
    'radius (L2)'
    """
    from hierclass.smoothing.analysis.tables import certified_accuracy_curve

    plt = _pyplot()
    curves = {}
    for name, run in runs.items():
        radius, correct = run if isinstance(run, tuple) else (run["radius"], run["correct"])
        curves[name] = (np.asarray(radius, float), np.asarray(correct))
    if max_radius is None:
        finite = [r[np.isfinite(r) & (c == 1)] for r, c in curves.values()]
        top = max((float(f.max()) for f in finite if f.size), default=1.0)
        max_radius = top * 1.05 if top > 0 else 1.0
    fig, ax = plt.subplots(figsize=(5, 3.5))
    for name, (radius, correct) in curves.items():
        grid, acc = certified_accuracy_curve(radius, correct, max_radius=max_radius, num=300)
        ax.plot(grid, acc, label=name)
    ax.set_xlabel("radius (L2)")
    ax.set_ylabel("certified accuracy")
    ax.set_ylim(0, 1)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    if path is not None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=120)
        plt.close(fig)
    return fig


def plot_radius_boxplot(
    groups: Mapping[Any, Sequence[float]],
    path: str | Path | None = None,
    *,
    xlabel: str = "label subset size",
    title: str = "Certified radius by label-subset size",
) -> Any:
    """Box plot of certified radii per group (the paper's Fig. 4: radius vs. subset size).

    Infinite radii (one-label subsets) are left out of the boxes and counted in the tick label.

    Examples
    --------
    >>> fig = plot_radius_boxplot({2: [0.5, 0.7], 5: [0.3, 0.4]})
    >>> [t.get_text() for t in fig.axes[0].get_xticklabels()]
    ['2', '5']
    """
    plt = _pyplot()
    names, data = [], []
    for key, values in groups.items():
        v = np.asarray(list(values), float)
        finite = v[np.isfinite(v)]
        n_inf = int(np.isinf(v).sum())
        names.append(f"{key}" + (f"\n(+{n_inf} ∞)" if n_inf else ""))
        data.append(finite)
    fig, ax = plt.subplots(figsize=(5, 3.5))
    ax.boxplot(data, showmeans=True)
    ax.set_xticks(range(1, len(names) + 1), names)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("certified radius (L2)")
    ax.set_title(title)
    ax.grid(alpha=0.3, axis="y")
    fig.tight_layout()
    if path is not None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=120)
        plt.close(fig)
    return fig
