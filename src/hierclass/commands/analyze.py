"""``hierclass analyze``: certified accuracy, ACR, class tables and hierarchy metrics."""

from __future__ import annotations

import argparse
import warnings
from pathlib import Path
from typing import Any

DESCRIPTION = """\
Certified accuracy, ACR and per-class tables from result TSVs (hierclass's, or Cohen et al.'s
certify.py output unchanged).

Give one or more result files (NAME=PATH to label them). Prints a markdown table of the
certified accuracy at --radii and the average certified radius per file, and their certified
information gain (Anani et al. 2024: log K - log |labels of the deepest certified node that
holds the true label|, over log K; a flat run's equals its certified accuracy). For a hierarchy's
file (columns route, true_route, node_radii) it also prints hierarchical precision, recall and
F1, mistake severity (tree distance between true and predicted label), and per-level accuracy
and certified accuracy. With --baseline and --hierarchy it prints the per-equivalence-class
comparison of the paper's Tables IV-VII. --plot writes a certified-accuracy curve (PNG).
"""


def _radius(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not value >= 0:  # also refuses NaN
        raise argparse.ArgumentTypeError(f"a radius is a number >= 0, got {text!r}")
    return value


def add_parser(subparsers: Any) -> None:
    """Register ``analyze`` on the ``hierclass`` command line."""
    p = subparsers.add_parser(
        "analyze",
        help="certified accuracy, ACR, per-class tables and curves from result files",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("results", nargs="*", help="result TSVs, optionally NAME=PATH")
    p.add_argument("--radii", type=_radius, nargs="+", default=[0.0, 0.25, 0.5, 0.75, 1.0])
    p.add_argument("--baseline", type=Path, help="flat baseline TSV for the class table")
    p.add_argument("--hierarchy", type=Path, help="hierarchy TSV for the class table")
    p.add_argument("--radius", type=_radius, default=0.0, help="radius of the class table's CA")
    p.add_argument("--plot", type=Path, help="write a certified-accuracy curve here (PNG)")
    p.add_argument("--out", type=Path, help="also write the markdown here")


def _named(items: list[str]) -> dict[str, Path]:
    """``NAME=PATH`` or ``PATH`` -> {name: path}; an existing file is a path even with a ``=``.

    Unnamed files are named by their stem, with as many parent folders as it takes to tell
    files apart (``a/run.tsv b/run.tsv`` -> ``a/run``, ``b/run``). Two files given one name
    are refused.
    """
    named: list[tuple[str | None, Path]] = []
    for item in items:
        name, sep, path = item.partition("=")
        if sep and name and Path(item).is_file() and Path(path).is_file():
            raise ValueError(
                f"{item!r} is both the file {item} and NAME=PATH naming {path} {name!r}; "
                f"write NAME={item} to read the first, or {name}=./{path} for the second"
            )
        if sep and not Path(item).exists() and not Path(path).exists():
            raise ValueError(f"no result file {item!r}, nor {path!r} (as NAME=PATH)")
        if not sep or Path(item).is_file():
            named.append((None, Path(item)))
        else:
            named.append((name, Path(path)))
    depth = 1
    while True:
        names = [n if n is not None else _short(p, depth) for n, p in named]
        auto = [names[i] for i, (n, _) in enumerate(named) if n is None]
        if len(set(auto)) == len(auto) or depth > max(len(p.parts) for _, p in named):
            break
        depth += 1
    out: dict[str, Path] = {}
    for name, (_, path) in zip(names, named):
        if name in out:
            raise ValueError(f"two result files are named {name!r} ({out[name]} and {path}); "
                             "name them with NAME=PATH")  # fmt: skip
        out[name] = path
    return out


def _short(path: Path, depth: int) -> str:
    """The stem with ``depth - 1`` parent folders (``a/b/run.tsv``, 2 -> ``b/run``)."""
    return "/".join([*path.parent.parts[len(path.parent.parts) - depth + 1 :], path.stem]
                    if depth > 1 else [path.stem])  # fmt: skip


def _read(path: Path, notes: list[str]) -> Any:
    """Read and check one file; what a user should know about it goes to ``notes``."""
    from hierclass.smoothing.analysis.tables import check_results
    from hierclass.smoothing.records.checks import missing_indices
    from hierclass.smoothing.records.tsv import read_results

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        table = read_results(path)
    notes += [str(w.message) for w in caught]
    check_results(table, str(path), first_line=2)
    count, first = missing_indices(table)
    if count:
        span = f"{int(table['idx'].min())}-{int(table['idx'].max())}"
        notes.append(
            f"{path}: {count} of the indices {span} have no row (first: "
            f"{', '.join(map(str, first))}); its numbers count only the {len(table)} rows "
            "it has (an unfinished run?)"
        )
    return table


def run(args: argparse.Namespace) -> int:
    """Run ``hierclass analyze``; returns the exit status (errors are reported by the CLI)."""
    from hierclass.smoothing.analysis.hierarchy_metrics import hierarchy_report
    from hierclass.smoothing.analysis.information_gain import information_gain_table
    from hierclass.smoothing.analysis.tables import comparison_table, summary_table

    named = _named(args.results)
    notes: list[str] = []
    runs = {name: _read(path, notes) for name, path in named.items()}
    baseline = _read(args.baseline, notes) if args.baseline else None
    hierarchy = _read(args.hierarchy, notes) if args.hierarchy else None
    if baseline is not None:
        runs.setdefault("baseline", baseline)
    if hierarchy is not None:
        runs.setdefault("hierarchy", hierarchy)
    if not runs:
        raise ValueError("give result files, or --baseline and --hierarchy")
    parts = ["## Certified accuracy", "", summary_table(runs, args.radii)]
    parts += [
        "",
        "## Certified information gain",
        "",
        "(log K - log |labels of the certified node|) / log K, averaged over inputs; a node "
        "counts when it holds the true label (Anani et al. 2024).",
        "",
        information_gain_table(runs, args.radii),
    ]
    if notes:
        for note in dict.fromkeys(notes):
            parts += ["", f"> **Note.** {note}"]
    for name, table in runs.items():
        if "node_radii" in table and "route" in table:
            parts += ["", f"## Hierarchy metrics: {name}", "", hierarchy_report(table, args.radii)]
    if baseline is not None and hierarchy is not None:
        table = comparison_table(baseline, hierarchy, radius=args.radius)
        parts += ["", f"## Per equivalence class (CA at radius {args.radius})", "", table]
    text = "\n".join(parts) + "\n"
    print(text, end="")
    if args.out:
        args.out.write_text(text)
    if args.plot:
        from hierclass.plotting import plot_certified_accuracy

        plot_certified_accuracy(runs, args.plot)
    return 0
