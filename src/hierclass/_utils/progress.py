"""The progress-bar policy, in one place.

``verbose=True`` shows a bar, ``verbose=False`` never does, and ``verbose=None`` (the default
of long-running calls) shows one only when stderr is a terminal, so logs redirected to a file
stay free of carriage-return updates.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator
from typing import Any, TypeVar

T = TypeVar("T")


def show_progress(verbose: bool | None) -> bool:
    """Whether a bar is shown for ``verbose`` (see the module docstring).

    Examples
    --------
    >>> show_progress(True), show_progress(False)
    (True, False)
    """
    if verbose is None:
        return bool(getattr(sys.stderr, "isatty", lambda: False)())
    if not isinstance(verbose, bool):
        raise TypeError(f"verbose must be True, False or None, got {verbose!r}")
    return verbose


def progress_bar(verbose: bool | None, **kwargs: Any) -> Any:
    """A tqdm bar (``tqdm(**kwargs)``) when :func:`show_progress` says so, else ``None``."""
    if not show_progress(verbose):
        return None
    from tqdm.auto import tqdm

    return tqdm(**kwargs)


def progress(items: Iterable[T], desc: str, verbose: bool | None, **kwargs: Any) -> Iterator[T]:
    """Iterate ``items`` with a bar when :func:`show_progress` says so.

    Examples
    --------
    >>> list(progress([1, 2], "demo", verbose=False))
    [1, 2]
    """
    if show_progress(verbose):
        from tqdm.auto import tqdm

        yield from tqdm(items, desc=desc, leave=False, **kwargs)
    else:
        yield from items
