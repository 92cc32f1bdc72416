"""Bad inputs to the ``hierclass`` CLI: each is refused with one line on stderr, never a
traceback, and loses nothing already on disk (issue 11)."""

from __future__ import annotations

import contextlib
import io
import json
import re
import traceback

import pytest
import torch
from torch import nn

from hierclass import Hierarchy, LabelPartition, RenormalizedLeaf, Router
from hierclass.commands.certify import save_model_file
from hierclass.models import build, register_model
from hierclass.smoothing.records.tsv import COHEN_COLUMNS, FLAT_COLUMNS

FAST = ["--dataset", "digits", "--sigma", "0.25", "--n0", "10", "--N", "50", "--batch", "64"]


def _run(*argv) -> tuple[int, str]:
    """``hierclass ARGV`` in-process; an escaping exception is a traceback (rc 1)."""
    from hierclass.cli import main

    err = io.StringIO()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
        try:
            rc = main([str(a) for a in argv])
        except SystemExit as exc:  # argparse
            rc = exc.code if isinstance(exc.code, int) else 1
        except Exception:  # noqa: BLE001 - the failure under test
            traceback.print_exc(file=err)
            rc = 1
    return rc, err.getvalue()


def refuses(*argv, match: str) -> str:
    """Assert a clear refusal: rc 2, no traceback, one error line matching ``match``."""
    rc, err = _run(*argv)
    assert "Traceback" not in err, err
    lines = [ln for ln in err.splitlines() if ln.strip() and not ln.startswith(("usage:", "  "))]
    assert rc == 2 and len(lines) == 1, (rc, err)
    assert re.search(match, lines[0]), lines[0]
    assert "weights_only=False" not in lines[0]
    return lines[0]


def _linear(k: int = 10) -> nn.Module:
    return nn.Sequential(nn.Flatten(), nn.Linear(64, k))


@pytest.fixture
def model_file(tmp_path):
    register_model("bad_inputs_cli_linear", _linear, overwrite=True)
    torch.manual_seed(0)
    return save_model_file(build("bad_inputs_cli_linear").eval(), tmp_path / "flat.pt")


@pytest.fixture
def hierarchy_dir(tmp_path):
    register_model("bad_inputs_cli_linear", _linear, overwrite=True)
    torch.manual_seed(0)
    flat = build("bad_inputs_cli_linear").eval()
    p = LabelPartition({"round": [0, 2, 3, 5, 6, 8], "straight": [1, 4, 7, 9]})
    router = Router(build("bad_inputs_cli_linear", k=2).eval(), p)
    h = Hierarchy(router, [RenormalizedLeaf(flat, list(c)) for c in p.classes])
    return h.save(tmp_path / "tree")


# ------------------------------------------------------------------ OUTFILE and resume
def test_outfile_of_another_kind_is_refused_not_overwritten(tmp_path, model_file):
    out = tmp_path / "notes.tsv"
    out.write_text("name\tscore\nalice\t3\n")
    refuses("certify", model_file, out, *FAST, "--max", "2", match=r"notes.tsv.*not a results")
    assert out.read_text() == "name\tscore\nalice\t3\n"
    refuses("certify", model_file, out, *FAST, "--no-resume", match="not a results")
    cohen = tmp_path / "cohen.tsv"  # a results file, but not this kind of run
    cohen.write_text("\t".join(COHEN_COLUMNS) + "\n0\t1\t1\t0.5\t1\t0:00:01\n")
    refuses("certify", model_file, cohen, *FAST, "--max", "2", match="columns.*--no-resume")
    assert cohen.read_text().endswith("0:00:01\n")


def test_a_finished_outfile_is_not_recomputed(tmp_path, model_file, monkeypatch):
    out = tmp_path / "flat.tsv"
    assert _run("certify", model_file, out, *FAST, "--max", "3", "--quiet")[0] == 0
    before = out.read_text()
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == ["flat.pt", "flat.tsv", "flat.tsv.settings.json"]  # no shards
    from hierclass.smoothing.flat.smooth import Smooth

    seen = []
    real = Smooth.certify_many

    def spy(self, xs, *a, indices=None, **k):
        seen.append(list(indices))
        return real(self, xs, *a, indices=indices, **k)

    monkeypatch.setattr(Smooth, "certify_many", spy)
    assert _run("certify", model_file, out, *FAST, "--max", "3", "--quiet")[0] == 0
    assert out.read_text() == before and seen in ([], [[]])


