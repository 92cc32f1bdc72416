"""``hierclass certify`` on a pretrained checkpoint and a data set named on the command line.

A Cohen-format ``cifar_resnet20`` checkpoint is certified on a CIFAR-10 fixture in the
release's pickle format, as a hierarchy over a shipped partition, with the flat baseline on
the same draws; resumes are guarded by the settings sidecar.
"""

from __future__ import annotations

import contextlib
import io
import json
import re
import traceback

import pytest
import torch

from hierclass.cli import main
from hierclass.commands._loading import load_data, load_model
from hierclass.models import smoothing_arch
from hierclass.smoothing.analysis.tables import certified_accuracy
from hierclass.smoothing.records.tsv import read_results

FAST = ["--sigma", "0.25", "--N0", "8", "--N", "40", "--batch", "48"]


def _cli(*argv) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            rc = main(["certify", *(str(a) for a in argv)])
        except SystemExit as exc:
            rc = exc.code if isinstance(exc.code, int) else 1
        except Exception:  # noqa: BLE001 - a traceback is the failure under test
            traceback.print_exc(file=err)
            rc = 1
    return rc, out.getvalue(), err.getvalue()


def _refused(*argv, match: str) -> None:
    rc, _, err = _cli(*argv)
    lines = [ln for ln in err.splitlines() if ln.strip() and not ln.startswith(("usage:", "  "))]
    assert rc == 2 and len(lines) == 1 and "Traceback" not in err, err
    assert re.search(match, lines[0]), lines[0]


@pytest.fixture
def checkpoint(tmp_path):
    """Cohen et al.'s train.py output for a (randomly initialised) cifar_resnet20."""
    torch.manual_seed(0)
    model = smoothing_arch("cifar_resnet20")
    path = tmp_path / "checkpoint.pth.tar"
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    torch.save(
        {"epoch": 90, "arch": "cifar_resnet20", "state_dict": model.state_dict(),
         "optimizer": optimizer.state_dict()},
        path,
    )  # fmt: skip
    return path


def test_checkpoint_as_a_hierarchy_with_the_flat_baseline(tmp_path, cifar_root, checkpoint):
    root, arrays = cifar_root
    out = tmp_path / "run.tsv"
    argv = [checkpoint, out, "--dataset", f"cifar10:{root}", "--partition", "cifar10-living"]
    rc, printed, err = _cli(*argv, *FAST)
    assert rc == 0, err
    line = "MODEL was a cohen checkpoint: cifar_resnet20, 10 classes, normalization cifar10, epoch"
    assert line in printed
    rows = read_results(out)
    flat = read_results(out.with_suffix(".flat.tsv"))
    assert list(rows["idx"]) == list(flat["idx"]) == [0, 1, 2]
    assert list(rows["label"]) == arrays["test_y"].tolist()
    # the route's first level is the living / non-living class of the label
    assert list(rows["true_route"]) == ["1", "0", "0"]  # cat, truck, airplane
    assert all(len(str(v).split(";")) == 1 for v in rows["level_radii"])
    detail = json.loads(rows["detail"][0])
    assert detail["num_labels"] == 10 and len(detail["level_labels"]) <= 1
    settings = json.loads((tmp_path / "run.tsv.settings.json").read_text())
    assert (settings["sigma"], settings["N"], settings["N0"]) == (0.25, 40, 8)
    # the same command again finds the run done; other settings are refused, rows kept
    assert _cli(*argv, *FAST)[0] == 0
    before = out.read_text()
    _refused(*argv, "--sigma", "0.5", "--N0", "8", "--N", "40",
             match=r"holds rows computed with sigma 0.25; this run asks for sigma 0.5")  # fmt: skip
    _refused(*argv, *FAST, "--seed", "3", match=r"seed 0; this run asks for seed 3")
    assert out.read_text() == before


def test_a_changed_checkpoint_is_a_different_model(tmp_path, cifar_root, checkpoint):
    root, _ = cifar_root
    out = tmp_path / "run.tsv"
    argv = [checkpoint, out, "--dataset", f"cifar10:{root}", "--max", "1", *FAST]
    assert _cli(*argv)[0] == 0
    blob = torch.load(checkpoint, weights_only=True)
    blob["state_dict"]["1.fc.bias"] += 1.0
    torch.save(blob, checkpoint)
    _refused(*argv, match=r"model weights [0-9a-f]{16}; this run asks for model weights")
    assert _cli(*argv, "--no-resume")[0] == 0


def test_inputs_are_read_only_when_certified(cifar_root, checkpoint):
    from hierclass import Smooth
    from hierclass.smoothing import certify_dataset

    root, _ = cifar_root
    x, y, k = load_data(f"cifar10:{root}", "train")
    assert (len(x), k, x.reads) == (10, 10, 0)
    smooth = Smooth(load_model(str(checkpoint)), k, sigma=0.25)
    certify_dataset(smooth, x, y, indices=[4, 7], n0=8, n=16, batch_size=24, verbose=False)
    assert x.reads <= 2 + 1  # the two certified images (and at most one probe)


def test_a_saved_hierarchy_around_a_checkpoint_loads_in_the_cli(tmp_path, cifar_root, checkpoint):
    from hierclass import Hierarchy

    root, _ = cifar_root
    flat = load_model(str(checkpoint))
    h = Hierarchy.from_flat_model(flat, "cifar10-living")
    h.save(tmp_path / "tree")
    x = torch.rand(4, 3, 32, 32)
    assert torch.equal(Hierarchy.load(tmp_path / "tree").predict(x), h.predict(x))
    out = tmp_path / "tree.tsv"
    rc, _, err = _cli(tmp_path / "tree", out, "--dataset", f"cifar10:{root}", *FAST)
    assert rc == 0, err
    assert len(read_results(out)) == 3 and len(read_results(out.with_suffix(".flat.tsv"))) == 3


def test_flat_checkpoint_rows_match_the_api(tmp_path, cifar_root, checkpoint):
    root, _ = cifar_root
    out = tmp_path / "flat.tsv"
    assert _cli(checkpoint, out, "--dataset", f"cifar10:{root}", *FAST)[0] == 0
    table = read_results(out)
    assert len(table) == 3 and 0.0 <= certified_accuracy(table, 0.0) <= 1.0


def test_pretrained_refusals(tmp_path, cifar_root, cifar100_root, checkpoint):
    root, _ = cifar_root
    out = tmp_path / "o.tsv"
    c10 = ["--dataset", f"cifar10:{root}", *FAST]
    _refused(checkpoint, out, "--dataset", f"cifar100:{cifar100_root[0]}", *FAST,
             match=r"MODEL returns 10 labels but --dataset cifar100:.* has 100")  # fmt: skip
    _refused(checkpoint, out, *c10, "--router", "x.pt", match=r"--router applies with --partition")
    _refused(checkpoint, out, *c10, "--partition", "cifar100-superclasses",
             match=r"covers labels 0..99 but the classifier has 10 labels")  # fmt: skip
    _refused(checkpoint, out, *c10, "--model-arg", "depth=20",
             match=r"--model-arg applies to a module:factory MODEL")  # fmt: skip
    _refused(checkpoint, out, *c10, "--arch", "resnet50",
             match=r"holds a .cifar_resnet20. checkpoint; arch .resnet50. was")  # fmt: skip
    _refused(checkpoint, out, *c10, "--num-classes", "12", match=r"--num-classes is 12 but MODEL")
    _refused(checkpoint, out, *c10, "--data-arg", "k=1", match=r"--data-arg applies to a module")
    assert not out.exists()
