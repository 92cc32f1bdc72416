"""Lazy attribute exports for package ``__init__`` modules.

Importing ``hierclass`` (or one of its rooms) should not pay for torchvision, scipy or the
simulators until a notebook actually uses them; each package lists ``name -> module`` and
gets a module-level ``__getattr__``/``__dir__`` from here (PEP 562).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any


def lazy_exports(
    package: str, namespace: dict[str, Any], exports: Mapping[str, str]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``(__getattr__, __dir__)`` for ``package`` resolving ``exports`` on first access.

    Resolved names are cached in ``namespace`` (the package's ``globals()``), so each import
    happens once.
    """

    def __getattr__(name: str) -> Any:
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        namespace[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted(set(namespace.get("__all__", ())) | set(exports))

    return __getattr__, __dir__