def test_a_sidecar_with_the_old_method_key_is_a_clear_mismatch(tmp_path, hierarchy_dir):
    # A sidecar written before --method became --leaf-certificate: refused in one line naming
    # the rename (not a KeyError, and not silently resumed); renaming the key resumes it.
    out = tmp_path / "h.tsv"
    assert _run("certify", hierarchy_dir, out, *FAST, "--max", "2", "--quiet")[0] == 0
    sidecar = tmp_path / "h.tsv.settings.json"
    settings = json.loads(sidecar.read_text())
    assert settings["leaf_certificate"] == "renormalized" and "method" not in settings
    settings["method"] = settings.pop("leaf_certificate")
    sidecar.write_text(json.dumps(settings))
    before = out.read_text()
    line = refuses("certify", hierarchy_dir, out, *FAST, "--max", "3", "--quiet",
                   match=r"computed with method renormalized, which this version")  # fmt: skip
    assert "method -> leaf_certificate" in line and "h.tsv.settings.json" in line
    assert out.read_text() == before
    settings["leaf_certificate"] = settings.pop("method")
    sidecar.write_text(json.dumps(settings))
    assert _run("certify", hierarchy_dir, out, *FAST, "--max", "3", "--quiet")[0] == 0
    assert out.read_text().count("\n") == 4  # header and three rows


def test_resume_from_garbage_names_the_file_and_line(tmp_path, model_file):
    out = tmp_path / "flat.tsv"
    shard = tmp_path / "flat.tsv.shard0of1"
    shard.write_text("\t".join(FLAT_COLUMNS) + "\nzero\t" + "\t".join(["x"] * 10) + "\n")
    refuses("certify", model_file, out, *FAST, "--max", "2", match=r"shard0of1:2: column 'idx'")
    assert shard.read_text().startswith("idx")  # nothing lost: the file is left as it was


@pytest.mark.parametrize(
    "flag, value, match",
    [
        ("--max", "-5", r"--max must be >= 0, got -5"),
        ("--skip", "0", r"--skip must be >= 1"),
        ("--N", "0", r"--N must be >= 1"),
        ("--N0", "ten", r"expected an integer, got 'ten'"),
        ("--batch", "0", r"--batch must be a positive int or 'auto', got '0'"),
        ("--device", "bogus", r"--device 'bogus' is not a device"),
        ("--dataset", "nosuch", r"--dataset 'nosuch': expected one of digits"),
        ("--dataset", "imagefolder:/no/such/dir", r"/no/such/dir is not a directory"),
        ("--dataset", "json:nope", r"json' has no attribute 'nope'"),
    ],
)
def test_bad_flags_are_one_line(tmp_path, model_file, flag, value, match):
    args = [a for a in FAST]
    if flag in args:
        i = args.index(flag)
        del args[i : i + 2]
    refuses("certify", model_file, tmp_path / "o.tsv", *args, flag, value, match=match)


def test_split_is_only_for_sets_with_splits(tmp_path, model_file):
    (tmp_path / "imgs" / "a").mkdir(parents=True)
    refuses(
        "certify", model_file, tmp_path / "o.tsv", "--sigma", "0.25", "--dataset",
        f"imagefolder:{tmp_path / 'imgs'}", "--split", "train", match="imagefolder: has no splits",
    )  # fmt: skip
    refuses(
        "certify", model_file, tmp_path / "o.tsv", "--sigma", "0.25", "--dataset",
        "torch.nn:Identity", "--split", "train", match="--split applies to data sets with splits",
    )  # fmt: skip


def test_cuda_device_on_a_machine_without_it(tmp_path, model_file):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    refuses("certify", model_file, tmp_path / "o.tsv", *FAST, "--device", "cuda", match="CUDA")


