"""LazyInputs: read on demand, counted, one shape, every failure a ValueError naming the item."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from hierclass.data import LazyInputs


def _rows(n: int = 4, channels: int | None = 3) -> np.ndarray:
    shape = (n, 5, 6) if channels is None else (n, 5, 6, channels)
    return np.random.default_rng(0).integers(0, 256, size=shape, dtype=np.uint8)


def test_from_uint8_channels_last_values_and_laziness() -> None:
    array = _rows()
    x = LazyInputs.from_uint8(array, "rows")
    assert len(x) == 4 and x.reads == 0
    item = x[2]
    assert x.reads == 1
    assert item.dtype == torch.float32 and item.shape == (3, 5, 6)
    expected = torch.from_numpy(array[2]).permute(2, 0, 1).float() / 255.0
    torch.testing.assert_close(item, expected, rtol=0, atol=0)
    assert item.is_contiguous()


def test_from_uint8_single_channel_gets_a_channel_axis() -> None:
    array = _rows(channels=None)
    x = LazyInputs.from_uint8(array, "gray")
    assert x.sample_shape == (1, 5, 6) and x.reads == 1
    torch.testing.assert_close(x[-1][0], torch.from_numpy(array[-1]).float() / 255.0)


def test_from_uint8_keeps_the_array_and_never_converts_it_whole() -> None:
    array = _rows()
    x = LazyInputs.from_uint8(array, "rows")
    x[0].mul_(0)  # an item is a copy: editing it leaves the source alone
    assert array[0].any()


def test_batches_by_slice_list_and_arrays() -> None:
    array = _rows(6)
    x = LazyInputs.from_uint8(array, "rows")
    whole = torch.from_numpy(array).permute(0, 3, 1, 2).float() / 255.0
    torch.testing.assert_close(x[1:4], whole[1:4], rtol=0, atol=0)
    assert x.reads == 3
    torch.testing.assert_close(x[[5, 0, -1]], whole[[5, 0, 5]], rtol=0, atol=0)
    torch.testing.assert_close(x[np.array([2, 3])], whole[2:4], rtol=0, atol=0)
    torch.testing.assert_close(x[torch.tensor([4])], whole[4:5], rtol=0, atol=0)
    torch.testing.assert_close(x[torch.tensor(1)], whole[1], rtol=0, atol=0)
    torch.testing.assert_close(x[np.int64(3)], whole[3], rtol=0, atol=0)
    assert x.reads == 3 + 3 + 2 + 1 + 1 + 1
    assert x[::-2].shape == (3, 3, 5, 6)


def test_empty_selection_has_the_known_shape() -> None:
    x = LazyInputs.from_uint8(_rows(), "rows")
    assert x[2:2].shape == (0,)  # nothing read yet: the shape is unknown
    x[0]
    assert x[2:2].shape == (0, 3, 5, 6) and x[[]].shape == (0, 3, 5, 6)


def test_iteration_reads_each_item_once() -> None:
    x = LazyInputs.from_uint8(_rows(3), "rows")
    assert [t.shape for t in x] == [(3, 5, 6)] * 3 and x.reads == 3


@pytest.mark.parametrize("index", [4, -5, 100])
def test_out_of_range_says_the_range(index: int) -> None:
    x = LazyInputs.from_uint8(_rows(), "rows")
    with pytest.raises(IndexError, match=rf"rows: index {index} is out of range for 4 inputs "):
        x[index]
    with pytest.raises(IndexError, match=r"\(valid: -4\.\.3\)"):
        x[[0, index]]
    assert x.reads == 0  # a batch is checked before anything is read


def test_bad_indices_refused() -> None:
    x = LazyInputs.from_uint8(_rows(), "rows")
    with pytest.raises(TypeError, match="index must be an int, a slice or a sequence of ints"):
        x[1.0]
    with pytest.raises(TypeError, match="indices must be ints, got bool"):
        x[[True, False]]
    with pytest.raises(TypeError, match="an index array must be 1-D integers"):
        x[np.array([True, False, True, True])]
    with pytest.raises(TypeError, match="index must be an int"):
        x[True]


def test_a_failing_reader_is_a_value_error_naming_the_item() -> None:
    def read(i: int) -> torch.Tensor:
        raise OSError("disk on fire")

    x = LazyInputs(read, 3, "broken")
    with pytest.raises(
        ValueError, match=r"broken: item 1 cannot be read \(OSError: disk on fire\)"
    ):
        x[1]
    assert x.reads == 0


def test_items_are_checked() -> None:
    x = LazyInputs(lambda i: torch.zeros(2, 2), 1, "flat")
    with pytest.raises(ValueError, match=r"item 0 should read as a float32 tensor \[C, H, W\]"):
        x[0]
    x = LazyInputs(lambda i: torch.full((1, 2, 2), 2.0), 1, "bright")
    with pytest.raises(ValueError, match=r"values in \[2, 2\], expected \[0, 1\]"):
        x[0]
    x = LazyInputs(lambda i: torch.full((1, 2, 2), float("nan")), 1, "nan")
    with pytest.raises(ValueError, match=r"expected \[0, 1\]"):
        x[0]


def test_one_shape_for_all_items() -> None:
    x = LazyInputs(lambda i: torch.zeros(1, 2 + i, 2), 3, "growing")
    x[0]
    with pytest.raises(
        ValueError, match=r"item 2 has shape \(1, 4, 2\), but item 0 has \(1, 2, 2\)"
    ):
        x[2]


def test_from_files_opens_nothing_until_read(tmp_path: Path) -> None:
    good = tmp_path / "a.png"
    Image.new("RGB", (3, 2), (0, 255, 0)).save(good)
    missing = tmp_path / "gone.png"
    x = LazyInputs.from_files([good, missing], what="two files")
    assert len(x) == 2 and x.reads == 0
    assert x[0][1].min().item() == 1.0 and x.reads == 1
    with pytest.raises(ValueError, match=rf"{missing} is not a file"):
        x[1]


def test_from_files_applies_the_transform(tmp_path: Path) -> None:
    from hierclass.data.images import resize_transform

    path = tmp_path / "a.png"
    Image.new("RGB", (9, 7), (0, 0, 255)).save(path)
    x = LazyInputs.from_files([str(path)], resize_transform(4), "resized")
    assert x.sample_shape == (3, 4, 4)


def test_pickles_for_dataloader_workers() -> None:
    array = _rows()
    x = pickle.loads(pickle.dumps(LazyInputs.from_uint8(array, "rows")))
    torch.testing.assert_close(x[1], LazyInputs.from_uint8(array, "rows")[1])


def test_constructor_arguments_checked() -> None:
    with pytest.raises(TypeError, match="read must be a callable"):
        LazyInputs(3, 1, "x")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="length must be an int >= 0, got -1"):
        LazyInputs(lambda i: torch.zeros(1, 1, 1), -1, "x")
    with pytest.raises(ValueError, match="what must be a non-empty str"):
        LazyInputs(lambda i: torch.zeros(1, 1, 1), 1, "")
    with pytest.raises(ValueError, match="expected a uint8 numpy array .* got float32"):
        LazyInputs.from_uint8(np.zeros((2, 3, 3), dtype=np.float32), "floats")
    with pytest.raises(TypeError, match="expected a uint8 numpy array .* got Tensor"):
        LazyInputs.from_uint8(torch.zeros(2, 3, 3, dtype=torch.uint8), "tensor")  # type: ignore
    with pytest.raises(TypeError, match="paths must be a sequence of file paths, got str"):
        LazyInputs.from_files("a.png")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="there are no inputs to take a shape from"):
        _ = LazyInputs.from_files([]).sample_shape


def test_file_inputs_pickle_too(tmp_path: Path) -> None:
    path = tmp_path / "a.png"
    Image.new("RGB", (2, 2), (255, 0, 0)).save(path)
    x = pickle.loads(pickle.dumps(LazyInputs.from_files([path], what="files")))
    assert x[0][0].min().item() == 1.0
    with pytest.raises(ValueError, match=rf"{tmp_path / 'b.png'} is not a file"):
        pickle.loads(pickle.dumps(LazyInputs.from_files([tmp_path / "b.png"])))[0]
