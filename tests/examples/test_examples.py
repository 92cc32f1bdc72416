"""Smoke tests: every case-study example runs end to end with ``--quick`` and writes its outputs.

The examples run in this process (one import of torch for all of them); each ``--quick`` run
trains tiny models for an epoch or two, so the numbers are meaningless: these tests check the
pipeline, the files and the tables' layout, not the paper's results.
"""

from __future__ import annotations

import importlib.util
import json
import pickle
import re
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def load_example(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def figure_problems(fig) -> list[str]:
    """What a reader would call broken in a figure: a panel with nothing drawn and nothing
    said, or the figure title overlapping a panel title."""
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    problems = []
    for i, ax in enumerate(fig.axes):
        if ax.get_label() == "<colorbar>":
            continue
        lines = [  # data lines (not reference lines such as axhline) with a finite point
            line for line in ax.lines
            if line.get_transform() is ax.transData
            and np.isfinite(np.asarray(line.get_ydata(), dtype=float)).any()
        ]  # fmt: skip
        bars = [p for p in ax.patches if getattr(p, "get_height", lambda: 0)()]
        if not (lines or bars or ax.images or ax.collections or ax.texts):
            problems.append(f"panel {i} ({ax.get_title()!r}) is blank")
    title = fig._suptitle
    if title is not None:
        box = title.get_window_extent(renderer)
        for ax in fig.axes:
            if ax.get_title() and box.overlaps(ax.title.get_window_extent(renderer)):
                problems.append(f"the figure title overlaps the title {ax.get_title()!r}")
    return problems


def run_quick(name: str, out: Path, capsys, *extra: str) -> str:
    module = load_example(name)
    saved = []

    def save_and_check(run, fig):
        saved.append(figure_problems(fig))
        return save_figure(run, fig)

    save_figure = module.C.Run.save_figure
    module.C.Run.save_figure = save_and_check
    try:
        rc = module.main(["--quick", "--quiet", "--out", str(out), *extra])
    finally:
        module.C.Run.save_figure = save_figure
    assert rc == 0
    assert saved == [[]]  # one figure, every panel drawn or explained, titles apart
    printed = capsys.readouterr().out
    report = out / "results.md"
    assert report.is_file() and str(report) in printed  # says where it wrote the table
    pngs = sorted(out.glob("*.png"))
    assert [p.name for p in pngs] == [f"{name}.png"]  # one figure, named after the script
    assert all(p.read_bytes()[:8] == PNG_MAGIC for p in pngs)
    assert all(str(p) in printed for p in pngs)
    return report.read_text(encoding="utf-8")


def table_rows(text: str, heading: str) -> list[list[str]]:
    """Body rows of the first markdown table after ``heading``."""
    lines = text[text.index(heading) :].splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("|"))
    rows = []
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        rows.append([c.strip() for c in line.strip("|").split("|")])
    return rows


def test_road_signs_quick(tmp_path: Path, capsys) -> None:
    text = run_quick("road_signs", tmp_path, capsys)
    assert "Simulated sensors" in text
    for heading in ("## Table IV: circle", "## Table V: triangle"):
        rows = table_rows(text, heading)
        assert [r[0] for r in rows] == ["0.25"]
        assert len(rows[0]) == 11  # ours (7 columns) beside the paper's (4)
        assert rows[0][-4:] != ["-"] * 4  # the paper's numbers for sigma=0.25 are filled in
    assert table_rows(text, "## Fig. 8")
    assert table_rows(text, "## Natural accuracy")[0][0] == "0.25"


def test_speaker_identification_quick(tmp_path: Path, capsys) -> None:
    text = run_quick("speaker_identification", tmp_path, capsys)
    assert "Simulated data" in text
    for heading in ("## Table VI: female", "## Table VII: male"):
        rows = table_rows(text, heading)
        assert [r[0] for r in rows] == ["0.05"] and len(rows[0]) == 10


def test_label_set_size_quick(tmp_path: Path, capsys) -> None:
    text = run_quick("label_set_size", tmp_path, capsys)
    rows = table_rows(text, "| subset size")
    # Quick mode certifies subsets of sizes 2, 5 and 10: C(9, k-1) of them contain the label.
    assert [(r[0], r[1]) for r in rows] == [("2", "9"), ("5", "126"), ("10", "1")]


