import pytest
import torch
from torch import nn

from hierclass import Hierarchy, LabelPartition, RenormalizedLeaf, Router
from hierclass.cli import main
from hierclass.commands.certify import save_model_file
from hierclass.models import build, register_model
from hierclass.smoothing.records.tsv import read_results


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
    # the hierarchy's file also gets hierarchical metrics, computed by the library
    from hierclass.smoothing.analysis.hierarchy_metrics import hierarchy_report

    assert "## Hierarchy metrics: hierarchy" in text
    assert hierarchy_report(read_results(hout), [0.0, 0.25, 0.5, 0.75, 1.0]) in text


def test_cli_errors(tmp_path, capsys):
    assert main(["certify", "no_such_thing", str(tmp_path / "o.tsv"), "--sigma", "0.25"]) == 2
    assert "error" in capsys.readouterr().err
    assert main(["analyze"]) == 2


def _save_linear(tmp_path, inputs: int, k: int):
    register_model(f"smoothing_cli_linear_{inputs}", lambda k: nn.Sequential(
        nn.Flatten(), nn.Linear(inputs, k)), overwrite=True)  # fmt: skip
    torch.manual_seed(0)
    return save_model_file(build(f"smoothing_cli_linear_{inputs}", k=k).eval(), tmp_path / "m.pt")


def test_cohen_flag_spellings_and_hierclass_ones_agree(tmp_path):
    model = _save_linear(tmp_path, 64, 10)
    base = ["certify", str(model), "--dataset", "digits", "--sigma", "0.25", "--quiet"]
    cohen = ["--N0", "10", "--N", "60", "--batch", "64", "--skip", "3", "--max", "3"]
    ours = ["--n0", "10", "--n", "60", "--batch-size", "64", "--skip", "3", "--max", "3"]
    assert main([*base[:2], str(tmp_path / "a.tsv"), *base[2:], *cohen]) == 0
    assert main([*base[:2], str(tmp_path / "b.tsv"), *base[2:], *ours]) == 0
    a, b = read_results(tmp_path / "a.tsv"), read_results(tmp_path / "b.tsv")
    assert a["idx"].tolist() == [0, 3, 6] == b["idx"].tolist()
    assert a["counts"].tolist() == b["counts"].tolist()  # same flags, same noise, same counts
    assert sum(int(c) for c in a["counts"][0].split(",")) == 60


def _png_folder(root, classes=("cat", "dog", "eel"), per_class=2, size=6):
    from PIL import Image

    g = torch.Generator().manual_seed(0)
    for c in classes:
        (root / c).mkdir(parents=True)
        for i in range(per_class):
            pixels = (torch.rand(size, size, 3, generator=g) * 255).to(torch.uint8).numpy()
            Image.fromarray(pixels, "RGB").save(root / c / f"{i}.png")
    return root


def test_certify_an_image_folder(tmp_path):
    from torchvision import datasets, transforms

    root = _png_folder(tmp_path / "imgs")
    model = _save_linear(tmp_path, 3 * 6 * 6, 3)
    out = tmp_path / "folder.tsv"
    argv = ["certify", str(model), str(out), "--dataset", f"imagefolder:{root}"]
    argv += ["--sigma", "0.25", "--N0", "10", "--N", "50", "--batch", "64", "--quiet"]
    assert main(argv) == 0
    t = read_results(out)
    folder = datasets.ImageFolder(str(root), transform=transforms.ToTensor())
    assert t["idx"].tolist() == list(range(6))
    assert t["label"].tolist() == [folder[i][1] for i in range(6)] == [0, 0, 1, 1, 2, 2]
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "folder.tsv", "folder.tsv.settings.json", "imgs", "m.pt"
    ]  # fmt: skip


