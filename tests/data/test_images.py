"""read_image: exact values, 16-bit grayscale kept, every bad file one ValueError naming it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from hierclass.data import read_image
from hierclass.data.images import cohen_imagenet_transform, resize_transform


def test_rgb_png_values_exact(tmp_path: Path) -> None:
    array = np.random.default_rng(0).integers(0, 256, size=(4, 5, 3), dtype=np.uint8)
    path = tmp_path / "rgb.png"
    Image.fromarray(array).save(path)
    x = read_image(path)
    assert x.dtype == torch.float32 and x.shape == (3, 4, 5) and x.is_contiguous()
    torch.testing.assert_close(x, torch.from_numpy(array).permute(2, 0, 1) / 255.0)


@pytest.mark.parametrize("mode", ["L", "P", "RGBA", "LA", "1"])
def test_other_modes_become_rgb(tmp_path: Path, mode: str) -> None:
    path = tmp_path / f"{mode}.png"
    Image.new("RGB", (3, 2), (255, 255, 255)).convert(mode).save(path)
    x = read_image(path)
    assert x.shape == (3, 2, 3)
    torch.testing.assert_close(x, torch.ones(3, 2, 3))


def test_sixteen_bit_png_keeps_values_above_255(tmp_path: Path) -> None:
    path = tmp_path / "deep.png"
    Image.fromarray(np.array([[0, 1000], [60000, 65535]], dtype=np.uint16)).save(path)
    with Image.open(path) as img:
        assert img.mode.startswith("I")  # PIL opens it as 16-bit, not 8-bit
    x = read_image(path)
    assert x.shape == (3, 2, 2)
    expected = torch.tensor([[0, 1000], [60000, 65535]], dtype=torch.float32) / 65535.0
    for channel in x:
        torch.testing.assert_close(channel, expected, rtol=0, atol=0)
    assert x[0, 0, 1] != x[0, 1, 0]  # convert("RGB") would clip both to 1.0


def test_sixteen_bit_values_survive_a_resize(tmp_path: Path) -> None:
    path = tmp_path / "flat16.png"
    Image.fromarray(np.full((6, 8), 40000, dtype=np.uint16)).save(path)
    x = read_image(path, resize_transform(3))
    assert x.shape == (3, 3, 3)
    torch.testing.assert_close(x, torch.full((3, 3, 3), 40000 / 65535.0))


def test_transform_runs_on_the_pil_image(tmp_path: Path) -> None:
    path = tmp_path / "wide.png"
    Image.new("RGB", (40, 20), (10, 20, 30)).save(path)
    assert read_image(path, resize_transform((5, 7))).shape == (3, 5, 7)
    with pytest.raises(TypeError, match="transform must return a PIL image.*got Tensor"):
        read_image(path, lambda img: torch.zeros(3, 2, 2))


def test_decompression_bomb_is_refused(tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "big.png"
    Image.new("RGB", (10, 10)).save(path)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 20)  # 100 pixels > 2 x 20
    with pytest.raises(ValueError) as info:
        read_image(path)
    message = str(info.value)
    assert message.startswith(f"{path} is larger than PIL's decompression-bomb limit of 40 pixels")
    assert "raise PIL.Image.MAX_IMAGE_PIXELS if you trust it" in message


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_truncated_file_is_refused_naming_it(tmp_path: Path, fmt: str) -> None:
    path = tmp_path / f"cut.{fmt.lower()}"
    noise = np.random.default_rng(1).integers(0, 256, size=(64, 64, 3), dtype=np.uint8)
    Image.fromarray(noise).save(path, format=fmt)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(ValueError, match=rf"^{path} is not a readable image \("):
        read_image(path)


def test_not_an_image_and_missing_files(tmp_path: Path) -> None:
    text = tmp_path / "notes.png"
    text.write_text("not pixels")
    with pytest.raises(ValueError, match=rf"{text} is not a readable image \(Unidentified"):
        read_image(text)
    with pytest.raises(ValueError, match=rf"{tmp_path / 'gone.jpg'} is not a file"):
        read_image(tmp_path / "gone.jpg")
    with pytest.raises(ValueError, match=rf"{tmp_path} is not a file"):
        read_image(tmp_path)
    with pytest.raises(TypeError, match="path must be a str or pathlib.Path, got int"):
        read_image(3)  # type: ignore[arg-type]


def test_cohen_transform_is_resize_256_then_centre_crop_224(tmp_path: Path) -> None:
    path = tmp_path / "photo.jpg"
    # A left half black, right half white image: the crop keeps the centre columns.
    array = np.zeros((300, 400, 3), dtype=np.uint8)
    array[:, 200:] = 255
    Image.fromarray(array).save(path, quality=100)
    x = read_image(path, cohen_imagenet_transform())
    assert x.shape == (3, 224, 224)
    assert x[:, :, :50].max() < 0.05 and x[:, :, -50:].min() > 0.95


def test_resize_transform_checks_size() -> None:
    for bad in (0, (3,), (3, 0), 2.5, True):
        with pytest.raises(ValueError, match="size must be an int >= 1 or a"):
            resize_transform(bad)  # type: ignore[arg-type]


def test_thirty_two_bit_integer_images(tmp_path: Path) -> None:
    fits = tmp_path / "fits.tif"
    Image.fromarray(np.array([[1000, 60000]], dtype=np.int32)).save(fits)
    with Image.open(fits) as img:
        assert img.mode == "I"
    torch.testing.assert_close(read_image(fits)[0], torch.tensor([[1000, 60000]]) / 65535.0)
    beyond = tmp_path / "beyond.tif"
    Image.fromarray(np.array([[70000, 5]], dtype=np.int32)).save(beyond)
    with pytest.raises(ValueError, match=rf"{beyond}: 32-bit integer pixels in \[5, 70000\]"):
        read_image(beyond)
