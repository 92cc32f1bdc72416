"""Bad result files given to ``hierclass analyze``: each is refused with one line naming the
file and line, or read right -- never a wrong number on screen."""

from __future__ import annotations

import pytest
import torch

from hierclass import Smooth

from ._battery import SilentAcceptance, cli_refuses, refused, run_cli

HEAD = "idx\tlabel\tpredict\tradius\tcorrect\ttime\n"
H_HEAD = HEAD[:-1] + "\troute\ttrue_route\troute_correct\tnode_radii\n"


def _write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def _summary_row(out: str, name: str) -> list[str]:
    row = next(ln for ln in out.splitlines() if ln.startswith(f"| {name} |"))
    return row.split(" | ")[1:-1]


def test_abstention_marked_correct(tmp_path):
    f = _write(tmp_path / "r.tsv", HEAD + "0\t3\t-1\t0.0\t1\t0.1\n1\t2\t2\t0.5\t1\t0.1\n")
    cli_refuses(run_cli(["analyze", str(f)]), r"r\.tsv:2", "correct is 1", "abstention")


def test_wrong_prediction_marked_correct(tmp_path):
    f = _write(tmp_path / "r.tsv", HEAD + "0\t3\t3\t0.5\t1\t0.1\n1\t2\t5\t0.5\t1\t0.1\n")
    cli_refuses(run_cli(["analyze", str(f)]), r"r\.tsv:3", "predict 5 is not label 2")


def test_right_prediction_marked_wrong(tmp_path):
    f = _write(tmp_path / "r.tsv", HEAD + "0\t3\t3\t0.5\t0\t0.1\n")
    cli_refuses(run_cli(["analyze", str(f)]), r"r\.tsv:2", "correct is 0", "equals label 3")


def test_last_line_without_newline_is_read(tmp_path):
    f = _write(tmp_path / "r.tsv", HEAD + "0\t1\t1\t0.5\t1\t0.1\n1\t2\t-1\t0.0\t0\t0.1")
    result = run_cli(["analyze", str(f), "--radii", "0"])
    assert result.rc == 0, result.stderr
    if _summary_row(result.stdout, "r")[0] != "50.00%":  # the last row counted: 1 of 2
        raise SilentAcceptance(f"the last row was dropped: {result.stdout}")


def test_cut_row_is_left_out_with_a_note(tmp_path):
    f = _write(tmp_path / "r.tsv", HEAD + "0\t1\t1\t0.5\t1\t0.1\n1\t2\t-1")
    result = run_cli(["analyze", str(f), "--radii", "0"])
    assert result.rc == 0, result.stderr
    assert _summary_row(result.stdout, "r")[0] == "100.00%"
    if "r.tsv:3: the last line has 3 of 6 fields" not in result.stdout:
        raise SilentAcceptance(f"a cut row was dropped without a word: {result.stdout}")


def test_files_sharing_a_base_name_are_both_shown(tmp_path):
    a = _write(tmp_path / "a" / "run.tsv", HEAD + "0\t1\t1\t0.5\t1\t0.1\n")
    b = _write(tmp_path / "b" / "run.tsv", HEAD + "0\t1\t-1\t0.0\t0\t0.1\n")
    result = run_cli(["analyze", str(a), str(b), "--radii", "0"])
    assert result.rc == 0, result.stderr
    if "| a/run |" not in result.stdout or "| b/run |" not in result.stdout:
        raise SilentAcceptance(f"one of two files was hidden: {result.stdout}")
    assert _summary_row(result.stdout, "a/run")[0] == "100.00%"
    assert _summary_row(result.stdout, "b/run")[0] == "0.00%"


def test_two_files_given_one_name(tmp_path):
    a = _write(tmp_path / "a.tsv", HEAD + "0\t1\t1\t0.5\t1\t0.1\n")
    b = _write(tmp_path / "b.tsv", HEAD + "0\t1\t1\t0.5\t1\t0.1\n")
    cli_refuses(run_cli(["analyze", f"x={a}", f"x={b}"]), "two result files are named 'x'")


