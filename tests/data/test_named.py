"""open_dataset on tiny files in the real on-disk formats: values, labels, laziness, refusals."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import hierclass.data as data_module
from hierclass.data import (
    CIFAR10_CLASSES,
    DATASET_SCHEMES,
    LazyInputs,
    NamedData,
    load_cifar100,
    load_digits,
    load_gtsrb,
    load_mnist_subset,
    open_dataset,
)

from .conftest import CIFAR100_COARSE_NAMES, CIFAR100_FINE_NAMES, write_cifar100_split


def _lazy(data: NamedData) -> LazyInputs:
    assert isinstance(data.inputs, LazyInputs)
    return data.inputs


# -- embedded ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "loader"), [("digits", load_digits), ("mnist5k", load_mnist_subset)]
)
def test_embedded_sets_default_to_test(name: str, loader) -> None:
    ds = loader()
    test, train = open_dataset(name), open_dataset(name, "train")
    torch.testing.assert_close(test.inputs, ds.x_test)
    assert test.labels.tolist() == ds.y_test.tolist()
    torch.testing.assert_close(train.inputs, ds.x_train)
    assert test.num_classes == 10 and test.classes == tuple("0123456789")


# -- MNIST ------------------------------------------------------------------------------


@pytest.mark.parametrize("split", [None, "train", "test"])
def test_mnist_reads_idx_lazily(mnist_root, split) -> None:
    root, arrays = mnist_root
    data = open_dataset(f"mnist:{root}", split)
    key = split or "test"
    x = _lazy(data)
    assert x.reads == 0 and len(data) == len(arrays[f"{key}_y"])
    assert data.labels.dtype == torch.int64
    assert data.labels.tolist() == arrays[f"{key}_y"].tolist()
    first = x[0]
    assert first.shape == (1, 28, 28) and x.reads == 1
    expected = torch.from_numpy(arrays[f"{key}_x"]).float().unsqueeze(1) / 255.0
    torch.testing.assert_close(first, expected[0], rtol=0, atol=0)
    torch.testing.assert_close(x[0 : len(data)], expected, rtol=0, atol=0)
    assert x.reads == 1 + len(data)
    assert data.num_classes == 10


def test_mnist_with_fewer_labels_than_images_refused(mnist_root) -> None:
    from .conftest import write_idx_labels

    root, _ = mnist_root
    write_idx_labels(root / "MNIST" / "raw" / "t10k-labels-idx1-ubyte", np.array([1, 2]))
    with pytest.raises(ValueError, match=r"hold 3 images of shape \(28, 28\) but 2 labels"):
        open_dataset(f"mnist:{root}")


def test_mnist_damaged_idx_refused(mnist_root) -> None:
    root, _ = mnist_root
    images = root / "MNIST" / "raw" / "t10k-images-idx3-ubyte"
    images.write_bytes(b"\x00\x00\x08\x03\x00\x00")
    with pytest.raises(ValueError, match="the MNIST test idx files in .* are not readable"):
        open_dataset(f"mnist:{root}")


# -- CIFAR-10 ---------------------------------------------------------------------------


@pytest.mark.parametrize("split", ["train", "test"])
def test_cifar10_rows_exact_and_lazy(cifar_root, split: str) -> None:
    root, arrays = cifar_root
    data = open_dataset(f"cifar10:{root}", split)
    x = _lazy(data)
    rows = arrays[f"{split}_x"]
    assert x.reads == 0 and len(x) == len(rows)
    assert data.labels.tolist() == arrays[f"{split}_y"].tolist()
    assert data.classes == CIFAR10_CLASSES and data.num_classes == 10
    k = 2
    batch = x[:k]
    assert x.reads == k and batch.shape == (k, 3, 32, 32) and batch.dtype == torch.float32
    expected = torch.from_numpy(rows[:k]).float().reshape(k, 3, 32, 32) / 255.0
    torch.testing.assert_close(batch, expected, rtol=0, atol=0)
    # Channel-major rows: value (c, h, w) is byte c * 1024 + h * 32 + w.
    assert x[k - 1][2, 5, 17].item() == rows[k - 1, 2 * 1024 + 5 * 32 + 17] / np.float32(255)


def test_cifar10_skips_the_md5_check(cifar_root) -> None:
    root, _ = cifar_root
    assert len(open_dataset(f"cifar10:{root}")) == 3  # the fixture is not the release


def test_cifar10_labels_out_of_range_refused_naming_the_file(cifar_root) -> None:
    from .conftest import _cifar_batch

    root, _ = cifar_root
    path = root / "cifar-10-batches-py" / "test_batch"
    _cifar_batch(path, np.zeros((2, 3072), dtype=np.uint8), [3, 10], "test")
    with pytest.raises(ValueError, match=rf"{path}: expected 'labels' in 0\.\.9, found 10"):
        open_dataset(f"cifar10:{root}")
    _cifar_batch(path, np.zeros((2, 3072), dtype=np.uint8), [-1, 0], "test")
    with pytest.raises(ValueError, match=rf"{path}: expected 'labels' in 0\.\.9, found -1"):
        open_dataset(f"cifar10:{root}")


def test_cifar10_non_pickle_refused_naming_the_file(cifar_root) -> None:
    root, _ = cifar_root
    path = root / "cifar-10-batches-py" / "test_batch"
    path.write_bytes(b"\x89PNG\r\n\x1a\n not a pickle at all")
    with pytest.raises(ValueError, match=rf"^{path} is not a readable CIFAR-10 python pickle"):
        open_dataset(f"cifar10:{root}")
    path.write_bytes(pickle.dumps([1, 2, 3], protocol=2))
    with pytest.raises(
        ValueError, match=rf"{path}: expected a CIFAR-10 pickle of a dict, got list"
    ):
        open_dataset(f"cifar10:{root}")
    path.write_bytes(pickle.dumps({"data": np.zeros((1, 3072), np.uint8)}, protocol=2))
    with pytest.raises(
        ValueError, match=rf"{path} is not a CIFAR-10 python batch \(no 'data'/'labels'"
    ):
        open_dataset(f"cifar10:{root}")
    path.write_bytes(pickle.dumps({"data": np.zeros((1, 3, 32, 32), np.uint8), "labels": [0]}))
    with pytest.raises(ValueError, match=r"expected 'data' uint8 of shape \[N, 3072\]"):
        open_dataset(f"cifar10:{root}")


def test_cifar_code_in_pickle_refused_as_value_error(cifar_root) -> None:
    root, _ = cifar_root
    path = root / "cifar-10-batches-py" / "test_batch"
    marker = root / "pwned"

    class Exploit:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    path.write_bytes(pickle.dumps({"data": Exploit(), "labels": [0]}, protocol=2))
    with pytest.raises(ValueError, match=rf"{path}: the CIFAR-10 file refers to \w+\.system"):
        open_dataset(f"cifar10:{root}")
    assert not marker.exists()


# -- CIFAR-100 --------------------------------------------------------------------------


@pytest.mark.parametrize("split", ["train", "test"])
def test_cifar100_fine_and_coarse(cifar100_root, split: str) -> None:
    root, arrays = cifar100_root
    fine = open_dataset(f"cifar100:{root}", split)
    coarse = open_dataset(f"cifar100-coarse:{root}", split)
    assert fine.labels.tolist() == arrays[f"{split}_fine"].tolist()
    assert coarse.labels.tolist() == arrays[f"{split}_coarse"].tolist()
    assert fine.classes == tuple(CIFAR100_FINE_NAMES) and fine.num_classes == 100
    assert coarse.classes == tuple(CIFAR100_COARSE_NAMES) and coarse.num_classes == 20
    x = _lazy(fine)
    assert x.reads == 0
    rows = torch.from_numpy(arrays[f"{split}_x"]).float().reshape(-1, 3, 32, 32) / 255.0
    torch.testing.assert_close(x[[0, -1]], rows[[0, -1]], rtol=0, atol=0)
    assert x.reads == 2 and _lazy(coarse).reads == 0


def test_cifar100_default_split_is_test(cifar100_root) -> None:
    root, arrays = cifar100_root
    assert len(open_dataset(f"cifar100:{root}")) == len(arrays["test_fine"])


def test_cifar100_without_meta_has_no_class_names(cifar100_root) -> None:
    root, arrays = cifar100_root
    (root / "cifar-100-python" / "meta").unlink()
    data = open_dataset(f"cifar100:{root}", "train")
    assert data.classes is None and data.num_classes == 100  # label 99 is in the fixture


def test_load_cifar100_tensors(cifar100_root) -> None:
    root, arrays = cifar100_root
    x, y = load_cifar100(root, train=False, labels="coarse", verify=False)
    assert x.shape == (3, 3, 32, 32) and x.dtype == torch.float32 and y.dtype == torch.int64
    torch.testing.assert_close(
        x.reshape(3, -1) * 255.0, torch.from_numpy(arrays["test_x"]).float(), rtol=0, atol=1e-4
    )
    assert y.tolist() == arrays["test_coarse"].tolist()
    with pytest.raises(ValueError, match="md5 of the official CIFAR-100 release.*verify=False"):
        load_cifar100(root, train=False)
    with pytest.raises(ValueError, match="labels must be 'fine' or 'coarse', got 'both'"):
        load_cifar100(root, labels="both")


def test_cifar100_md5s_are_torchvision_s() -> None:
    from torchvision.datasets import CIFAR100

    from hierclass.data import torchvision_sets

    source = Path(torchvision_sets.__file__).read_text()
    for _, md5 in CIFAR100.train_list + CIFAR100.test_list:
        assert md5 not in source  # read from torchvision at run time, never copied


def test_cifar100_labels_out_of_range_refused(cifar100_root) -> None:
    root, _ = cifar100_root
    path = root / "cifar-100-python" / "test"
    write_cifar100_split(path, np.zeros((2, 3072), dtype=np.uint8), [0, 100], [0, 19])
    with pytest.raises(ValueError, match=rf"{path}: expected 'fine_labels' in 0\.\.99, found 100"):
        open_dataset(f"cifar100:{root}")
    write_cifar100_split(path, np.zeros((2, 3072), dtype=np.uint8), [0, 1], [0, 20])
    with pytest.raises(ValueError, match=r"expected 'coarse_labels' in 0\.\.19, found 20"):
        open_dataset(f"cifar100-coarse:{root}")
    assert len(open_dataset(f"cifar100:{root}")) == 2  # the fine labels are fine


def test_cifar100_bad_meta_refused(cifar100_root) -> None:
    root, _ = cifar100_root
    meta = root / "cifar-100-python" / "meta"
    meta.write_bytes(pickle.dumps({b"fine_label_names": [b"a", b"b"]}, protocol=2))
    with pytest.raises(ValueError, match=rf"{meta}: expected 100 names under 'fine_label_names'"):
        open_dataset(f"cifar100:{root}")
    meta.write_text("garbage")
    with pytest.raises(ValueError, match=rf"{meta} is not a readable CIFAR-100 python pickle"):
        open_dataset(f"cifar100:{root}")


# -- GTSRB ------------------------------------------------------------------------------


@pytest.mark.parametrize("split", ["train", "test"])
def test_gtsrb_lazy_equals_the_eager_loader(gtsrb_root, split: str) -> None:
    root, written = gtsrb_root
    data = open_dataset(f"gtsrb:{root}", split)
    x = _lazy(data)
    assert x.reads == 0
    assert data.labels.tolist() == [label for label, _, _ in written[split]]
    assert data.num_classes == 43 and data.classes[14] == "Stop"
    eager, _ = load_gtsrb(root, split, image_size=32, verbose=False)
    torch.testing.assert_close(x[:], eager, rtol=0, atol=0)
    assert x.reads == len(written[split]) and x.sample_shape == (3, 32, 32)


def test_gtsrb_bad_class_id_refused(gtsrb_root) -> None:
    root, _ = gtsrb_root
    csv_path = root / "gtsrb" / "GT-final_test.csv"
    csv_path.write_text("Filename;ClassId\n00000.ppm;43\n")
    with pytest.raises(ValueError, match=r"00000\.ppm: GTSRB class id must be in 0\.\.42, got 43"):
        open_dataset(f"gtsrb:{root}")


def test_gtsrb_missing_split_names_the_layout(gtsrb_root, tmp_path: Path) -> None:
    empty = tmp_path / "nothing"
    empty.mkdir()
    with pytest.raises(ValueError) as info:
        open_dataset(f"gtsrb:{empty}", "train")
    message = str(info.value)
    assert "\n" not in message and "download=True" not in message
    assert message.startswith(f"gtsrb:{empty}: GTSRB train split not found")
    assert str(empty / "gtsrb" / "GTSRB" / "Training") in message


# -- ImageNet ---------------------------------------------------------------------------


def _imagenet_tree(folder: Path, n_classes: int = 1000) -> list[str]:
    """``n_classes`` wnid folders; classes 0, 1 and 999 hold a PNG/JPEG, the rest are empty."""
    wnids = [f"n{1440764 + 7 * k:08d}" for k in range(n_classes)]
    for w in wnids:
        (folder / w).mkdir(parents=True)
    Image.new("RGB", (300, 260), (255, 0, 0)).save(folder / wnids[0] / "ILSVRC2012_val_1.png")
    Image.new("RGB", (260, 300), (0, 0, 255)).save(folder / wnids[0] / "ILSVRC2012_val_0.JPEG")
    Image.new("L", (256, 256), 128).save(folder / wnids[1] / "ILSVRC2012_val_2.png")
    (folder / wnids[1] / "LOC_synset_mapping.txt").write_text("not an image")
    if n_classes == 1000:
        Image.new("RGB", (500, 375), (0, 255, 0)).save(folder / wnids[999] / "x.png")
    return wnids


def test_imagenet_val_lists_files_without_opening_them(tmp_path: Path) -> None:
    wnids = _imagenet_tree(tmp_path / "val")
    data = open_dataset(f"imagenet:{tmp_path}")
    x = _lazy(data)
    assert x.reads == 0 and len(data) == 4
    assert data.classes == tuple(wnids) and data.num_classes == 1000
    assert data.labels.tolist() == [0, 0, 1, 999]  # sorted names: val_0.JPEG, val_1.png
    batch = x[:]
    assert batch.shape == (4, 3, 224, 224) and x.reads == 4
    torch.testing.assert_close(
        batch[1], torch.tensor([1.0, 0, 0]).view(3, 1, 1).expand(3, 224, 224)
    )
    torch.testing.assert_close(batch[2], torch.full((3, 224, 224), 128 / 255.0))
    assert batch[0, 2].mean() > 0.9 and batch[0, :2].mean() < 0.1  # the JPEG is blue


def test_imagenet_root_holding_the_wnid_folders(tmp_path: Path) -> None:
    _imagenet_tree(tmp_path)
    data = open_dataset(f"imagenet:{tmp_path}", "test")
    assert len(data) == 4 and data.num_classes == 1000


def test_imagenet_train_split(tmp_path: Path) -> None:
    _imagenet_tree(tmp_path / "train")
    assert len(open_dataset(f"imagenet:{tmp_path}", "train")) == 4
    with pytest.raises(ValueError, match="holds neither val/ nor wnid class folders"):
        open_dataset(f"imagenet:{tmp_path}")


def test_imagenet_999_folders_refused(tmp_path: Path) -> None:
    _imagenet_tree(tmp_path / "val", n_classes=999)
    with pytest.raises(ValueError, match="holds 999 class folders; ImageNet needs exactly 1000"):
        open_dataset(f"imagenet:{tmp_path}")


def test_imagenet_missing_train_refused(tmp_path: Path) -> None:
    _imagenet_tree(tmp_path / "val", n_classes=3)
    with pytest.raises(ValueError, match=rf"{tmp_path / 'train'} is not a directory; expected"):
        open_dataset(f"imagenet:{tmp_path}", "train")


# -- imagefolder ------------------------------------------------------------------------


def _folder_tree(root: Path) -> dict[str, list[np.ndarray]]:
    rng = np.random.default_rng(3)
    written: dict[str, list[np.ndarray]] = {"cat": [], "ant": [], "bee": []}
    for name, count in (("cat", 2), ("ant", 1), ("bee", 0)):
        (root / name).mkdir(parents=True)
        for k in range(count):
            array = rng.integers(0, 256, size=(4, 6, 3), dtype=np.uint8)
            Image.fromarray(array).save(root / name / f"{k}.png")
            written[name].append(array)
    (root / ".ipynb_checkpoints").mkdir()
    (root / "cat" / "README.md").write_text("not an image")
    return written


def test_imagefolder_labels_by_sorted_name_values_exact(tmp_path: Path) -> None:
    written = _folder_tree(tmp_path)
    data = open_dataset(f"imagefolder:{tmp_path}")
    x = _lazy(data)
    assert x.reads == 0
    assert data.classes == ("ant", "bee", "cat")  # the empty class keeps its label
    assert data.labels.tolist() == [0, 2, 2]
    expected = [written["ant"][0], *written["cat"]]
    for i, array in enumerate(expected):
        torch.testing.assert_close(x[i], torch.from_numpy(array).permute(2, 0, 1) / 255.0)
    assert x.reads == 3


def test_imagefolder_sizes_must_match(tmp_path: Path) -> None:
    _folder_tree(tmp_path)
    odd = tmp_path / "cat" / "1.png"
    Image.new("RGB", (5, 5)).save(odd)
    x = _lazy(open_dataset(f"imagefolder:{tmp_path}"))
    x[0]
    with pytest.raises(
        ValueError, match=rf"{odd} has shape \(3, 5, 5\), but .*0\.png has \(3, 4, 6\)"
    ):
        x[:]


def test_imagefolder_matches_torchvision_order(tmp_path: Path) -> None:
    from torchvision.datasets import ImageFolder

    (tmp_path / "b" / "deep").mkdir(parents=True)
    (tmp_path / "a").mkdir()
    for path in ("b/z.png", "b/deep/a.png", "b/c.png", "a/q.png"):
        Image.new("RGB", (2, 2)).save(tmp_path / path)
    data = open_dataset(f"imagefolder:{tmp_path}")
    theirs = ImageFolder(str(tmp_path))
    assert data.labels.tolist() == theirs.targets and data.classes == tuple(theirs.classes)
    assert [str(p) for p in _lazy(data)._read.paths] == [p for p, _ in theirs.samples]


def test_imagefolder_refusals(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    _folder_tree(tmp_path / "here")  # an empty PATH must not scan the working directory
    with pytest.raises(ValueError, match="imagefolder: needs a PATH after the colon"):
        open_dataset("imagefolder:")
    with pytest.raises(ValueError, match="imagefolder: has no splits"):
        open_dataset(f"imagefolder:{tmp_path / 'here'}", "test")
    (tmp_path / "flat").mkdir()
    Image.new("RGB", (2, 2)).save(tmp_path / "flat" / "loose.png")
    with pytest.raises(ValueError, match=rf"{tmp_path / 'flat'} has no class folders"):
        open_dataset(f"imagefolder:{tmp_path / 'flat'}")
    (tmp_path / "hollow" / "a").mkdir(parents=True)
    (tmp_path / "hollow" / "a" / "notes.txt").write_text("x")
    with pytest.raises(ValueError, match="the 1 class folders of .*hollow hold no image files"):
        open_dataset(f"imagefolder:{tmp_path / 'hollow'}")
    with pytest.raises(
        ValueError, match=rf"{tmp_path / 'nope'} is not a directory; expected PATH/"
    ):
        open_dataset(f"imagefolder:{tmp_path / 'nope'}")


def test_imagefolder_truncated_image_named_when_read(tmp_path: Path) -> None:
    _folder_tree(tmp_path)
    cut = tmp_path / "ant" / "0.png"
    cut.write_bytes(cut.read_bytes()[:40])
    x = _lazy(open_dataset(f"imagefolder:{tmp_path}"))
    with pytest.raises(ValueError, match=rf"{cut} is not a readable image"):
        x[0]


# -- the name itself --------------------------------------------------------------------


def test_unknown_scheme_lists_the_accepted_ones() -> None:
    with pytest.raises(ValueError) as info:
        open_dataset("svhn:/data")
    for scheme in DATASET_SCHEMES:
        assert scheme in str(info.value)
    with pytest.raises(ValueError, match="unknown data set 'cifar-10'"):
        open_dataset("cifar-10")


@pytest.mark.parametrize(
    ("scheme", "layout"),
    [
        ("mnist", "ROOT/MNIST/raw/"),
        ("cifar10", "ROOT/cifar-10-batches-py/"),
        ("cifar100", "ROOT/cifar-100-python/"),
        ("cifar100-coarse", "ROOT/cifar-100-python/"),
        ("gtsrb", "ROOT/gtsrb/GTSRB/Training/"),
        ("imagenet", "ROOT/val/<wnid>/"),
    ],
)
def test_missing_root_names_it_and_the_layout(tmp_path: Path, scheme: str, layout: str) -> None:
    missing = tmp_path / "no-such-root"
    with pytest.raises(ValueError, match=rf"{missing} is not a directory; expected {layout}"):
        open_dataset(f"{scheme}:{missing}")
    with pytest.raises(ValueError, match=rf"{scheme}: needs a ROOT after the colon"):
        open_dataset(f"{scheme}:")


@pytest.mark.parametrize("scheme", ["mnist", "cifar10", "cifar100"])
def test_missing_files_under_an_existing_root_are_named(tmp_path: Path, scheme: str) -> None:
    with pytest.raises(ValueError) as info:
        open_dataset(f"{scheme}:{tmp_path}", "train")
    message = str(info.value)
    assert "\n" not in message and "not found; expected these files:" in message
    assert str(tmp_path) in message


@pytest.mark.parametrize("spec", ["digits", "mnist:{root}", "cifar10:{root}", "gtsrb:{root}"])
def test_wrong_split_refused(tmp_path: Path, spec: str) -> None:
    with pytest.raises(ValueError, match=r"split must be 'train' or 'test' .*got 'val'"):
        open_dataset(spec.format(root=tmp_path), "val")
    with pytest.raises(ValueError, match=r"split must be 'train' or 'test' .*got 'val'"):
        open_dataset(spec.format(root=tmp_path / "missing"), "val")  # before any file check


def test_argument_types_and_embedded_paths() -> None:
    with pytest.raises(TypeError, match="spec must be a str"):
        open_dataset(Path("digits"))  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="split must be a str or None, got bool"):
        open_dataset("digits", True)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="digits is embedded and takes no path"):
        open_dataset("digits:/data")


def test_named_data_checks_its_fields() -> None:
    with pytest.raises(ValueError, match=r"labels must be an int64 tensor \[N\], got torch.int32"):
        NamedData(torch.zeros(2, 1, 1, 1), torch.zeros(2, dtype=torch.int32), None)
    with pytest.raises(ValueError, match=r"labels must be in 0\.\.1 \(2 classes\), found 0\.\.2"):
        NamedData(torch.zeros(2, 1, 1, 1), torch.tensor([0, 2]), ("a", "b"))
    with pytest.raises(TypeError, match="inputs must be a tensor or LazyInputs, got list"):
        NamedData([1, 2], torch.tensor([0, 1]), None)  # type: ignore[arg-type]
    data = NamedData(torch.zeros(2, 1, 1, 1), torch.tensor([0, 4]), None)
    assert data.num_classes == 5 and "2 inputs" in repr(data)


def test_exports() -> None:
    for name in ("open_dataset", "NamedData", "LazyInputs", "read_image", "load_cifar100"):
        assert name in data_module.__all__ and hasattr(data_module, name)
    assert "DATASET_SCHEMES" in data_module.__all__
