"""Shared parts of the example scripts: options, the run's output folder, summaries, figures.

Not part of the library: the examples import it as a sibling module (``python
examples/<script>.py`` puts ``examples/`` on ``sys.path``; each script inserts it too, so the
tests can load a script by path). Every example writes ``results.md`` (and ``<script>.png``
for its figure) to ``--out`` and prints where they went.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
import torch

matplotlib.use("Agg")  # examples write PNGs; never open a window

import matplotlib.pyplot as plt  # noqa: E402

from hierclass.smoothing.analysis.tables import class_summary  # noqa: E402
from hierclass.smoothing.records.tsv import ResultTable  # noqa: E402

# Size options several examples share: ``--<name>`` overrides the script's default (full or
# ``--quick``) only when given, so each is declared with ``default=None``.
_SIZE_OPTIONS: dict[str, dict[str, Any]] = {
    "n_train": dict(type=int, help="training samples used"),
    "n_test": dict(type=int, help="test samples"),
    "epochs": dict(type=int, help="training epochs"),
    "n": dict(type=int, help="Monte-Carlo samples per input"),
    "sigmas": dict(type=float, nargs="+", help="noise levels sigma"),
    "channels": dict(type=int, nargs=3, help="widths of the small CNN's three convolutions"),
}


def make_parser(description: str, name: str, device: bool = True) -> argparse.ArgumentParser:
    """The options every example takes: ``--quick``, ``--out``, ``--seed``, ``--quiet``,
    ``--threads`` and (unless ``device=False``, for a script that runs only on the CPU)
    ``--device``. ``name`` is the script's name (default output folder, figure name)."""
    parser = argparse.ArgumentParser(
        description=description, formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    parser.set_defaults(example_name=name)
    parser.add_argument(
        "--quick",
        action="store_true",
        help="smoke run with tiny data and models (about a minute on 2 CPU cores); its numbers "
        "only show that the pipeline runs",
    )
    parser.add_argument(
        "--out", type=Path, default=Path("runs") / name, help="folder for results.md and figures"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of data, training and noise")
    if device:
        parser.add_argument(
            "--device",
            default="cuda" if torch.cuda.is_available() else "cpu",
            help="torch device for training and certification",
        )
    parser.add_argument("--quiet", action="store_true", help="no progress output")
    parser.add_argument(
        "--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)"
    )
    return parser


def add_size_options(parser: argparse.ArgumentParser, **helps: str | None) -> None:
    """Add the shared size options named in ``helps`` (``n_test="test signs per class"``;
    ``None`` keeps the generic help). :func:`override` applies the ones the user gave."""
    for key, help_text in helps.items():
        spec = dict(_SIZE_OPTIONS[key])
        spec["help"] = help_text or spec["help"]
        parser.add_argument("--" + key.replace("_", "-"), default=None, **spec)


def override(
    settings: dict[str, Any],
    args: argparse.Namespace,
    keys: Sequence[str] = (),
    tuple_keys: Sequence[str] = (),
) -> dict[str, Any]:
    """Apply the command-line values the user gave: the shared size options present in
    ``args`` and the ``keys`` named (when not None); ``tuple_keys`` become tuples."""
    shared = [k for k in _SIZE_OPTIONS if k in vars(args)]
    for key in dict.fromkeys([*shared, *keys, *tuple_keys]):
        value = getattr(args, key)
        if value is None:
            continue
        nargs = key in tuple_keys or _SIZE_OPTIONS.get(key, {}).get("nargs") is not None
        settings[key] = tuple(value) if nargs else value
    return settings


class Run:
    """Output folder, timing, threads and progress messages of one example run."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.name = args.example_name
        self.out = Path(args.out)
        self.out.mkdir(parents=True, exist_ok=True)
        self.quiet = args.quiet
        # Progress bars only on a terminal: a redirected log gets the one-line messages.
        self.verbose = not args.quiet and sys.stderr.isatty()
        if args.threads is not None:
            torch.set_num_threads(args.threads)
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

    def write_results(self, parts: Sequence[str] | str) -> Path:
        """``results.md``: the run's tables (lines or one text)."""
        return self.write_text("results.md", parts if isinstance(parts, str) else "\n".join(parts))

    def save_figure(self, fig: Any) -> Path:
        """``<script>.png``."""
        path = self.out / f"{self.name}.png"
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


# ---------------------------------------------------------------------------- text
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


def header(title: str, settings: Mapping[str, Any], *notes: str) -> list[str]:
    """The top of ``results.md``: title, command, settings, notes (one paragraph each)."""
    lines = [f"# {title}", "", f"Command: `{command_line()}`"]
    if settings:
        lines += ["", settings_block(settings)]
    for note in notes:
        lines += ["", note]
    return lines


def paper_robustness_table(paper: Mapping[str, Sequence[str]]) -> str:
    """The paper's Table I or II: ``{model: (natural, adv, budget)}`` as markdown."""
    rows = [(k, *v) for k, v in paper.items()]
    return markdown_table(["Model", "Natural (%)", "Adv (%)", "Budget (%)"], rows)


def settings_block(settings: Mapping[str, Any]) -> str:
    """Markdown bullet list of the run's settings."""
    return "\n".join(f"- {k}: {v}" for k, v in settings.items())


def summary(results: ResultTable) -> dict[str, float]:
    """The library's summary of a whole results table (:func:`class_summary`, row ``all``):
    ``cr_mean``/``cr_std`` over certified-correct inputs, ``ca`` at radius 0, ``n_infinite``."""
    return class_summary(results)["all"]


def fmt_cr(s: Mapping[str, float], digits: int = 3) -> str:
    """``mean ± std`` of a :func:`summary` (plus the count of infinite radii, if any)."""
    text = (
        "-" if np.isnan(s["cr_mean"]) else f"{s['cr_mean']:.{digits}f} ± {s['cr_std']:.{digits}f}"
    )
    return text + (f" (+{s['n_infinite']} ∞)" if s.get("n_infinite") else "")


def fmt_pct(value: float) -> str:
    return "-" if np.isnan(value) else f"{100 * value:.2f}%"


def seed_everything(seed: int) -> None:
    """Seed torch's global generator (model initialisation uses it; data use their own seeds)."""
    torch.manual_seed(seed)


def start(args: argparse.Namespace) -> tuple[Run, torch.device]:
    """The run (output folder, threads) and the device; seeds torch's global generator."""
    run = Run(args)
    seed_everything(args.seed)
    return run, torch.device(getattr(args, "device", "cpu"))


# ---------------------------------------------------------------------------- figures
def figure(ncols: int, title: str | None = None, *, width: float = 5.0, height: float = 4.0):
    """``(fig, axes)``: one row of ``ncols`` panels; constrained layout keeps the figure
    title clear of the panel titles."""
    fig, axes = plt.subplots(
        1, ncols, figsize=(width * ncols, height), squeeze=False, layout="constrained"
    )
    if title:
        fig.suptitle(title)
    return fig, list(axes[0])


def say_empty(ax: Any, message: str) -> None:
    """Write ``message`` in a panel that has no data to draw (never a blank panel)."""
    ax.text(0.5, 0.5, message, ha="center", va="center", wrap=True, transform=ax.transAxes,
            fontsize=9, color="0.3")  # fmt: skip
    ax.set_xticks([])
    ax.set_yticks([])


def robustness_bars(ax: Any, reports: Mapping[str, Any]) -> None:
    """Table I/II as grouped bars: natural, worst-case and budgeted accuracy per model."""
    width = 0.8 / max(len(reports), 1)
    for i, (name, r) in enumerate(reports.items()):
        values = [100 * r.natural_accuracy, 100 * r.adversarial_accuracy,
                  100 * r.budgeted_accuracy]  # fmt: skip
        bars = ax.bar([j + (i + 0.5) * width - 0.4 for j in range(3)], values, width, label=name)
        ax.bar_label(bars, fmt="%.1f", fontsize=8)
    ax.set_xticks(range(3), ["Natural", "Adv (worst case)", "Budget"])
    ax.set_ylabel("accuracy (%)")
    ax.set_ylim(0, 105)
    ax.legend()


def train_tree_and_baseline(h: Any, baseline: Any, x: Any, y: Any, train: Any) -> None:
    """``train(model, x, y)`` on the root, each leaf (on its own labels, in order) and then
    the flat baseline, as Tables I and II train them."""
    train(h.node_at(()).model, *h.node_dataset(x, y, ()))
    for i in range(len(h.partition.classes)):
        train(h.node_at((i,)).model, *h.node_dataset(x, y, (i,)))
    train(baseline, x, y)
