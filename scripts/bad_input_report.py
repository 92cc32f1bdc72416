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
totals, then one row per surface of issue 24 (``SURFACES``: each names the tests that feed
its bad inputs, a few of them outside the battery, where a failure of a "wrong number" or
"surprise" surface counts as silent); ``--list`` also names every test that was not clear.
Exit status 0 when every input got a clear error and every surface has a case, 1 otherwise.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter, defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BATTERY = ROOT / "tests" / "bad_inputs"

_R = "tests/bad_inputs/test_result_files.py::"
_C = "tests/bad_inputs/test_cli.py::"
_P = "tests/bad_inputs/test_persistence.py::"

#: Issue 24's surfaces: (section, surface, test node ids; a trailing ``[`` or ``*`` matches
#: every parametrisation). Each test is a real call of the library or of ``hierclass``.
SURFACES: list[tuple[str, str, tuple[str, ...]]] = [
    ("wrong number", "grid radii stored below the grid (0.7 as 0.699999)", (
        "tests/smoothing/test_grid_radii.py::*",)),
    ("wrong number", "analyze: correct contradicting predict/label", (
        _R + "test_abstention_marked_correct", _R + "test_wrong_prediction_marked_correct",
        _R + "test_right_prediction_marked_wrong")),
    ("wrong number", "analyze: last line without newline, cut row", (
        _R + "test_last_line_without_newline_is_read",
        _R + "test_cut_row_is_left_out_with_a_note")),
    ("wrong number", "analyze: two files sharing a base name / a name", (
        _R + "test_files_sharing_a_base_name_are_both_shown",
        _R + "test_two_files_given_one_name")),
    ("wrong number", "analyze: route outside the hierarchy, label in two classes", (
        _R + "test_route_outside_the_hierarchy", _R + "test_label_in_two_classes",
        _R + "test_node_radii_not_on_the_route")),
    ("wrong number", "analyze: fewer rows than the idx range", (
        _R + "test_gap_in_the_idx_range_gets_a_word",)),
    ("wrong number", "API pages: grouped numpydoc lines", (
        "tests/docs/test_docstrings.py::test_grouped_entry_detector",
        "tests/docs/test_docstrings.py::test_no_grouped_numpydoc_entries")),
    ("wrong number", "evaluate_accuracy, drop_last, '01', misspelt modality key", (
        "tests/bad_inputs/test_silent_inputs.py::*",)),
    ("wrong number", "16-bit PNGs clipped by the default loader", (
        "tests/data/test_images.py::test_sixteen_bit_png_keeps_values_above_255",
        "tests/data/test_images.py::test_sixteen_bit_values_survive_a_resize")),
    ("wrong number", "--flat-out on a flat model", (
        _C + "test_flat_out_on_a_flat_model_is_refused",)),
    ("surprise", "bfloat16 on a CPU without native bf16: a warning", (
        "tests/smoothing/test_amp_warning.py::*",)),
    ("obscure", "tampered saved-model indices (at load, naming the file)", (
        _P + "test_router_model_index_out_of_range[", _P + "test_leaf_model_index_out_of_range",
        _P + "test_model_entry_index_mismatch")),
    ("obscure", "empty imagefolder: path", (
        _C + "test_empty_imagefolder_path_does_not_scan_the_working_directory",)),
    ("obscure", "Dataset.classes = 5", (_C + "test_a_factory_data_set_with_a_number_for_classes",)),
    ("obscure", "import-time error in a factory module", (
        _C + "test_a_factory_that_fails_on_import_is_one_line",)),
    ("obscure", "idx 10**30 in a TSV", (
        _R + "test_huge_idx", _R + "test_huge_integer_read_by_the_tsv_reader[")),
    ("obscure", "a file named x=y.tsv", (
        _R + "test_file_name_with_equals_sign_is_a_path",
        _R + "test_file_name_with_equals_sign_and_the_other_reading_both_exist",
        _R + "test_missing_file_with_equals_sign_names_what_was_typed")),
    ("obscure", "a bad node_radii value (file and line)", (
        _R + "test_bad_node_radius_value_names_file_and_line",)),
    ("obscure", "radii=None reported as [nan]", (
        _R + "test_radii_none[", _R + "test_radii_none_in_the_analysis_functions[")),
    ("obscure", "PIL decompression bomb as a traceback", (
        _C + "test_decompression_bomb_in_an_imagefolder_is_one_line",)),
    ("obscure", "class count from ImageFolder folders, not the model", (
        _C + "test_imagefolder_with_more_class_folders_than_the_model_has_labels",)),
    ("obscure", "check_count vs positive_int: one type for one mistake", (
        "tests/bad_inputs/test_smoothing.py::test_check_count_and_positive_int_answer_alike[",)),
    ("security", "a link at OUTFILE.shard0of1, foreign content echoed", (
        "tests/bad_inputs/test_output_links.py::*",)),
]  # fmt: skip


