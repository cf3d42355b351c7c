"""The HTML page ``dvc plots show`` / ``dvc plots diff`` fill (``--html-template``), with Vega, Vega-Lite and
Vega-Embed inlined so the charts render offline.

DVC's default page loads the three libraries from a CDN, so without network every chart is blank. dvc_render
substitutes ``{plot_divs}`` (one ``<div>`` + ``vegaEmbed`` call per chart), ``{refresh_tag}`` and ``{scripts}`` (the
CDN ``<script>`` tags) into the page by plain text replacement; ``page.html`` has no ``{scripts}``, so the CDN tags
are dropped, and :func:`write_page_template` puts the vendored builds (``vendor/``, from npm, BSD-3-Clause; licences
and bundled third-party notices next to them) where ``<!-- lure:vendor -->`` is. One self-contained file results:
it can be copied, mailed or logged as an artifact.

``make plots`` runs ``python -m lure.plots.page .lure/plots.html`` and then ``dvc plots show --html-template`` with it.
"""

from __future__ import annotations

import sys
from pathlib import Path

from lure.io import write_text

HERE = Path(__file__).resolve().parent
VENDOR = HERE / "vendor"
PAGE = HERE / "page.html"
MARKER = "<!-- lure:vendor -->"

#: The vendored builds in load order (Vega-Lite needs Vega, Vega-Embed both): (file, package, version).
BUILDS: tuple[tuple[str, str, str], ...] = (
    ("vega.min.js", "vega", "5.33.1"),
    ("vega-lite.min.js", "vega-lite", "5.23.0"),
    ("vega-embed.min.js", "vega-embed", "6.29.0"),
)

#: Texts dvc_render replaces anywhere in the page; inlined code must not contain them.
DVC_PLACEHOLDERS = ("{plot_divs}", "{scripts}", "{refresh_tag}")

#: Every chart without the "Open in Vega Editor" action, the one thing on the page that needs the network, and drawn
#: as SVG (sharp at any zoom, its text selectable). DVC's divs call ``vegaEmbed(el, spec)``; the wrapper adds these.
EMBED_OPTIONS = """\
(function () {
  var embed = window.vegaEmbed;
  window.vegaEmbed = function (el, spec, opt) {
    var defaults = {renderer: "svg", actions: {export: true, source: true, compiled: true, editor: false}};
    return embed(el, spec, Object.assign(defaults, opt));
  };
})();"""


def _script(code: str, origin: str) -> str:
    """``code`` as an inline ``<script>``, without its source-map comment (the map is not shipped)."""
    lines = [line for line in code.splitlines() if not line.startswith("//# sourceMappingURL=")]
    body = "\n".join(lines)
    if "</script" in body.lower():
        raise ValueError(f"{origin}: contains '</script', which would end the inline <script> early")
    return f"<script>\n/*! {origin} */\n{body}\n</script>"


def page_template() -> str:
    """The page: ``page.html`` with the vendored builds inlined where ``<!-- lure:vendor -->`` is."""
    page = PAGE.read_text(encoding="utf-8")
    if page.count(MARKER) != 1 or "{plot_divs}" not in page:
        raise ValueError(f"{PAGE}: needs one {MARKER} and a {{plot_divs}} placeholder")
    scripts = []
    for name, package, version in BUILDS:
        path = VENDOR / name
        code = path.read_text(encoding="utf-8")
        if f'"{version}"' not in code:
            raise ValueError(f"{path}: expected {package} {version}; update BUILDS when the vendored build changes")
        clash = [p for p in DVC_PLACEHOLDERS if p in code]
        if clash:
            raise ValueError(f"{path}: contains {clash}, which dvc_render would replace")
        scripts.append(_script(code, f"{package} {version}, BSD-3-Clause, see lure/plots/vendor/"))
    scripts.append(_script(EMBED_OPTIONS, "lure: vegaEmbed without the online editor action"))
    return page.replace(MARKER, "\n".join(scripts))


def write_page_template(path: str | Path) -> Path:
    """Write :func:`page_template` to ``path`` (atomically) and return it."""
    return write_text(path, page_template())


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python -m lure.plots.page OUT.html")
    print(write_page_template(sys.argv[1]))