def test_file_name_with_equals_sign_is_a_path(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _write(tmp_path / "x=y.tsv", HEAD + "0\t1\t1\t0.5\t1\t0.1\n")
    result = run_cli(["analyze", "x=y.tsv", "--radii", "0"])
    if result.rc != 0:
        raise SilentAcceptance(f"an existing file was read as NAME=PATH: {result.stderr}")
    assert _summary_row(result.stdout, "x=y")[0] == "100.00%"


def test_huge_idx(tmp_path):
    f = _write(tmp_path / "r.tsv", HEAD + f"{10**30}\t1\t1\t0.5\t1\t0.1\n")
    cli_refuses(run_cli(["analyze", str(f)]), r"r\.tsv:2", "'idx'", "integer")


def test_gap_in_the_idx_range_gets_a_word(tmp_path):
    rows = "".join(f"{i}\t1\t1\t0.5\t1\t0.1\n" for i in (0, 1, 5, 9))
    f = _write(tmp_path / "r.tsv", HEAD + rows)
    result = run_cli(["analyze", str(f)])
    assert result.rc == 0, result.stderr
    if "6 of the indices 0-9 have no row (first: 2, 3, 4, 6, 7)" not in result.stdout:
        raise SilentAcceptance(f"rows missing inside the range without a word: {result.stdout}")


def _hier(rows: str) -> str:
    return H_HEAD + rows


def test_route_outside_the_hierarchy(tmp_path):
    # label 0 sits under route 0 (line 2), yet line 3 predicts it under route 1
    f = _write(tmp_path / "h.tsv", _hier(
        "0\t0\t0\t0.4\t1\t0.1\t0\t0\t1\troot=0.5;0=0.4\n"
        "1\t3\t0\t0.3\t0\t0.1\t1\t1\t1\troot=0.5;1=0.3\n"))  # fmt: skip
    cli_refuses(run_cli(["analyze", str(f)]), r"h\.tsv:3", "outside the hierarchy")


def test_node_radii_not_on_the_route(tmp_path):
    f = _write(tmp_path / "h.tsv", _hier("0\t0\t0\t0.4\t1\t0.1\t0\t0\t1\troot=0.5;7=0.4\n"))
    cli_refuses(run_cli(["analyze", str(f)]), r"h\.tsv:2", "node_radii names the nodes")


def test_bad_node_radius_value_names_file_and_line(tmp_path):
    f = _write(tmp_path / "h.tsv", _hier(
        "0\t0\t0\t0.4\t1\t0.1\t0\t0\t1\troot=0.5;0=0.4\n"
        "1\t1\t1\t0.4\t1\t0.1\t0\t0\t1\troot=0.5;0=abc\n"))  # fmt: skip
    cli_refuses(run_cli(["analyze", str(f)]), r"h\.tsv:3", "'0=abc'", "expected a radius")


def test_label_in_two_classes(tmp_path):
    f = _write(tmp_path / "h.tsv", _hier(
        "0\t0\t0\t0.4\t1\t0.1\t0\t0\t1\troot=0.5;0=0.4\n"
        "1\t0\t0\t0.4\t1\t0.1\t1\t1\t1\troot=0.5;1=0.4\n"))  # fmt: skip
    cli_refuses(run_cli(["analyze", str(f)]), r"h\.tsv:3", "label 0 has true_route 1")


@pytest.mark.parametrize("radii", [None, [0.25, None]])
def test_radii_none(radii):
    smooth = Smooth(lambda b: torch.stack([b[:, 0], -b[:, 0]], 1), 2, sigma=0.5)
    with refused(TypeError, "radii must be a sequence of floats", "None"):
        smooth.certify_radii(torch.zeros(2), radii)


def test_file_name_with_equals_sign_and_the_other_reading_both_exist(tmp_path, monkeypatch):
    # "x=y.tsv" is the file x=y.tsv and also NAME=PATH naming y.tsv "x": refused, not guessed
    monkeypatch.chdir(tmp_path)
    _write(tmp_path / "x=y.tsv", HEAD + "0\t1\t1\t0.5\t1\t0.1\n")
    _write(tmp_path / "y.tsv", HEAD + "0\t1\t-1\t0.0\t0\t0.1\n")
    cli_refuses(run_cli(["analyze", "x=y.tsv"]), "'x=y.tsv' is both the file", "NAME=x=y.tsv")
    result = run_cli(["analyze", "NAME=x=y.tsv", "x=./y.tsv", "--radii", "0"])
    assert result.rc == 0, result.stderr
    assert _summary_row(result.stdout, "NAME")[0] == "100.00%"
    assert _summary_row(result.stdout, "x")[0] == "0.00%"


def test_missing_file_with_equals_sign_names_what_was_typed(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cli_refuses(run_cli(["analyze", "x=z.tsv"]), "no result file 'x=z.tsv', nor 'z.tsv'")


@pytest.mark.parametrize("column", ["idx", "label", "predict"])
def test_huge_integer_read_by_the_tsv_reader(tmp_path, column):
    from hierclass.smoothing.records.tsv import read_results

    values = {"idx": "0", "label": "1", "predict": "1"} | {column: str(10**30)}
    row = f"{values['idx']}\t{values['label']}\t{values['predict']}\t0.5\t1\t0.1\n"
    f = _write(tmp_path / "r.tsv", HEAD + row)
    with refused(ValueError, r"r\.tsv:2", f"'{column}'", str(10**30), "integer"):
        read_results(f)


def _analysis_calls():
    import numpy as np

    from hierclass.smoothing.analysis.hierarchy_results import levels_table
    from hierclass.smoothing.analysis.information_gain import certified_information_gain
    from hierclass.smoothing.analysis.tables import certified_accuracy
    from hierclass.smoothing.records.tsv import ResultTable

    flat = ResultTable({"radius": np.array([0.5]), "correct": np.array([1])})
    hier = ResultTable({"radius": np.array([0.2]), "correct": np.array([1]),
                        "level_radii": np.array(["0.9"], dtype=object),
                        "level_correct": np.array(["1"], dtype=object)})  # fmt: skip
    return {
        "certified_accuracy": lambda r: certified_accuracy(flat, r),
        "certified_information_gain": lambda r: certified_information_gain(flat, r),
        "levels_table": lambda r: levels_table(hier, r),
    }


@pytest.mark.parametrize("radii", [None, [0.25, None]], ids=["None", "[0.25, None]"])
@pytest.mark.parametrize("call", sorted(_analysis_calls()))
def test_radii_none_in_the_analysis_functions(call, radii):
    # np.asarray(None, dtype=float) is NaN: it was reported as "got [nan]"
    with refused(TypeError, "radii must be a number or a sequence of numbers", "None") as r:
        _analysis_calls()[call](radii)
    assert "nan" not in r.message