def test_certify_a_dataset_factory(tmp_path, monkeypatch, capsys):
    (tmp_path / "my_data_h12.py").write_text(
        "import torch\n"
        "from torch.utils.data import TensorDataset\n"
        "def make():\n"
        "    g = torch.Generator().manual_seed(1)\n"
        "    return TensorDataset(torch.rand(5, 1, 8, 8, generator=g), torch.arange(5) % 10)\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    model = _save_linear(tmp_path, 64, 10)
    argv = ["certify", str(model), str(tmp_path / "o.tsv"), "--dataset", "my_data_h12:make"]
    argv += ["--sigma", "0.25", "--N0", "10", "--N", "50", "--batch", "64", "--quiet"]
    # a TensorDataset does not say how many classes it has: the model's 10 logits do
    assert main(argv) == 0
    assert read_results(tmp_path / "o.tsv")["label"].tolist() == [0, 1, 2, 3, 4]
    assert main([*argv, "--num-classes", "7", "--no-resume"]) == 2
    assert "--num-classes is 7 but MODEL returns 10 labels" in capsys.readouterr().err


def test_time_column_does_not_charge_the_probe_to_the_first_input(tmp_path, monkeypatch):
    """Old code: idx 0's time held the batch-size probe (47.6 s measured, the rest ~0.005 s)."""
    import time

    from hierclass.smoothing.hierarchy.smooth import HierarchicalSmooth
    from hierclass.smoothing.runs.fixed_n import certify_hierarchy

    real = HierarchicalSmooth.engine

    def slow_probe(self, *a, **k):
        time.sleep(1.0)  # stands in for a long batch-size probe
        return real(self, *a, **k)

    monkeypatch.setattr(HierarchicalSmooth, "engine", slow_probe)
    torch.manual_seed(0)
    flat = _linear(10).eval()
    p = LabelPartition({"round": [0, 2, 3, 5, 6, 8], "straight": [1, 4, 7, 9]})
    h = Hierarchy(Router(_linear(2).eval(), p), [RenormalizedLeaf(flat, c) for c in p.classes])
    x, y = torch.rand(3, 1, 8, 8), torch.tensor([0, 1, 2])
    outs = dict(out=tmp_path / "h.tsv", flat_out=tmp_path / "f.tsv", verbose=False)
    res = certify_hierarchy(h, x, y, sigma=0.25, n0=10, n=50, batch_size=64, flat=flat, **outs)
    assert res.hierarchy["time"].max() < 0.9 and res.flat["time"].max() < 0.9


def test_help_is_plain_text():
    import re

    from hierclass.cli import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    for name, p in sub.choices.items():
        text = p.format_help()
        assert not re.search(r":(class|func|mod|meth|attr):|``", text), (name, text)
    assert "--N0" in sub.choices["certify"].format_help()


def _certify_parser():
    import argparse

    from hierclass.commands import certify as certify_cmd

    parser = argparse.ArgumentParser()
    certify_cmd.add_parser(parser.add_subparsers(dest="command"))
    return parser


def test_leaf_certificate_help_offers_two_certificates_and_refuses_others(capsys):
    """``--help`` names renormalized and margin; ``cohen`` (the removed old name) and anything
    else is one line naming the valid values."""
    from hierclass.commands import certify as certify_cmd
    from hierclass.smoothing.hierarchy.smooth import LEAF_CERTIFICATES

    assert certify_cmd.LEAF_CERTIFICATES == LEAF_CERTIFICATES  # spelled out in the CLI
    parser = _certify_parser()
    base = ["certify", "m.pt", "o.tsv", "--sigma", "0.25"]
    args = parser.parse_args([*base, "--leaf-certificate", "margin"])
    assert args.leaf_certificate == "margin"
    assert parser.parse_args(base).leaf_certificate == "renormalized"
    with pytest.raises(SystemExit):
        parser.parse_args(["certify", "--help"])
    text = capsys.readouterr().out
    assert "--leaf-certificate {renormalized,margin}" in text and "cohen" not in text
    for bad in ("x", "cohen"):
        with pytest.raises(SystemExit):
            parser.parse_args([*base, "--leaf-certificate", bad])
        err = capsys.readouterr().err
        assert f"expected one of renormalized, margin, got '{bad}'" in err


def test_the_old_method_flag_is_gone(capsys):
    with pytest.raises(SystemExit):
        _certify_parser().parse_args(
            ["certify", "m.pt", "o.tsv", "--sigma", "0.25", "--method", "margin"]
        )
    err = capsys.readouterr().err
    assert "unrecognized arguments: --method margin" in err
