"""``hierclass certify --radii``: sequential records that ``hierclass analyze`` reads."""

import torch
from torch import nn

from hierclass.cli import main
from hierclass.commands.certify import save_model_file
from hierclass.models import build, register_model
from hierclass.smoothing.records.tsv import read_results


def _linear(k: int) -> nn.Module:
    return nn.Sequential(nn.Flatten(), nn.Linear(64, k))


COMMON = ["--dataset", "digits", "--sigma", "0.25", "--N", "2000", "--max", "4", "--quiet"]


def test_certify_radii_then_analyze(tmp_path, capsys):
    register_model("sequential_cli_linear", _linear, overwrite=True)
    torch.manual_seed(0)
    flat = build("sequential_cli_linear", k=10).eval()
    model = save_model_file(flat, tmp_path / "flat.pt")
    out = tmp_path / "seq.tsv"
    assert main(["certify", str(model), str(out), "--radii", "0,0.25,0.5", *COMMON]) == 0
    t = read_results(out)
    assert t["idx"].tolist() == [0, 1, 2, 3]
    assert {"n_samples", "certified@0", "certified@0.25", "certified@0.5"} <= set(t.columns)
    assert all(0 < int(v) <= 2000 for v in t["n_samples"])
    capsys.readouterr()
    assert main(["analyze", f"seq={out}"]) == 0
    assert "| seq |" in capsys.readouterr().out


def test_certify_radii_errors(tmp_path, capsys):
    register_model("sequential_cli_linear", _linear, overwrite=True)
    flat = build("sequential_cli_linear", k=10).eval()
    model = save_model_file(flat, tmp_path / "flat.pt")
    out = tmp_path / "o.tsv"
    assert main(["certify", str(model), str(out), "--radii", "0,a", *COMMON]) == 2
    assert "--radii must be comma-separated numbers" in capsys.readouterr().err
    assert main(["certify", str(model), str(out), "--radii", "0,-1", *COMMON]) == 2
    assert "finite and >= 0" in capsys.readouterr().err
    assert main(["certify", str(model), str(out), "--radii", "0.5,0.25", *COMMON]) == 2
    assert "--radii must be increasing" in capsys.readouterr().err
