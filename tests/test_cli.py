import subprocess
import sys

from hierclass.cli import build_parser, main


def test_cli_lists_its_subcommands_and_needs_one(capsys):
    assert main([]) == 2
    assert "demo" in capsys.readouterr().out
    help_text = build_parser().format_help()
    assert "demo" in help_text


def test_demo_quick_runs_end_to_end(tmp_path):
    """The README's `make demo` path on tiny settings: train, build, save, reload, certify."""
    out = tmp_path / "demo"
    proc = subprocess.run(
        [sys.executable, "-m", "hierclass.cli", "demo", "--quick", "--quiet", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "reloaded predictions match: True" in proc.stdout
    assert (out / "hierarchy" / "hierarchy.json").is_file()
    report = (out / "report.md").read_text()
    assert "| round | 0 2 3 5 6 8 |" in report
