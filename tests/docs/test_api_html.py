"""The built API reference reads as a person expects: no raw Sphinx roles, every method that
``help()`` documents is there, and roles became links.

The docstrings use Sphinx roles (``:class:`~hierclass.Hierarchy` ``); the griffe extension in
``docs/_hooks/sphinx_roles.py`` rewrites them at build time. These tests read the HTML of a
real strict build (the session's ``site`` fixture).
"""

from __future__ import annotations

import html
import importlib
import inspect
import pkgutil
import re

import hierclass

# A Sphinx role as it shows on a page when nothing rewrote it: ":mod:`x`" in the docstring
# becomes ":mod:" followed by <code>x</code> in the HTML, i.e. ":mod:" in the text.
RAW_ROLE = re.compile(r":(?:py:)?(?:class|func|meth|mod|data|attr|exc|obj|const):")
TAG = re.compile(r"<[^>]+>")


def raw_roles(page_html: str) -> list[str]:
    """Each raw role in a page's visible text, with some context."""
    text = html.unescape(TAG.sub("", page_html))
    return [text[max(m.start() - 40, 0) : m.end() + 40] for m in RAW_ROLE.finditer(text)]


def test_raw_role_detector_finds_what_an_unrewritten_docstring_renders():
    # What mkdocstrings printed before the hook existed; guards the check below.
    rendered = "<p>See <code>:mod:</code><code>~hierclass.smoothing.certificates.counts</code>.</p>"
    assert len(raw_roles(rendered)) == 1
    assert raw_roles("<p>:func:`fit`</p>") and raw_roles("<p>:py:class:`X`</p>")
    # Links and code that merely look similar are not reported.
    assert not raw_roles('<p><a href="x"><code>fit()</code></a> and the class: Leaf</p>')


def api_pages(site) -> dict[str, str]:
    api = site.path / "api"
    pages = {p.parent.name: p.read_text(encoding="utf-8") for p in api.glob("*/index.html")}
    assert len(pages) >= 15, f"expected the API pages under {api}, found {sorted(pages)}"
    return pages


def test_api_pages_show_no_raw_sphinx_roles(site):
    assert site.returncode == 0, site.log[-6000:]
    found = {name: raw_roles(page) for name, page in api_pages(site).items()}
    found = {name: hits for name, hits in found.items() if hits}
    assert not found, f"raw Sphinx roles in the built API pages: {found}"


def test_no_page_shows_raw_sphinx_roles(site):
    # The guides and the notebook quote docstrings too (and the notebook prints help text).
    pages = sorted(site.path.rglob("*.html"))
    assert len(pages) >= 30
    found = {}
    for path in pages:
        hits = raw_roles(path.read_text(encoding="utf-8"))
        if hits:
            found[str(path.relative_to(site.path))] = hits
    assert not found, f"raw Sphinx roles in the built pages: {found}"


def test_roles_become_links_to_the_documented_object(site):
    nodes = site.page("api/nodes.md")
    # Leaf's docstring: :meth:`Hierarchy.load <hierclass.hierarchy.Hierarchy.load>`.
    assert re.search(
        r'<a [^>]*href="[^"]*hierarchy/#hierclass\.hierarchy\.Hierarchy\.load"[^>]*>'
        r"\s*<code>Hierarchy\.load</code>",
        nodes,
    ), "the explicit-title :meth: role in Leaf's docstring is not a link to Hierarchy.load"
    # hierclass.smoothing's docstring: :mod:`~hierclass.smoothing.certificates.counts`.
    assert re.search(
        r'href="#hierclass\.smoothing\.certificates"[^>]*>\s*<code>certificates</code>',
        site.page("api/smoothing.md"),
    )


def documented_members() -> list[str]:
    """Dotted paths of the public methods and properties that ``help()`` shows a docstring for.

    Only members a class defines itself (inherited ones are documented on the base) and
    docstrings written in hierclass (an override of ``nn.Module.forward`` without its own
    docstring shows torch's text in ``help()``, which the API reference does not copy).
    """
    out = []
    for info in pkgutil.walk_packages(hierclass.__path__, "hierclass."):
        if any(part.startswith("_") for part in info.name.split(".")):
            continue
        module = importlib.import_module(info.name)
        for cname, cls in vars(module).items():
            if cname.startswith("_") or not inspect.isclass(cls):
                continue
            if cls.__module__ != info.name or cls.__name__ != cname:
                continue  # imported, or an alias documented under its own name
            for name, member in vars(cls).items():
                if name.startswith("_"):
                    continue
                if not isinstance(member, (property, staticmethod, classmethod)) and not (
                    inspect.isfunction(member)
                ):
                    continue
                if any(
                    name in vars(base) and getattr(vars(base)[name], "__doc__", None)
                    for base in cls.__mro__
                    if base.__module__.startswith("hierclass")
                ):
                    out.append(f"{info.name}.{cname}.{name}")
    return sorted(out)


def test_every_documented_method_has_an_entry(site):
    members = documented_members()
    # Guards the check against walking nothing: Leaf's documented overrides are here.
    assert "hierclass.nodes.Leaf.describe" in members
    assert "hierclass.nodes.RenormalizedLeaf.from_flat_logits" in members
    anchors = set(re.findall(r'id="(hierclass\.[\w.]+)"', "".join(api_pages(site).values())))
    missing = [m for m in members if m not in anchors]
    assert not missing, f"documented methods with no entry in the API reference: {missing}"


def parameter_table(page_html: str, anchor: str) -> dict[str, tuple[str, str]]:
    """``{name: (type, default)}`` of the first parameter table after the object ``anchor``."""
    start = page_html.index(f'id="{anchor}"')
    table = page_html[page_html.index("<table", start) : page_html.index("</table>", start)]
    out = {}
    for row in re.findall(r"<tr.*?</tr>", table, re.S):
        cells = [html.unescape(re.sub(r"\s+", " ", TAG.sub("", c))).strip()
                 for c in re.findall(r"<td.*?</td>", row, re.S)]  # fmt: skip
        if len(cells) == 4:
            out[cells[0]] = (cells[1], cells[3])
    return out


def test_parameter_tables_match_the_signatures(site):
    """Each name's type and default as the signature has them (a grouped ``n0, n : int`` entry
    gave ``n`` the default 100 and ``alpha`` the type int)."""
    assert site.returncode == 0, site.log[-6000:]
    from hierclass.smoothing import Smooth
    from hierclass.smoothing.runs import fixed_n as runner

    page = site.page("api/smoothing.md")
    objects = {
        "hierclass.smoothing.flat.smooth.Smooth.certify": Smooth.certify,
        "hierclass.smoothing.flat.smooth.Smooth.certify_detailed": Smooth.certify_detailed,
        "hierclass.smoothing.runs.fixed_n.certify_hierarchy": runner.certify_hierarchy,
    }
    for anchor, obj in objects.items():
        table = parameter_table(page, anchor)
        for name, p in inspect.signature(obj).parameters.items():
            if p.default is inspect.Parameter.empty:
                continue
            assert name in table, (anchor, name, sorted(table))
            assert table[name][1] == repr(p.default), (anchor, name, table[name])
    certify = parameter_table(page, "hierclass.smoothing.flat.smooth.Smooth.certify")
    assert certify["n"] == ("int", "100000") and certify["alpha"] == ("float", "0.001")
