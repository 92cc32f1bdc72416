import subprocess
import sys

import pytest

from hierclass.cli import build_parser, main


def test_cli_lists_its_subcommands_and_needs_one(capsys):
    assert main([]) == 2
    assert "demo" in capsys.readouterr().out
    help_text = build_parser().format_help()
    assert "demo" in help_text


def test_console_script_entry_point_runs():
    proc = subprocess.run(
        [sys.executable, "-m", "hierclass.cli", "demo", "--help"], capture_output=True, text=True
    )
    assert proc.returncode == 0 and "--quick" in proc.stdout


def test_demo_quick_runs_end_to_end(tmp_path, capsys):
    """The README's `make demo` path on tiny settings: train, build, save, reload, certify."""
    out = tmp_path / "demo"
    assert main(["demo", "--quick", "--quiet", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "reloaded predictions match: True" in printed
    assert (out / "hierarchy" / "hierarchy.json").is_file()
    assert (out / "certified_accuracy.png").stat().st_size > 1000
    report = (out / "report.md").read_text()
    assert "| round | 0 2 3 5 6 8 |" in report
    # one TSV row per certified input, Cohen's columns first, for both regimes and the flat
    for name in ("sensor_root", "learned_root", "flat"):
        rows = (out / f"{name}.tsv").read_text().splitlines()
        assert rows[0].startswith("idx\tlabel\tpredict\tradius\tcorrect\ttime") and len(rows) == 11
    assert "flat baseline identical in both runs (same seed, same draws): True" in printed
    assert "### Why the learned root's gain is not free" in report


def test_demo_numbers_come_from_the_library(tmp_path):
    """The demo's summary agrees with the library's analysis of the TSVs it wrote."""
    from hierclass.commands.demo import radius_cap, run_demo
    from hierclass.smoothing.analysis.tables import compare_radii
    from hierclass.smoothing.records.tsv import read_results

    s = run_demo(tmp_path, epochs=1, num_certify=10, n=200, verbose=False)
    flat = read_results(tmp_path / "flat.tsv")
    sensor = read_results(tmp_path / "sensor_root.tsv")
    assert s["vs_flat"]["sensor root"] == compare_radii(flat, sensor)
    # a root nobody can perturb never makes a certificate worse than the flat model's ...
    assert s["vs_flat"]["sensor root"]["worse"] == 0
    # ... and the cap is Cohen's bound with every draw for one label
    from scipy.stats import norm

    assert s["cap"] == pytest.approx(0.5 * norm.ppf(0.001 ** (1 / 200)), abs=1e-6)
    assert radius_cap(100, 200, 0.0005, 0.5) == pytest.approx(s["cap_split"])
    assert (flat["radius"] <= s["cap"] + 1e-9).all()


def test_demo_draws_no_progress_bar_into_a_log(tmp_path):
    """Old code forced verbose=True: ~100 carriage returns in a redirected log."""
    proc = subprocess.run(
        [sys.executable, "-m", "hierclass.cli", "demo", "--quick", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "\r" not in proc.stderr and "\r" not in proc.stdout
