"""Inputs read one at a time, on demand: a data set that never sits in memory as floats.

A full split of ImageNet (or even CIFAR-10 train as float32) is too big to hold as one
tensor, and certification touches one input at a time anyway. :class:`LazyInputs` is a
sequence whose item ``i`` is read (decoded, converted to float32 in [0, 1]) only when asked
for; ``x[a:b]`` and ``x[[i, j]]`` read just those items and stack them into a batch.

Every item of one :class:`LazyInputs` has the same shape: the first item read fixes it and an
item of another shape is refused naming it, so a batch can always be stacked and a model
never meets a size it was not built for.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

__all__ = ["LazyInputs"]


class _Uint8Rows:
    """Reads row ``i`` of a uint8 array ``[N, H, W]`` or ``[N, H, W, C]`` as ``[C, H, W]``.

    A class rather than a closure so a :class:`LazyInputs` pickles (DataLoader workers).
    """

    def __init__(self, array: np.ndarray) -> None:
        self.array = array

    def __call__(self, i: int) -> torch.Tensor:
        # np.array copies one row only (the source may be a read-only view or a memmap).
        row = torch.from_numpy(np.array(self.array[i]))
        row = row.unsqueeze(0) if row.ndim == 2 else row.permute(2, 0, 1).contiguous()
        return row.to(torch.float32).div_(255.0)


class _ImageFiles:
    """Reads file ``i`` with :func:`hierclass.data.images.read_image`."""

    def __init__(self, paths: tuple[Path, ...], transform: Callable[[Any], Any] | None) -> None:
        self.paths = paths
        self.transform = transform

    def __call__(self, i: int) -> torch.Tensor:
        from .images import read_image

        return read_image(self.paths[i], self.transform)

    def name(self, i: int) -> str:
        """File ``i``, as errors name it."""
        return str(self.paths[i])


def _name_of_row(i: int) -> str:
    return f"item {i}"


class LazyInputs:
    """A sequence of ``length`` inputs, item ``i`` produced by ``read(i)`` when indexed.

    Parameters
    ----------
    read : callable
        ``read(i)`` for ``0 <= i < length`` returns one input: a float32 tensor
        ``[C, H, W]`` with values in [0, 1].
    length : int
        Number of inputs.
    what : str
        What the inputs are, for messages (e.g. ``"cifar10:/data (test)"``).
    name_of : callable or None, default None
        ``name_of(i)`` names item ``i`` in errors (its file, say); None names it ``item i``.

    Attributes
    ----------
    reads : int
        How many items have been read so far (each index of a batch counts once).

    Examples
    --------
    >>> import torch
    >>> x = LazyInputs(lambda i: torch.full((1, 2, 2), i / 10), 5, "tenths")
    >>> len(x), x.reads
    (5, 0)
    >>> x[-1][0, 0, 0].item(), x.reads
    (0.4..., 1)
    >>> x[1:3].shape, x.reads
    (torch.Size([2, 1, 2, 2]), 3)
    >>> x[5]
    Traceback (most recent call last):
    ...
    IndexError: tenths: index 5 is out of range for 5 inputs (valid: -5..4)
    """

    def __init__(
        self,
        read: Callable[[int], torch.Tensor],
        length: int,
        what: str,
        *,
        name_of: Callable[[int], str] | None = None,
    ) -> None:
        if not callable(read):
            raise TypeError(f"read must be a callable taking an index, got {type(read).__name__}")
        if isinstance(length, bool) or not isinstance(length, int | np.integer) or length < 0:
            raise ValueError(f"length must be an int >= 0, got {length!r}")
        if not isinstance(what, str) or not what:
            raise ValueError(f"what must be a non-empty str naming the inputs, got {what!r}")
        self._read = read
        self._length = int(length)
        self.what = what
        # How an item is named in errors: its file for files, "item i" otherwise.
        self._name_of = name_of or _name_of_row
        self.reads = 0
        self._shape: tuple[int, ...] | None = None
        self._shape_from: str | None = None

    # -- constructors -------------------------------------------------------------------
    @classmethod
    def from_uint8(cls, array: np.ndarray, what: str) -> LazyInputs:
        """Inputs from a uint8 array ``[N, H, W]`` (one channel) or ``[N, H, W, C]``.

        Each access converts one row to float32 (value / 255), so the float copy of the
        whole array is never made.

        Examples
        --------
        >>> import numpy as np
        >>> x = LazyInputs.from_uint8(np.full((3, 2, 2, 3), 255, dtype=np.uint8), "white")
        >>> x[0].shape, x[0].max().item()
        (torch.Size([3, 2, 2]), 1.0)
        >>> LazyInputs.from_uint8(np.zeros((3, 2), dtype=np.uint8), "flat")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        ValueError: flat: expected a uint8 numpy array [N, H, W] or [N, H, W, C], got uint8 ...
        """
        if not isinstance(array, np.ndarray):
            raise TypeError(
                f"{what}: expected a uint8 numpy array [N, H, W] or [N, H, W, C], "
                f"got {type(array).__name__}"
            )
        if array.dtype != np.uint8 or array.ndim not in (3, 4):
            raise ValueError(
                f"{what}: expected a uint8 numpy array [N, H, W] or [N, H, W, C], "
                f"got {array.dtype} of shape {array.shape}"
            )
        return cls(_Uint8Rows(array), len(array), what)

    @classmethod
    def from_files(
        cls,
        paths: Sequence[str | Path],
        transform: Callable[[Any], Any] | None = None,
        what: str = "images",
    ) -> LazyInputs:
        """Inputs read from image files by :func:`~hierclass.data.images.read_image`.

        Parameters
        ----------
        paths : sequence of str or Path
            One file per input; nothing is opened until an item is read.
        transform : callable or None
            Applied to each PIL image before it becomes a tensor (resize, crop).
        what : str
            What the inputs are, for messages.

        Examples
        --------
        >>> import os, tempfile
        >>> from PIL import Image
        >>> path = os.path.join(tempfile.mkdtemp(), "red.png")
        >>> Image.new("RGB", (4, 3), (255, 0, 0)).save(path)
        >>> x = LazyInputs.from_files([path], what="one file")
        >>> x.reads, x.sample_shape, x.reads
        (0, (3, 3, 4), 1)
        """
        if isinstance(paths, str | Path) or not isinstance(paths, Sequence):
            raise TypeError(
                f"{what}: paths must be a sequence of file paths, got {type(paths).__name__}"
            )
        files = tuple(Path(p) for p in paths)
        if transform is not None and not callable(transform):
            raise TypeError(
                f"{what}: transform must be a callable or None, got {type(transform).__name__}"
            )
        reader = _ImageFiles(files, transform)
        return cls(reader, len(files), what, name_of=reader.name)

    # -- sequence protocol --------------------------------------------------------------
    def __len__(self) -> int:
        return self._length

    def __iter__(self) -> Iterator[torch.Tensor]:
        for i in range(self._length):
            yield self._item(i)

    def __getitem__(self, index: Any) -> torch.Tensor:
        if isinstance(index, torch.Tensor) and index.ndim == 0:
            index = index.item()
        if isinstance(index, int | np.integer) and not isinstance(index, bool | np.bool_):
            return self._item(self._position(int(index)))
        if isinstance(index, slice):
            return self._stack(range(self._length)[index])
        if isinstance(index, torch.Tensor | np.ndarray):
            if index.ndim != 1 or index.dtype in (torch.bool, np.bool_):
                raise TypeError(
                    f"{self.what}: an index array must be 1-D integers, got "
                    f"{index.dtype} of shape {tuple(index.shape)}"
                )
            index = index.tolist()
        if isinstance(index, list | tuple | range):
            positions = []
            for i in index:
                if isinstance(i, bool) or not isinstance(i, int | np.integer):
                    raise TypeError(
                        f"{self.what}: indices must be ints, got {type(i).__name__} ({i!r})"
                    )
                positions.append(self._position(int(i)))
            return self._stack(positions)
        raise TypeError(
            f"{self.what}: index must be an int, a slice or a sequence of ints, "
            f"got {type(index).__name__}"
        )

    def __repr__(self) -> str:
        return f"LazyInputs({self.what!r}, {self._length} inputs, {self.reads} read)"

    # -- helpers ------------------------------------------------------------------------
    @property
    def sample_shape(self) -> tuple[int, ...]:
        """``(C, H, W)`` of one input: known once any item was read, else item 0 is read."""
        if self._shape is None:
            if self._length == 0:
                raise ValueError(f"{self.what}: there are no inputs to take a shape from")
            self._item(0)
        assert self._shape is not None
        return self._shape

    def _position(self, i: int) -> int:
        n = self._length
        if not -n <= i < n:
            valid = f"-{n}..{n - 1}" if n else "none"
            raise IndexError(
                f"{self.what}: index {i} is out of range for {n} inputs (valid: {valid})"
            )
        return i % n

    def _stack(self, positions: Sequence[int]) -> torch.Tensor:
        if len(positions) == 0:
            shape = self._shape if self._shape is not None else ()
            return torch.empty((0, *shape), dtype=torch.float32)
        return torch.stack([self._item(i) for i in positions])

    def _item(self, i: int) -> torch.Tensor:
        name = self._name_of(i)
        try:
            value = self._read(i)
        except Exception as err:  # noqa: BLE001 - readers fail in as many ways as files do
            message = str(err).splitlines()[0] if str(err) else type(err).__name__
            if isinstance(err, ValueError) and name in message:
                raise
            raise ValueError(
                f"{self.what}: {name} cannot be read ({type(err).__name__}: {message})"
            ) from err
        self.reads += 1
        if not isinstance(value, torch.Tensor) or value.dtype != torch.float32 or value.ndim != 3:
            got = (
                f"{value.dtype} of shape {tuple(value.shape)}"
                if isinstance(value, torch.Tensor)
                else type(value).__name__
            )
            raise ValueError(
                f"{self.what}: {name} should read as a float32 tensor [C, H, W], got {got}"
            )
        shape = tuple(value.shape)
        if self._shape is None:
            self._shape, self._shape_from = shape, name
        elif shape != self._shape:
            raise ValueError(
                f"{self.what}: {name} has shape {shape}, but {self._shape_from} has "
                f"{self._shape}; all inputs must share one size (resize them first)"
            )
        low, high = torch.aminmax(value) if value.numel() else (value.new_zeros(()),) * 2
        if not (0.0 <= low.item() and high.item() <= 1.0):
            raise ValueError(
                f"{self.what}: {name} has values in [{low.item():g}, {high.item():g}], "
                "expected [0, 1]"
            )
        return value
