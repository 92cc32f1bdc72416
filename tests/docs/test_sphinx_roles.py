"""The griffe extension that turns Sphinx roles into autorefs links, on a small package.

Each case is what Sphinx would link; the expected Markdown is written out by hand.
"""

from __future__ import annotations

import importlib.util
import textwrap
from pathlib import Path

import griffe
import pytest

HOOK = Path(__file__).resolve().parents[2] / "docs" / "_hooks" / "sphinx_roles.py"


def load_hook():
    spec = importlib.util.spec_from_file_location("sphinx_roles_under_test", HOOK)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


roles = load_hook()

FILES = {
    "__init__.py": '''
        """The package. Exports ``Base`` lazily, like hierclass does."""
        from pkg._lazy import lazy
        __getattr__ = lazy({"Base": "pkg.core"})
    ''',
    "_lazy.py": '''
        """Private helpers."""
        def lazy(names):
            """Lazy exports."""
    ''',
    "core.py": '''
        """Core objects."""
        from torch import nn

        def helper():
            """A documented function."""

        def undocumented():
            pass

        def _private():
            """Private, so it has no entry."""

        class Base(nn.Module):
            """A base class."""

            def scores(self, x):
                """What subclasses override."""

        class Sub(Base):
            """A subclass."""
    ''',
    "other.py": '''
        """Another module."""
        from pkg.core import helper

        def user():
            """Calls helper."""
    ''',
}


@pytest.fixture(scope="module")
def package(tmp_path_factory: pytest.TempPathFactory) -> griffe.Module:
    root = tmp_path_factory.mktemp("src")
    (root / "pkg").mkdir()
    for name, text in FILES.items():
        (root / "pkg" / name).write_text(textwrap.dedent(text), encoding="utf-8")
    return griffe.load("pkg", search_paths=[str(root)], docstring_parser="numpy")


@pytest.fixture(scope="module")
def resolver(package: griffe.Module):
    return roles.Resolver(package)


CASES = [
    # (docstring owner, role, expected Markdown)
    ("other.user", ":func:`helper`", "[`helper()`][pkg.core.helper]"),  # imported name
    ("core.Base", ":meth:`scores`", "[`scores()`][pkg.core.Base.scores]"),  # class scope
    ("core.Sub", ":meth:`scores`", "[`scores()`][pkg.core.Base.scores]"),  # inherited
    ("core.Base.scores", ":class:`Sub`", "[`Sub`][pkg.core.Sub]"),  # enclosing module
    ("other", ":class:`~pkg.core.Base`", "[`Base`][pkg.core.Base]"),  # absolute, short
    ("other", ":class:`pkg.core.Base`", "[`pkg.core.Base`][pkg.core.Base]"),
    ("other", ":class:`~pkg.Base`", "[`Base`][pkg.core.Base]"),  # lazy export
    ("other", ":mod:`pkg.core`", "[`pkg.core`][pkg.core]"),
    ("other", ":func:`.helper`", "[`helper()`][pkg.core.helper]"),  # unique in the package
    (
        "other",
        ":meth:`Base.scores <pkg.core.Base.scores>`",
        "[`Base.scores`][pkg.core.Base.scores]",
    ),  # explicit title
    ("other", ":py:func:`helper`", "[`helper()`][pkg.core.helper]"),
    # shown as code, without a link:
    ("core", ":class:`nn.Module`", "`nn.Module`"),  # imported from an unloaded package
    ("core", ":class:`numpy.random.SeedSequence`", "`numpy.random.SeedSequence`"),
    ("core", ":func:`_private`", "`_private()`"),  # private: no entry to link to
    ("core", ":func:`undocumented`", "`undocumented()`"),  # no docstring: no entry
    ("core", ":func:`!helper`", "`helper()`"),  # Sphinx's "do not link"
]


@pytest.mark.parametrize(("owner", "text", "expected"), CASES)
def test_role_is_rewritten_as_sphinx_would_link_it(package, resolver, owner, text, expected):
    warnings: list[str] = []
    out = roles.rewrite(f"See {text}.", package[owner], resolver, warnings.append)
    assert out == f"See {expected}."
    assert warnings == []


def test_unknown_target_is_shown_as_code_and_warned(package, resolver):
    warnings: list[str] = []
    out = roles.rewrite(
        "See :func:`helpr` and :class:`pkg.core.Nope`.", package["other"], resolver, warnings.append
    )
    assert out == "See `helpr()` and `pkg.core.Nope`."
    assert len(warnings) == 2 and "helpr" in warnings[0] and "pkg.core.Nope" in warnings[1]


def test_text_without_roles_is_unchanged(package, resolver):
    text = "Plain ``code``, a [link][pkg.core.helper] and a dict: {'class': 1}."
    assert roles.rewrite(text, package["core"], resolver, pytest.fail) == text


def test_extension_rewrites_every_docstring_once_the_package_is_loaded(tmp_path: Path):
    (tmp_path / "pk").mkdir()
    (tmp_path / "pk" / "__init__.py").write_text('"""See :mod:`pk.m`."""\n', encoding="utf-8")
    (tmp_path / "pk" / "m.py").write_text(
        textwrap.dedent('''
            """Module: see :func:`f`."""
            def f():
                """Uses :class:`C`."""
            class C:
                """A class; see :meth:`g`."""
                def g(self):
                    """Method."""
        '''),
        encoding="utf-8",
    )
    pkg = griffe.load(
        "pk",
        search_paths=[str(tmp_path)],
        extensions=griffe.load_extensions(roles.SphinxRoles),
    )
    assert pkg.docstring.value == "See [`pk.m`][pk.m]."
    assert pkg["m"].docstring.value == "Module: see [`f()`][pk.m.f]."
    assert pkg["m.f"].docstring.value == "Uses [`C`][pk.m.C]."
    assert pkg["m.C"].docstring.value == "A class; see [`g()`][pk.m.C.g]."
