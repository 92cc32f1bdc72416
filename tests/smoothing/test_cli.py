import torch
from torch import nn

from hierclass import Hierarchy, LabelPartition, RenormalizedLeaf, Router
from hierclass.cli import main
from hierclass.commands.certify import save_model_file
from hierclass.models import build, register_model
from hierclass.smoothing.results import read_results


def _linear(k: int) -> nn.Module:
    return nn.Sequential(nn.Flatten(), nn.Linear(64, k))


def test_certify_and_analyze_flat_and_hierarchy(tmp_path, capsys):
    register_model("smoothing_cli_linear", _linear, overwrite=True)
    torch.manual_seed(0)
    flat = build("smoothing_cli_linear", k=10).eval()
    model_file = save_model_file(flat, tmp_path / "flat.pt")
    common = [
        "--dataset",
        "digits",
        "--sigma",
        "0.25",
        "--n0",
        "10",
        "--N",
        "100",
        "--max",
        "4",
        "--batch",
        "64",
        "--quiet",
    ]
    out = tmp_path / "flat.tsv"
    assert main(["certify", str(model_file), str(out), *common]) == 0
    t = read_results(out)
    assert t["idx"].tolist() == [0, 1, 2, 3]
    # hierarchy: router + leaves renormalised from the flat model, saved and reloaded
    p = LabelPartition({"round": [0, 2, 3, 5, 6, 8], "straight": [1, 4, 7, 9]})
    router = Router(build("smoothing_cli_linear", k=2).eval(), p)
    h = Hierarchy(router, [RenormalizedLeaf(flat, list(c)) for c in p.classes])
    h.save(tmp_path / "tree")
    hout = tmp_path / "tree.tsv"
    assert main(["certify", str(tmp_path / "tree"), str(hout), *common]) == 0
    assert len(read_results(hout)) == 4 and len(read_results(tmp_path / "tree.flat.tsv")) == 4
    assert read_results(tmp_path / "tree.flat.tsv")["radius"].tolist() == t["radius"].tolist()
    capsys.readouterr()
    png = tmp_path / "ca.png"
    rc = main(
        [
            "analyze",
            f"flat={out}",
            "--baseline",
            str(tmp_path / "tree.flat.tsv"),
            "--hierarchy",
            str(hout),
            "--plot",
            str(png),
        ]
    )
    text = capsys.readouterr().out
    assert rc == 0 and png.stat().st_size > 0
    assert "| flat |" in text and "| round |" in text and "baseline CR" in text


def test_cli_errors(tmp_path, capsys):
    assert main(["certify", "no_such_thing", str(tmp_path / "o.tsv"), "--sigma", "0.25"]) == 2
    assert "error" in capsys.readouterr().err
    assert main(["analyze"]) == 2
