"""``package.module:factory`` arguments of the CLI: import, keyword arguments, one-line errors.

A MODEL or ``--dataset`` may name a factory; ``--model-arg KEY=VALUE`` / ``--data-arg
KEY=VALUE`` pass it keyword arguments. Values are Python literals (``3``, ``0.5``, ``True``,
``None``, ``[1, 2]``, ``'text'``); anything else that does not look like an attempt at one is
taken as a string, so ``path=weights/model.pt`` needs no quotes. The working directory is on
the import path while the factory is imported and called, as for ``python -m``.
"""

from __future__ import annotations

import ast
import contextlib
import importlib
import inspect
import os
import sys
from collections.abc import Iterator, Sequence
from typing import Any

__all__ = ["call_factory", "import_factory", "parse_factory_args"]

_LITERAL_STARTS = "[({'\"-+.0123456789"


def parse_factory_args(pairs: Sequence[str] | None, flag: str) -> dict[str, Any]:
    """``["k=1", "name=x"]`` -> ``{"k": 1, "name": "x"}``, refusing what is not ``KEY=VALUE``.

    Examples
    --------
    >>> parse_factory_args(["depth=20", "path=runs/m.pt", "widths=[16, 32]"], "--model-arg")
    {'depth': 20, 'path': 'runs/m.pt', 'widths': [16, 32]}
    >>> parse_factory_args(["depth"], "--model-arg")
    Traceback (most recent call last):
    ...
    ValueError: --model-arg 'depth': expected KEY=VALUE
    >>> parse_factory_args(["w=[16, 32"], "--model-arg")
    Traceback (most recent call last):
    ...
    ValueError: --model-arg 'w=[16, 32': '[16, 32' is not a Python literal (quote a string: w='...')
    """
    out: dict[str, Any] = {}
    for pair in pairs or ():
        key, sep, text = pair.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ValueError(f"{flag} {pair!r}: expected KEY=VALUE")
        if not key.isidentifier():
            raise ValueError(f"{flag} {pair!r}: {key!r} is not a keyword argument name")
        if key in out:
            raise ValueError(f"{flag} {pair!r}: {key!r} is given twice")
        out[key] = _value(text, pair, key, flag)
    return out


def _value(text: str, pair: str, key: str, flag: str) -> Any:
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        stripped = text.strip()
        if stripped[:1] and stripped[0] in _LITERAL_STARTS or stripped in ("", "True", "False"):
            raise ValueError(
                f"{flag} {pair!r}: {text!r} is not a Python literal (quote a string: {key}='...')"
            ) from None
        return text


@contextlib.contextmanager
def _cwd_importable() -> Iterator[None]:
    """The working directory first on ``sys.path`` for the duration, then as before."""
    cwd = os.getcwd()
    added = cwd not in sys.path
    if added:
        sys.path.insert(0, cwd)
    try:
        yield
    finally:
        if added and cwd in sys.path:
            sys.path.remove(cwd)


def import_factory(spec: str, what: str) -> Any:
    """``package.module:name`` -> the callable, with one clear error for each way it fails.

    Examples
    --------
    >>> import_factory("torch.nn:Identity", "MODEL").__name__
    'Identity'
    >>> import_factory("math:pi", "MODEL")
    Traceback (most recent call last):
    ...
    TypeError: MODEL 'math:pi': 'pi' is a float, not a callable
    """
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise ValueError(f"{what} {spec!r}: expected package.module:name")
    with _cwd_importable():
        try:
            module = importlib.import_module(module_name)
        except ImportError as err:
            raise ValueError(f"{what} {spec!r}: cannot import {module_name!r} ({err})") from None
        except Exception as err:  # noqa: BLE001 - the user's module fails while it is imported
            raise ValueError(
                f"{what} {spec!r}: importing {module_name!r} raised "
                f"{type(err).__name__}: {_first_line(err)}"
            ) from None
    obj: Any = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise ValueError(f"{what} {spec!r}: module {module_name!r} has no attribute {attr!r}")
        obj = getattr(obj, part)
    if not callable(obj):
        raise TypeError(f"{what} {spec!r}: {attr!r} is a {type(obj).__name__}, not a callable")
    return obj


def _first_line(err: BaseException) -> str:
    lines = str(err).strip().splitlines()
    return lines[0] if lines else "(no message)"


def call_factory(spec: str, what: str, flag: str, kwargs: dict[str, Any]) -> Any:
    """Import ``spec`` and call it with ``kwargs``, refusing names it does not accept.

    Errors the factory itself raises are passed on with its name in front, as one line.

    Examples
    --------
    >>> call_factory("torch.nn:Linear", "MODEL", "--model-arg",
    ...              {"in_features": 2, "out_features": 3}).weight.shape
    torch.Size([3, 2])
    >>> call_factory("torch.nn:Flatten", "MODEL", "--model-arg", {"depht": 20})
    ... # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: --model-arg depht: ... takes no argument 'depht'; it accepts start_dim, end_dim
    """
    factory = import_factory(spec, what)
    _check_accepts(factory, spec, what, flag, kwargs)
    with _cwd_importable():
        try:
            return factory(**kwargs)
        except (ValueError, TypeError) as err:
            raise type(err)(f"{what} {spec!r}: {_first_line(err)}") from None


def _check_accepts(factory: Any, spec: str, what: str, flag: str, kwargs: dict[str, Any]) -> None:
    try:
        params = inspect.signature(factory).parameters.values()
    except (TypeError, ValueError):  # builtins without a signature: let the call decide
        return
    if any(p.kind is p.VAR_KEYWORD for p in params):
        return
    names = [p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    for key in kwargs:
        if key not in names:
            accepted = ", ".join(names) or "no keyword arguments"
            raise ValueError(
                f"{flag} {key}: {what} {spec!r} takes no argument {key!r}; it accepts {accepted}"
            )
    missing = [
        p.name
        for p in params
        if p.default is p.empty
        and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
        and p.name not in kwargs
    ]
    if missing:
        raise ValueError(
            f"{what} {spec!r} needs {', '.join(missing)}: pass "
            + " ".join(f"{flag} {m}=..." for m in missing)
        )