@pytest.mark.parametrize("partition", ["kmeans", "paper"])
def test_mnist_hierarchy_quick(tmp_path: Path, capsys, partition: str) -> None:
    text = run_quick("mnist_hierarchy", tmp_path, capsys, "--partition", partition)
    rows = table_rows(text, "## Table I (hierclass)")
    assert [r[0] for r in rows] == ["Baseline", "Hierarchy"]
    for r in rows:
        natural, adv, budget = (float(v) for v in r[1:4])
        assert 0 <= adv <= budget <= natural <= 100
    assert [r[0] for r in table_rows(text, "## Table IX")][-1] == "Baseline"
    nodes = [r[0] for r in table_rows(text, "## Hierarchy, one node attacked")]
    assert nodes[0] == "root" and len(nodes) == 3
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["Baseline"]["budgeted_accuracy"] == results["Baseline"]["adversarial_accuracy"]
    assert f"{100 * results['Hierarchy']['natural_accuracy']:.2f}" == rows[1][1]
    if partition == "paper":
        assert "[[0, 2, 3, 5, 6, 8], [1, 4, 7, 9]] from the paper's split" in text


def test_mnist_kmeans_invariance_quick_search(tmp_path: Path, capsys) -> None:
    report = run_quick("mnist_kmeans_invariance", tmp_path, capsys, "--search")
    for layer in ("rest.3", "rest.6"):
        assert f"## layer `{layer}`" in report
    # every layer section either lists two disjoint classes covering the ten digits or fails
    # with Algorithm 1's message
    for found in re.findall(r"classes: \{([\d,]+)\} vs \{([\d,]+)\}", report):
        labels = [int(v) for part in found for v in part.split(",")]
        assert sorted(labels) == list(range(10))
    assert "the paper (full MNIST) found {0,2,3,5,6,8}" in report
    # --search ranks the found partitions and the paper's with the numbers behind the ranking
    search = report.split("## partition search")[1]
    ranks = re.findall(r"^\| (\d+) \|", search, flags=re.MULTILINE)
    assert ranks and ranks == [str(i) for i in range(1, len(ranks) + 1)]
    assert "| paper |" in search and "feasible = root accuracy >= 0.9" in search


def test_tsipras_invariance_quick(tmp_path: Path, capsys) -> None:
    doc = run_quick("tsipras_invariance", tmp_path, capsys)
    # the Monte-Carlo section agrees with the closed forms on every line it prints
    mc = doc.split("## Monte-Carlo check")[1].split("##")[0]
    flags = [line.rsplit("|", 2)[-2].strip() for line in mc.splitlines() if line.count("|") > 6]
    flags = [f for f in flags if f in ("True", "False")]
    assert flags and all(f == "True" for f in flags)


def test_cifar10_without_data_explains_and_fails(tmp_path: Path, capsys) -> None:
    rc = load_example("cifar10_hierarchy").main(
        ["--quick", "--data-root", str(tmp_path / "missing"), "--out", str(tmp_path / "out")]
    )
    assert rc != 0
    err = capsys.readouterr().err
    assert "cifar-10-python.tar.gz" in err and "--data-root" in err
    assert not (tmp_path / "out" / "results.md").exists()


