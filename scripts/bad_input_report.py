"""Run the bad-input battery (tests/bad_inputs) and count how each bad input was received.

Usage::

    python scripts/bad_input_report.py            # this checkout's src/
    python scripts/bad_input_report.py --src /path/to/other/checkout/src   # e.g. before a fix
    python scripts/bad_input_report.py -k persistence --list

Each test of the battery feeds one bad input. It counts as

* **clear** when it passes: a ``ValueError``/``TypeError`` (or, for the CLI, one line on
  stderr and a non-zero exit) naming what was expected and what arrived;
* **silent** when it fails with ``SilentAcceptance``: the input was accepted;
* **obscure** when it fails any other way: another exception type, a vague message, a
  traceback (``ObscureError``), or an exception escaping the test.

Tests marked ``xfail`` are counted by what actually happened. Prints one row per file and the
totals; ``--list`` also names every test that was not clear. Exit status 0 when every input
got a clear error, 1 otherwise.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter, defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BATTERY = ROOT / "tests" / "bad_inputs"


class Tally:
    """A pytest plugin recording one outcome per battery test."""

    def __init__(self) -> None:
        self.outcomes: dict[str, str] = {}
        self.details: dict[str, str] = {}

    def pytest_runtest_logreport(self, report) -> None:  # noqa: ANN001 - pytest hook
        if report.when == "call" or (report.when == "setup" and not report.passed):
            if report.when == "setup" and report.skipped and not hasattr(report, "wasxfail"):
                self.outcomes[report.nodeid] = "skipped"
                return
            self.outcomes[report.nodeid] = classify(report)
            if self.outcomes[report.nodeid] != "clear":
                text = str(report.longrepr) if report.longrepr else ""
                lines = [ln for ln in text.splitlines() if ln.startswith("E ")]
                self.details[report.nodeid] = (lines[-1] if lines else text[-200:]).strip()


def classify(report) -> str:  # noqa: ANN001 - a pytest TestReport
    """clear / silent / obscure for one test report."""
    failed = report.failed or (report.skipped and hasattr(report, "wasxfail"))
    if not failed:
        return "clear"
    text = str(report.longrepr) if report.longrepr else ""
    return "silent" if "SilentAcceptance" in text else "obscure"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--src", type=Path, default=ROOT / "src", help="hierclass source tree")
    parser.add_argument("-k", default=None, help="pytest -k expression (a subset)")
    parser.add_argument("--list", action="store_true", help="name every test not clear")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(args.src.resolve()))
    import pytest

    tally = Tally()
    pytest_args = [
        str(BATTERY),
        "-q",
        "-p",
        "no:cacheprovider",
        "--no-header",
        "-rN",
        "--tb=line",
        "-o",
        "addopts=--import-mode=importlib",
    ]
    if args.k:
        pytest_args += ["-k", args.k]
    pytest.main(pytest_args, plugins=[tally])

    import hierclass

    per_file: dict[str, Counter] = defaultdict(Counter)
    for nodeid, outcome in tally.outcomes.items():
        per_file[nodeid.split("::")[0].rsplit("/", 1)[-1]][outcome] += 1
    total: Counter = Counter()
    print(f"\nbad-input battery against {Path(hierclass.__file__).parent}")
    print(f"{'file':<28} {'tried':>6} {'clear':>6} {'silent':>7} {'obscure':>8}")
    for name in sorted(per_file):
        c = per_file[name]
        tried = c["clear"] + c["silent"] + c["obscure"]
        total.update(c)
        print(f"{name:<28} {tried:>6} {c['clear']:>6} {c['silent']:>7} {c['obscure']:>8}")
    tried = total["clear"] + total["silent"] + total["obscure"]
    print(
        f"{'total':<28} {tried:>6} {total['clear']:>6} {total['silent']:>7} {total['obscure']:>8}"
    )
    if total["skipped"]:
        print(f"({total['skipped']} skipped, not counted)")
    if args.list:
        for nodeid, detail in sorted(tally.details.items()):
            print(f"{tally.outcomes[nodeid]:>8}  {nodeid}\n          {detail[:200]}")
    return 0 if tried and total["silent"] == total["obscure"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
