"""Small helpers shared by the data loaders."""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")


def check_root(root: object) -> Path:
    """Validate a data root argument (``str`` or ``Path``)."""
    if not isinstance(root, str | Path):
        raise TypeError(f"root must be a str or pathlib.Path, got {type(root).__name__}")
    return Path(root).expanduser()


def progress(items: Iterable[T], desc: str, verbose: bool) -> Iterator[T]:
    """tqdm over ``items`` when ``verbose`` and stderr is a terminal, plain iteration otherwise."""
    if verbose and sys.stderr.isatty():
        from tqdm.auto import tqdm

        yield from tqdm(items, desc=desc, leave=False)
    else:
        yield from items