def write_tiny_cifar(root: Path, per_batch: int = 60) -> None:
    """CIFAR-10's python format (protocol-2 pickles with str keys), tiny and synthetic."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        labels = rng.integers(0, 10, per_batch)
        data = (rng.random((per_batch, 3072)) * 60 + labels[:, None] * 19).astype(np.uint8)
        with open(folder / name, "wb") as fh:
            pickle.dump({"data": data, "labels": labels.tolist()}, fh, protocol=2)


def test_cifar10_quick_on_a_tiny_copy(tmp_path: Path, capsys) -> None:
    write_tiny_cifar(tmp_path / "data")
    text = run_quick(
        "cifar10_hierarchy", tmp_path / "out", capsys,
        "--data-root", str(tmp_path / "data"), "--no-verify",
    )  # fmt: skip
    assert [r[0] for r in table_rows(text, "## Table II (hierclass)")] == ["Baseline", "Hierarchy"]
    for heading in ("## Table XI", "## Table XII"):
        assert [r[0] for r in table_rows(text, heading)] == ["0.25"]


def load_common() -> ModuleType:
    sys.path.insert(0, str(EXAMPLES))
    try:
        return load_example("_common")
    finally:
        sys.path.remove(str(EXAMPLES))


def test_summary_counts_only_certified_correct_samples() -> None:
    from hierclass.smoothing.records.tsv import ResultTable

    common = load_common()
    table = ResultTable({"radius": np.array([1.0, 9.0, 2.0, 3.0, np.inf, 0.0]),
                         "correct": np.array([1, 0, 1, 1, 1, 0]),
                         "eqclass": np.array(["a"] * 6, dtype=object)})  # fmt: skip
    s = common.summary(table)
    assert (s["cr_mean"], s["ca"], s["n_infinite"]) == (2.0, 4 / 6, 1)
    assert s["cr_std"] == pytest.approx(np.std([1, 2, 3]))
    assert common.fmt_cr(s) == f"2.000 ± {np.std([1, 2, 3]):.3f} (+1 ∞)"
    none = common.summary(ResultTable({"radius": np.array([0.0]), "correct": np.array([0]),
                                       "eqclass": np.array(["a"], dtype=object)}))  # fmt: skip
    assert common.fmt_cr(none) == "-" and none["ca"] == 0.0


def test_road_sign_figure_explains_empty_panels(tmp_path: Path) -> None:
    """With no sign certified correctly by both classifiers (as in --quick) every panel says so
    instead of drawing nothing, and the figure title stays clear of the panel titles."""
    road_signs, common = load_example("road_signs"), load_common()
    problems = []

    class Run(common.Run):
        def save_figure(self, fig):
            problems.extend(figure_problems(fig))
            return super().save_figure(fig)

    args = common.make_parser("test", "road_signs").parse_args(["--out", str(tmp_path)])
    empty = {"shape": np.array([]), "shape + location": np.array([]), "labels": np.array([])}
    gains = {("circle", 0.25, "renormalised"): np.array([])}
    road_signs.plot(Run(args), {"sigmas": (0.25,)}, gains, {0.25: empty})
    assert problems == []
    # and data, when there is some, are drawn
    gains = {("circle", 0.25, "renormalised"): np.array([1.0, 1.2])}
    road_signs.plot(Run(args), {"sigmas": (0.25,)}, gains, {0.25: empty})
    assert problems == []


def write_tiny_gtsrb(root: Path) -> None:
    """GTSRB's on-disk layout (ppm images per class folder; test images plus a CSV)."""
    from PIL import Image

    base = root / "gtsrb"
    test_dir = base / "GTSRB" / "Final_Test" / "Images"
    test_dir.mkdir(parents=True)
    rng = np.random.default_rng(0)
    rows = ["Filename;Width;Height;Roi.X1;Roi.Y1;Roi.X2;Roi.Y2;ClassId"]
    for c in range(43):
        train_dir = base / "GTSRB" / "Training" / f"{c:05d}"
        train_dir.mkdir(parents=True)
        pixels = (rng.random((3, 12, 12, 3)) * 255).astype(np.uint8)
        Image.fromarray(pixels[0]).save(train_dir / "00000_00000.ppm")
        Image.fromarray(pixels[1]).save(train_dir / "00000_00001.ppm")
        Image.fromarray(pixels[2]).save(test_dir / f"{c:05d}.ppm")
        rows.append(f"{c:05d}.ppm;12;12;0;0;11;11;{c}")
    (base / "GT-final_test.csv").write_text("\n".join(rows) + "\n")


def test_road_signs_quick_with_real_gtsrb_layout(tmp_path: Path, capsys) -> None:
    write_tiny_gtsrb(tmp_path / "data")
    text = run_quick("road_signs", tmp_path / "out", capsys, "--gtsrb-root", str(tmp_path / "data"))
    assert "Image leaves use real GTSRB images" in text
    assert [r[0] for r in table_rows(text, "## Table IV: circle")] == ["0.25"]


def test_certify_pretrained_quick(tmp_path: Path, capsys) -> None:
    text = run_quick("certify_pretrained", tmp_path, capsys)
    assert (tmp_path / "checkpoint.pth.tar").is_file()
    rows = table_rows(text, "## Certified accuracy\n")
    assert [r[0] for r in rows] == ["flat", "hierarchy (label)"]
    levels = table_rows(text, "## Certified accuracy per level")
    assert [r[0] for r in levels] == ["0", "label"]
    gain = table_rows(text, "## Certified information gain")
    assert all(0.0 <= float(v) <= 1.0 for r in gain for v in r[1:])
    assert "flat baseline equals the flat run (same draws): True" in text
