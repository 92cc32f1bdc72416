import subprocess
import sys

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
    # one TSV row per certified input, Cohen's columns first
    rows = (out / "hierarchy.tsv").read_text().splitlines()
    assert rows[0].startswith("idx\tlabel\tpredict\tradius\tcorrect\ttime") and len(rows) == 11
