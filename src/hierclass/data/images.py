"""One image file to one float tensor, and the transforms the named data sets resize with.

:func:`read_image` is the only place an image file is decoded. It keeps what PIL's
``convert("RGB")`` would lose: a 16-bit grayscale PNG is scaled by 1/65535, so values above
255 stay distinct instead of being clipped to white. Every failure (a missing, truncated or
unidentifiable file, a decompression bomb) is one ``ValueError`` naming the file.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

__all__ = ["cohen_imagenet_transform", "read_image", "resize_transform"]

# Modes PIL opens 16-bit grayscale files in ("I" for 16-bit PNGs in older Pillow versions).
_SIXTEEN_BIT = ("I;16", "I;16B", "I;16L", "I")


def read_image(path: str | Path, transform: Callable[[Any], Any] | None = None) -> torch.Tensor:
    """Decode one image file into a float32 tensor ``[3, H, W]`` with values in [0, 1].

    Parameters
    ----------
    path : str or Path
        The image file (any format PIL reads).
    transform : callable or None, default None
        Applied to the PIL image before it becomes a tensor (e.g. :func:`resize_transform`,
        :func:`cohen_imagenet_transform`); it must return a PIL image.

    Returns
    -------
    torch.Tensor
        float32 ``[3, H, W]``: 8-bit images scaled by 1/255 and converted to RGB; 16-bit
        grayscale (PIL modes ``I;16``, ``I;16B``, ``I``) scaled by 1/65535 and repeated on
        the three channels.

    Raises
    ------
    ValueError
        If the file is missing, not an image, truncated, or larger than PIL's
        decompression-bomb limit.

    Examples
    --------
    >>> import os, tempfile
    >>> import numpy as np
    >>> from PIL import Image
    >>> path = os.path.join(tempfile.mkdtemp(), "deep.png")
    >>> Image.fromarray(np.array([[1000, 60000]], dtype=np.uint16)).save(path)
    >>> x = read_image(path)
    >>> x.shape, round(x[0, 0, 1].item() * 65535)
    (torch.Size([3, 1, 2]), 60000)
    >>> read_image(os.path.join(os.path.dirname(path), "missing.png"))  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: .../missing.png is not a file
    """
    from PIL import Image

    if not isinstance(path, str | Path):
        raise TypeError(f"path must be a str or pathlib.Path, got {type(path).__name__}")
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path} is not a file")
    try:
        with Image.open(path) as img:
            img.load()  # decode now: a truncated file fails here, inside this try
            if img.mode in _SIXTEEN_BIT:
                scale = 65535.0
                # Mode "F" holds the 16-bit values exactly and is what resize/crop accept.
                img = _sixteen_bit_as_float(img, path)
            else:
                scale = 255.0
                img = img.convert("RGB")
    except Image.DecompressionBombError:
        limit = 2 * (Image.MAX_IMAGE_PIXELS or 0)
        raise ValueError(
            f"{path} is larger than PIL's decompression-bomb limit of {limit} pixels "
            "(2 x PIL.Image.MAX_IMAGE_PIXELS); raise PIL.Image.MAX_IMAGE_PIXELS if you trust it"
        ) from None
    except ValueError as err:
        if str(path) in str(err):
            raise
        raise ValueError(f"{path} is not a readable image (ValueError: {err})") from None
    except Exception as err:  # noqa: BLE001 - PIL raises OSError, SyntaxError, struct.error...
        raise ValueError(f"{path} is not a readable image ({type(err).__name__}: {err})") from None
    if transform is not None:
        img = transform(img)
        if not isinstance(img, Image.Image):
            raise TypeError(
                f"transform must return a PIL image (read_image makes the tensor itself), "
                f"got {type(img).__name__}"
            )
    array = np.array(img, dtype=np.float32) / np.float32(scale)
    tensor = torch.from_numpy(array)
    if tensor.ndim == 2:
        return tensor.unsqueeze(0).repeat(3, 1, 1)
    return tensor.permute(2, 0, 1).contiguous()


def _sixteen_bit_as_float(img: Any, path: Path) -> Any:
    from PIL import Image

    values = np.asarray(img)
    if img.mode == "I" and values.size and (values.min() < 0 or values.max() > 65535):
        raise ValueError(
            f"{path}: 32-bit integer pixels in [{values.min()}, {values.max()}], "
            "expected 16-bit values in 0..65535"
        )
    return Image.fromarray(values.astype(np.float32))  # mode "F"


def resize_transform(size: int | tuple[int, int]) -> Callable[[Any], Any]:
    """Resize a whole PIL image (bilinear) to ``size x size``, or to ``(height, width)``.

    Unlike ``torchvision.transforms.Resize(int)``, an int gives a square, not a shorter side.

    Examples
    --------
    >>> from PIL import Image
    >>> resize_transform(32)(Image.new("RGB", (45, 40))).size
    (32, 32)
    >>> resize_transform(0)
    Traceback (most recent call last):
    ...
    ValueError: size must be an int >= 1 or a (height, width) pair of them, got 0
    """
    from torchvision import transforms

    pair = (size, size) if isinstance(size, int | np.integer) else size
    if (
        not isinstance(pair, tuple | list)
        or len(pair) != 2
        or any(isinstance(s, bool) or not isinstance(s, int | np.integer) or s < 1 for s in pair)
    ):
        raise ValueError(
            f"size must be an int >= 1 or a (height, width) pair of them, got {size!r}"
        )
    return transforms.Resize(
        (int(pair[0]), int(pair[1])), interpolation=transforms.InterpolationMode.BILINEAR
    )


def cohen_imagenet_transform() -> Callable[[Any], Any]:
    """ImageNet's test-time transform of Cohen et al. (2019): ``Resize(256)``, ``CenterCrop(224)``.

    The shorter side is resized to 256 and the central 224 x 224 kept, as in their
    randomized-smoothing code, so certified radii are comparable with theirs.

    Examples
    --------
    >>> from PIL import Image
    >>> cohen_imagenet_transform()(Image.new("RGB", (500, 375))).size
    (224, 224)
    """
    from torchvision import transforms

    return transforms.Compose([transforms.Resize(256), transforms.CenterCrop(224)])
