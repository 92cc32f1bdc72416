"""``hierclass analyze``: certified accuracy, ACR and per-class tables from result TSVs.

Give one or more result files (``NAME=PATH`` to label them). Prints a markdown table of the
certified accuracy at ``--radii`` and the average certified radius per file; with
``--baseline`` and ``--hierarchy`` it prints the per-equivalence-class comparison of the
paper's Tables IV-VII. ``--plot`` writes a certified-accuracy curve (PNG).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any


def add_parser(subparsers: Any) -> None:
    """Register ``analyze`` on the ``hierclass`` command line."""
    p = subparsers.add_parser(
        "analyze",
        help="certified accuracy, ACR, per-class tables and curves from result files",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("results", nargs="*", help="result TSVs, optionally NAME=PATH")
    p.add_argument("--radii", type=float, nargs="+", default=[0.0, 0.25, 0.5, 0.75, 1.0])
    p.add_argument("--baseline", type=Path, help="flat baseline TSV for the class table")
    p.add_argument("--hierarchy", type=Path, help="hierarchy TSV for the class table")
    p.add_argument("--radius", type=float, default=0.0, help="radius of the class table's CA")
    p.add_argument("--plot", type=Path, help="write a certified-accuracy curve here (PNG)")
    p.add_argument("--out", type=Path, help="also write the markdown here")


def _named(items: list[str]) -> dict[str, Path]:
    out = {}
    for item in items:
        name, sep, path = item.partition("=")
        if not sep:
            name, path = Path(item).stem, item
        out[name] = Path(path)
    return out


def run(args: argparse.Namespace) -> int:
    """Run ``hierclass analyze``; returns the exit status."""
    from hierclass.smoothing.analysis import comparison_table, summary_table
    from hierclass.smoothing.results import read_results

    try:
        runs = {name: read_results(path) for name, path in _named(args.results).items()}
        if args.baseline:
            runs.setdefault("baseline", read_results(args.baseline))
        if args.hierarchy:
            runs.setdefault("hierarchy", read_results(args.hierarchy))
        if not runs:
            raise ValueError("give result files, or --baseline and --hierarchy")
        parts = ["## Certified accuracy", "", summary_table(runs, args.radii)]
        if args.baseline and args.hierarchy:
            table = comparison_table(
                read_results(args.baseline), read_results(args.hierarchy), radius=args.radius
            )
            parts += ["", f"## Per equivalence class (CA at radius {args.radius})", "", table]
        text = "\n".join(parts) + "\n"
        print(text, end="")
        if args.out:
            args.out.write_text(text)
        if args.plot:
            from hierclass.plotting import plot_certified_accuracy

            plot_certified_accuracy(runs, args.plot)
    except (ValueError, FileNotFoundError, KeyError) as err:
        print(f"hierclass analyze: error: {err}", file=sys.stderr)
        return 2
    return 0