# ------------------------------------------------------------------ MODEL arguments
def test_truncated_and_text_model_files(tmp_path, model_file):
    data = model_file.read_bytes()
    cut = tmp_path / "cut.pt"
    cut.write_bytes(data[: len(data) // 2])
    refuses("certify", cut, tmp_path / "o.tsv", *FAST, match=r"cut.pt cannot be read")
    text = tmp_path / "text.pt"
    text.write_text("this is not a model\n")
    refuses("certify", text, tmp_path / "o.tsv", *FAST, match=r"text.pt cannot be read")
    tensor = tmp_path / "tensor.pt"
    torch.save(torch.zeros(3), tensor)
    refuses("certify", tensor, tmp_path / "o.tsv", *FAST, match=r"expected a checkpoint.*a Tensor")
    wrong = tmp_path / "wrong.pt"
    blob = torch.load(model_file, weights_only=True)
    blob["spec"]["kwargs"] = {"k": 3}
    torch.save(blob, wrong)
    refuses("certify", wrong, tmp_path / "o.tsv", *FAST, match=r"weights do not fit")
    refuses("certify", tmp_path / "none.pt", tmp_path / "o.tsv", *FAST, match="does not exist")


@pytest.mark.parametrize(
    "spec, match",
    [
        ("no_such_module_xyz:make", r"cannot import 'no_such_module_xyz'"),
        ("torch.nn:NoSuchFactory", r"'torch.nn' has no attribute 'NoSuchFactory'"),
        ("math:pi", r"'pi' is a float, not a callable"),
        (":make", r"expected package.module:name"),
    ],
)
def test_module_factory_mistakes(tmp_path, spec, match):
    refuses("certify", spec, tmp_path / "o.tsv", *FAST, match=match)


@pytest.mark.parametrize("damage", ["json_list", "no_tree", "bad_json", "cut_weights"])
def test_tampered_hierarchy_is_one_line(tmp_path, hierarchy_dir, damage):
    spec = hierarchy_dir / "hierarchy.json"
    if damage == "json_list":
        spec.write_text("[1, 2]")
    elif damage == "no_tree":
        d = json.loads(spec.read_text())
        d.pop("tree", None)
        spec.write_text(json.dumps(d))
    elif damage == "bad_json":
        spec.write_text("{not json")
    else:
        w = hierarchy_dir / "weights.pt"
        w.write_bytes(w.read_bytes()[:100])
    refuses("certify", hierarchy_dir, tmp_path / "o.tsv", *FAST, match=r"/tree")


# ------------------------------------------------------------------ analyze
def _tsv(path, rows, header=COHEN_COLUMNS):
    path.write_text("\t".join(header) + "\n" + "".join("\t".join(map(str, r)) + "\n" for r in rows))
    return path


@pytest.mark.parametrize(
    "rows, match",
    [
        ([(0, 1, 1, -1.25, 1, 0.1)], r"radius is >= 0.*-1.25"),
        ([(0, 1, 1, 0.5, 1, 0.1), (0, 1, 1, 0.5, 1, 0.1)], r"index 0 appears 2 times"),
        ([(0, 1, 1, 0.5, 7, 0.1)], r"correct must be 0 or 1, found \[7\]"),
        ([(0, 1, 1, "nan", 1, 0.1)], r"radius contains NaN"),
        ([(0, 1, 1, "wide", 1, 0.1)], r"r.tsv:2: column 'radius' holds 'wide'"),
    ],
)
def test_analyze_refuses_bad_rows(tmp_path, rows, match):
    path = _tsv(tmp_path / "r.tsv", rows)
    line = refuses("analyze", path, match=match)
    assert "r.tsv" in line


def test_analyze_refuses_bad_radii_directories_and_foreign_files(tmp_path):
    good = _tsv(tmp_path / "r.tsv", [(0, 1, 1, 0.5, 1, 0.1)])
    refuses("analyze", good, "--radii", "nan", match=r"a radius is a number >= 0, got 'nan'")
    refuses("analyze", good, "--radii", "-1", match=r"a radius is a number >= 0")
    refuses("analyze", tmp_path, match=r"is a directory")
    refuses("analyze", tmp_path / "missing.tsv", match=r"missing.tsv")
    other = tmp_path / "other.tsv"
    other.write_text("a\tb\n1\t2\n")
    refuses("analyze", other, match=r"other.tsv is not a results file")
    binary = tmp_path / "bin.tsv"
    binary.write_bytes(b"\xff\xfe\x00garbage")
    refuses("analyze", binary, match=r"bin.tsv is not a text")
    refuses("analyze", match=r"give result files")


def test_flat_out_on_a_flat_model_is_refused(tmp_path, model_file):
    refuses("certify", model_file, tmp_path / "o.tsv", *FAST, "--flat-out", tmp_path / "f.tsv",
            match=r"--flat-out names the flat baseline of a hierarchy run")  # fmt: skip
    assert not (tmp_path / "o.tsv").exists()


def test_a_factory_data_set_with_a_number_for_classes(tmp_path, model_file, monkeypatch):
    (tmp_path / "five_classes_h24.py").write_text(
        "import torch\n"
        "from torch.utils.data import TensorDataset\n"
        "def make():\n"
        "    ds = TensorDataset(torch.rand(3, 1, 8, 8), torch.tensor([0, 1, 2]))\n"
        "    ds.classes = 5\n"
        "    return ds\n"
    )
    monkeypatch.chdir(tmp_path)  # the working directory is importable
    refuses("certify", model_file, tmp_path / "o.tsv", "--dataset", "five_classes_h24:make",
            "--sigma", "0.25", match=r"\.classes must be a sequence of .*, got int 5")  # fmt: skip


def test_a_factory_that_fails_on_import_is_one_line(tmp_path, model_file, monkeypatch):
    (tmp_path / "broken_h24.py").write_text("x = 1 / 0\n")
    monkeypatch.chdir(tmp_path)
    refuses("certify", "broken_h24:make", tmp_path / "o.tsv", *FAST,
            match=r"importing 'broken_h24' raised ZeroDivisionError: division by zero")  # fmt: skip


def test_a_model_that_cannot_take_the_inputs_says_so_before_certifying(tmp_path, model_file):
    refuses("certify", model_file, tmp_path / "o.tsv", "--dataset", "mnist5k", "--sigma", "0.25",
            match=r"MODEL cannot run on .* inputs \(one input: \[1, 28, 28\]\)")  # fmt: skip
    assert not (tmp_path / "o.tsv").exists()


def test_a_text_file_as_model_names_the_file(tmp_path):
    script = tmp_path / "model.py"
    script.write_text("import torch\n")
    refuses("certify", script, tmp_path / "o.tsv", *FAST,
            match=r"model.py cannot be read as a weights-only checkpoint")  # fmt: skip


# ------------------------------------------------------------------ image folders
def _rgb_linear(k: int = 3) -> nn.Module:
    return nn.Sequential(nn.Flatten(), nn.Linear(3 * 6 * 6, k))


def _image_folder(root, classes):
    from PIL import Image

    for c in classes:
        (root / c).mkdir(parents=True)
        Image.new("RGB", (6, 6), (10, 20, 30)).save(root / c / "0.png")
    return root


@pytest.fixture
def rgb_model(tmp_path):
    register_model("bad_inputs_cli_rgb", _rgb_linear, overwrite=True)
    torch.manual_seed(0)
    return save_model_file(build("bad_inputs_cli_rgb").eval(), tmp_path / "rgb.pt")


IMG_FAST = ["--sigma", "0.25", "--N0", "10", "--N", "50", "--batch", "64", "--quiet"]


def test_empty_imagefolder_path_does_not_scan_the_working_directory(tmp_path, rgb_model,
                                                                   monkeypatch):  # fmt: skip
    _image_folder(tmp_path / "cwd", "abc")  # what an empty PATH would have scanned
    monkeypatch.chdir(tmp_path / "cwd")
    refuses("certify", rgb_model, tmp_path / "o.tsv", "--dataset", "imagefolder:", *IMG_FAST,
            match=r"imagefolder: needs a PATH after the colon")  # fmt: skip
    assert not (tmp_path / "o.tsv").exists()


def test_imagefolder_with_more_class_folders_than_the_model_has_labels(tmp_path, rgb_model):
    root = _image_folder(tmp_path / "imgs", "abcde")  # 5 folders, a 3-label model
    match = r"MODEL returns 3 labels but --dataset imagefolder:.* has 5 classes"
    refuses("certify", rgb_model, tmp_path / "o.tsv", "--dataset", f"imagefolder:{root}",
            *IMG_FAST, match=match)  # fmt: skip
    assert not (tmp_path / "o.tsv").exists()


def test_decompression_bomb_in_an_imagefolder_is_one_line(tmp_path, rgb_model, monkeypatch):
    from PIL import Image

    root = _image_folder(tmp_path / "imgs", "abc")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 10)  # 36 pixels > 2 x 10
    match = r"0\.png is larger than PIL's decompression-bomb limit of 20 pixels"
    refuses("certify", rgb_model, tmp_path / "o.tsv", "--dataset", f"imagefolder:{root}",
            *IMG_FAST, match=match)  # fmt: skip
