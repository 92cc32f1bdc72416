"""Griffe extension: turn Sphinx cross-reference roles in docstrings into autorefs links.

The docstrings of hierclass use Sphinx's Python roles (``:class:`~hierclass.Hierarchy` ``,
``:func:`fit` ``, ``:meth:`scores` ``, ...), which read well in ``help()`` and in Sphinx, but
mkdocstrings renders them literally. This extension rewrites each role, at build time and
without touching the source files, into what mkdocstrings understands:

- a role whose target is a documented hierclass object becomes an autorefs link
  ``[`title`][canonical.path]``;
- a role whose target lies outside the loaded packages (``torch.nn.Module``, an object
  imported from torch), or inside a private module, becomes inline code ``` `title` ```;
- a role whose target cannot be found at all also becomes inline code, and is logged as a
  warning, which fails ``mkdocs build --strict``: a typo in a docstring is caught.

Targets are looked up as Sphinx does: in the scope of the object that owns the docstring
(its members, then its class, module and enclosing packages), then as an absolute dotted
path, and last as the unique object of that name in the package. The title follows Sphinx:
``~`` shows only the last component, ``title <target>`` shows ``title``, a leading ``!``
suppresses the link, and functions and methods get ``()``.

Configured in ``mkdocs.yml`` under the python handler's ``extensions``; the rewrite itself is
:func:`rewrite`, which ``tests/docs/test_sphinx_roles.py`` tests on a small package.
"""

from __future__ import annotations

import logging
import re
from collections import defaultdict
from collections.abc import Callable, Iterator
from typing import Any

import griffe

# Under "mkdocs" so that `mkdocs build --strict` counts its warnings.
logger = logging.getLogger("mkdocs.plugins.sphinx_roles")

ROLE = re.compile(
    r":(?:py:)?(?P<role>class|func|meth|mod|data|attr|exc|obj|const):`(?P<body>[^`]+)`"
)
# ``title <target>``: an explicit title.
EXPLICIT = re.compile(r"^(?P<title>.+?)\s*<(?P<target>[^<>]+)>$")
CALLABLE_ROLES = {"func", "meth"}

# What a lookup can find: a documented object, something real that has no page of its own
# (external, private or undocumented), or nothing.
Lookup = griffe.Object | str | None
EXTERNAL = "external"


def _private(path: str) -> bool:
    return any(part.startswith("_") and not part.startswith("__") for part in path.split("."))


def _deref(obj: griffe.Object | griffe.Alias) -> Lookup:
    """The object an alias points to, or EXTERNAL when it points outside the loaded code."""
    if not obj.is_alias:
        return obj
    try:
        return obj.final_target
    except (griffe.AliasResolutionError, griffe.CyclicAliasError):
        return EXTERNAL


def _members(obj: griffe.Object) -> dict[str, Any]:
    if obj.is_class:
        try:
            return obj.all_members  # includes inherited members, as Sphinx's lookup does
        except (griffe.AliasResolutionError, griffe.CyclicAliasError, ValueError):
            return obj.members
    return obj.members