def _matches(nodeid: str, pattern: str) -> bool:
    if pattern.endswith("*"):
        return nodeid.startswith(pattern[:-1])
    if pattern.endswith("["):
        return nodeid.startswith(pattern)
    return nodeid == pattern


def _extra_paths() -> list[str]:
    """The test files outside the battery that SURFACES names."""
    files = {pat.split("::")[0] for _, _, pats in SURFACES for pat in pats}
    return sorted(str(ROOT / f) for f in files if not f.startswith("tests/bad_inputs/"))


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
    parser.add_argument("--battery-only", action="store_true", help="leave out issue 24's surfaces")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(args.src.resolve()))
    import pytest

    tally = Tally()
    pytest_args = [
        str(BATTERY),
        *([] if args.battery_only else _extra_paths()),
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
        if not nodeid.startswith("tests/bad_inputs/"):
            continue
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
    uncovered = [] if args.battery_only else surface_table(tally.outcomes)
    if args.list:
        for nodeid, detail in sorted(tally.details.items()):
            print(f"{tally.outcomes[nodeid]:>8}  {nodeid}\n          {detail[:200]}")
    ok = tried and total["silent"] == total["obscure"] == 0 and not uncovered
    return 0 if ok else 1


def surface_table(outcomes: dict[str, str]) -> list[str]:
    """Print issue 24's surfaces as rows of tried/clear/silent/obscure; return those with no
    case (a renamed or lost test)."""
    print("\nissue 24, by surface")
    head = f"{'section':<13} {'surface':<58} {'tried':>6} {'clear':>6} {'silent':>7} {'obscure':>8}"
    print(head)
    total: Counter = Counter()
    uncovered = []
    for section, surface, patterns in SURFACES:
        c: Counter = Counter()
        for nodeid, outcome in outcomes.items():
            if outcome == "skipped" or not any(_matches(nodeid, p) for p in patterns):
                continue
            outside = not nodeid.startswith("tests/bad_inputs/")
            if outcome == "obscure" and outside and section in ("wrong number", "surprise"):
                outcome = "silent"  # a failed check of a number or a warning: it got through
            c[outcome] += 1
        tried = c["clear"] + c["silent"] + c["obscure"]
        if not tried:
            uncovered.append(surface)
        total.update(c)
        print(f"{section:<13} {surface[:58]:<58} {tried:>6} {c['clear']:>6} {c['silent']:>7} "
              f"{c['obscure']:>8}{'  NO CASE' if not tried else ''}")  # fmt: skip
    tried = total["clear"] + total["silent"] + total["obscure"]
    label = f"{len(SURFACES)} surfaces"
    print(f"{'total':<13} {label:<58} {tried:>6} {total['clear']:>6} {total['silent']:>7} "
          f"{total['obscure']:>8}")  # fmt: skip
    return uncovered


if __name__ == "__main__":
    sys.exit(main())
