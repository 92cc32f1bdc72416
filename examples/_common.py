"""Shared helpers of the example scripts: arguments, output files, certificate summaries.

Not part of the library: the examples import it as a sibling module (``python
examples/<script>.py`` puts ``examples/`` on ``sys.path``).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
import torch

matplotlib.use("Agg")  # examples write PNGs; never open a window

import matplotlib.pyplot as plt  # noqa: E402


def make_parser(description: str, name: str) -> argparse.ArgumentParser:
    """The options every example takes: ``--quick``, ``--out``, ``--seed``, ``--device``."""
    parser = argparse.ArgumentParser(
        description=description, formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="smoke run with tiny data and models (under a minute on 2 CPU cores); its numbers "
        "only show that the pipeline runs",
    )
    parser.add_argument(
        "--out", type=Path, default=Path("runs") / name, help="folder for the table and figures"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of data, training and noise")
    parser.add_argument(
        "--device",
        default="cuda" if torch.cuda.is_available() else "cpu",
        help="torch device for training and certification",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress output")
    return parser


class Run:
    """Output folder, timing and progress messages of one example run."""

    def __init__(self, out: Path, quiet: bool = False) -> None:
        self.out = Path(out)
        self.out.mkdir(parents=True, exist_ok=True)
        self.quiet = quiet
        self.verbose = not quiet and sys.stderr.isatty()
        self.start = time.perf_counter()
        self.written: list[Path] = []

    def log(self, message: str) -> None:
        """A progress line on stderr (suppressed by ``--quiet``)."""
        if not self.quiet:
            elapsed = time.perf_counter() - self.start
            print(f"[{elapsed:7.1f}s] {message}", file=sys.stderr, flush=True)

    def write_text(self, name: str, text: str) -> Path:
        path = self.out / name
        path.write_text(text if text.endswith("\n") else text + "\n", encoding="utf-8")
        self.written.append(path)
        return path

    def save_figure(self, fig: Any, name: str) -> Path:
        path = self.out / name
        fig.savefig(path, dpi=120, bbox_inches="tight")
        plt.close(fig)
        self.written.append(path)
        return path

    def finish(self) -> None:
        """Print where every output went (stdout, one line each)."""
        elapsed = time.perf_counter() - self.start
        print(f"finished in {elapsed:.1f}s; wrote:")
        for path in self.written:
            print(f"  {path}")


def override(
    settings: dict[str, Any],
    args: argparse.Namespace,
    keys: Sequence[str],
    tuple_keys: Sequence[str] = (),
) -> dict[str, Any]:
    """Apply the command-line values the user gave (not None; tuples when non-empty)."""
    for key in keys:
        value = getattr(args, key)
        if value is not None:
            settings[key] = value
    for key in tuple_keys:
        value = getattr(args, key)
        if value:
            settings[key] = tuple(value)
    return settings


def markdown_table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """A GitHub-flavoured markdown table."""
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    for row in rows:
        lines.append("| " + " | ".join(str(c) for c in row) + " |")
    return "\n".join(lines)


def command_line() -> str:
    """The command that produced this run, for the report."""
    args = " ".join(sys.argv[1:])
    return f"python examples/{Path(sys.argv[0]).name} {args}".strip()


def settings_block(settings: dict[str, Any]) -> str:
    """Markdown bullet list of the run's settings."""
    return "\n".join(f"- {k}: {v}" for k, v in settings.items())


def summarise(correct: np.ndarray, radius: np.ndarray) -> tuple[float, float, float]:
    """``(mean CR, std CR, CA)`` as in Tables IV-VII.

    ``correct`` marks samples whose certified prediction is right (route and label; abstain
    counts as wrong). CR statistics are over those samples; CA is the fraction of them (the
    certified accuracy at radius 0).
    """
    correct = np.asarray(correct, dtype=bool)
    radius = np.asarray(radius, dtype=float)
    if correct.size == 0:
        return float("nan"), float("nan"), float("nan")
    r = radius[correct]
    mean = float(r.mean()) if r.size else float("nan")
    std = float(r.std()) if r.size else float("nan")
    return mean, std, float(correct.mean())


def fmt_cr(mean: float, std: float, digits: int = 3) -> str:
    """``mean ± std``."""
    if np.isnan(mean):
        return "-"
    return f"{mean:.{digits}f} ± {std:.{digits}f}"


def fmt_pct(value: float) -> str:
    return "-" if np.isnan(value) else f"{100 * value:.2f}%"


def seed_everything(seed: int) -> None:
    """Seed torch's global generator (model initialisation uses it; data use their own seeds)."""
    torch.manual_seed(seed)


def limit_threads() -> None:
    """Keep BLAS/torch threads to the cores the machine has (shared CI machines)."""
    cores = os.cpu_count() or 1
    torch.set_num_threads(max(1, min(cores, torch.get_num_threads())))