class Resolver:
    """Finds the object a role names, from the docstring's owner, as Sphinx does."""

    def __init__(self, package: griffe.Module) -> None:
        self.package = package
        self.collection = package.modules_collection
        self.by_name: dict[str, set[str]] = defaultdict(set)
        self._index(package, set())

    def _index(self, obj: griffe.Object, seen: set[str]) -> None:
        if obj.path in seen:
            return
        seen.add(obj.path)
        self.by_name[obj.name].add(obj.path)
        for member in obj.members.values():
            if not member.is_alias:
                self._index(member, seen)

    def _lazy_export(self, module: griffe.Object, name: str) -> griffe.Object | None:
        """A name a package exports lazily (``hierclass.Hierarchy``).

        Static analysis cannot follow a module-level ``__getattr__`` nor a computed
        ``__all__``; such an export is taken to be the one public object of that name defined
        below the module. A name that no submodule defines still fails to resolve.
        """
        if not module.is_module:
            return None
        prefix = module.path + "."
        paths = [p for p in self.by_name.get(name, ()) if p.startswith(prefix) and not _private(p)]
        return self.collection.get_member(paths[0]) if len(paths) == 1 else None

    def _walk(self, start: griffe.Object, parts: list[str]) -> Lookup:
        obj: Lookup = start
        for part in parts:
            if not isinstance(obj, griffe.Object):
                return obj  # an external module's attribute is external too
            member = _members(obj).get(part)
            if member is None:
                found = self._lazy_export(obj, part)
                if found is None:
                    return None
                obj = found
            else:
                obj = _deref(member)
        return obj

    def resolve(self, target: str, scope: griffe.Object) -> Lookup:
        parts = target.lstrip(".").split(".")
        # 1. Lexical scope: the owner, then each enclosing class, module and package.
        node: griffe.Object | None = scope
        while node is not None:
            found = self._walk(node, parts)
            if found is not None:
                return found
            node = node.parent
        # 2. An absolute path in a loaded package.
        root = self.collection.members.get(parts[0])
        if root is not None:
            found = self._walk(root, parts[1:])
            if found is not None:
                return found
        # 3. The only object in the package whose path ends with the target.
        suffix = "." + target.lstrip(".")
        candidates = {p for p in self.by_name.get(parts[-1], ()) if ("." + p).endswith(suffix)}
        if len(candidates) == 1:
            return self.collection.get_member(candidates.pop())
        # 4. A dotted path into a package that is not loaded (numpy.random.SeedSequence).
        if "." in target.lstrip(".") and root is None:
            return EXTERNAL
        return None


def _title(role: str, target: str, explicit: str | None, short: bool) -> str:
    if explicit is not None:
        return explicit
    title = target.lstrip(".")
    if short:
        title = title.rsplit(".", 1)[-1]
    if role in CALLABLE_ROLES:
        title += "()"
    return title


def rewrite(
    text: str, scope: griffe.Object, resolver: Resolver, warn: Callable[[str], None]
) -> str:
    """Replace every Sphinx role in ``text`` by an autorefs link or inline code."""

    def replace(match: re.Match[str]) -> str:
        role, body = match["role"], match["body"].strip()
        explicit = EXPLICIT.match(body)
        title, target = (explicit["title"], explicit["target"]) if explicit else (None, body)
        target = target.strip()
        no_link = target.startswith("!")
        short = target.lstrip("!").startswith("~")
        target = target.lstrip("!~")
        shown = _title(role, target, title, short)
        if no_link:
            return f"`{shown}`"
        found = resolver.resolve(target, scope)
        if found is None:
            warn(f"{scope.path}: cannot resolve :{role}:`{body}`; shown as code")
            return f"`{shown}`"
        if found == EXTERNAL or not isinstance(found, griffe.Object):
            return f"`{shown}`"
        # Only documented public objects get an anchor in the API pages.
        if _private(found.path) or not (found.is_module or found.docstring):
            return f"`{shown}`"
        return f"[`{shown}`][{found.path}]"

    return ROLE.sub(replace, text)


def _objects(obj: griffe.Object, seen: set[str]) -> Iterator[griffe.Object]:
    if obj.path in seen:
        return
    seen.add(obj.path)
    yield obj
    for member in obj.members.values():
        if not member.is_alias:
            yield from _objects(member, seen)


class SphinxRoles(griffe.Extension):
    """Rewrite Sphinx roles in every docstring of a package once it is loaded."""

    def on_package(self, *, pkg: griffe.Module, **kwargs: Any) -> None:
        resolver = Resolver(pkg)
        done: set[int] = set()
        for obj in _objects(pkg, set()):
            doc = obj.docstring
            if doc is None or id(doc) in done:
                continue
            done.add(id(doc))  # inherited docstrings are shared: rewrite each text once
            # The scope is the docstring's owner, not an object that inherited it.
            owner = doc.parent if isinstance(doc.parent, griffe.Object) else obj
            doc.value = rewrite(doc.value, owner, resolver, logger.warning)
