"""A submission's Markdown and HTML made inert: no script, no event handler, no frame, no request.

A student's notebook is rendered in the TA's browser (formgrader's manual-grading page) and in the
student's (nbgrader's feedback HTML). Its Markdown cells may hold raw HTML: ``<script>``,
``<img src=x onerror=...>``, ``javascript:`` links, ``<iframe>``, images from elsewhere (a request
that tells a third party who opened the page, and when). One allow-list decides what survives, used
in three places:

* :func:`clean_html`: the HTML itself, through bleach: allowed tags (text, lists, tables, headings,
  code, images) keep allowed attributes only; any other tag is *escaped* (it shows as text: the TA
  sees what the student wrote); links keep http(s), mailto and in-page targets; images keep inline
  PNG/JPEG/GIF data only; ``style`` keeps ``text-align`` only (Markdown tables);
* :func:`markdown2html`: nbconvert's Markdown rendering (math kept as ``$...$`` text for MathJax, code
  highlighted, attachments inlined) followed by :func:`clean_html`. ``grading/nbgrader/nbgrader_config.py``
  installs it (and :func:`clean_html`) as the ``markdown2html`` and ``clean_html`` filters of
  nbconvert's ``HTMLExporter``, which nbgrader's feedback and formgrader's manual-grading page both
  use (their templates render Markdown cells and TA comments with ``markdown2html`` and never call
  ``clean_html`` on them, whatever ``HTMLExporter.sanitize_html`` says);
* :func:`clean_notebook`: the autograded notebook itself (and so the re-run notebook built from it),
  rewritten by the trusted side after nbgrader's autograde (grading/autograde/notebooks.py,
  ``merge_outputs``) and again in nbgrader's feedback step (:class:`CleanNotebook`): a Markdown cell
  holding anything the allow-list refuses is replaced by its cleaned rendering (HTML is Markdown
  too, and math stays ``$...$`` text), headed by a line naming what was removed; raw cells that an
  HTML page includes (no format, or ``text/html``) are cleaned;
  attachments keep PNG/JPEG/GIF only; saved widget state is dropped. Cells with nothing to remove
  are left byte for byte as the student wrote them.

The kit's own pages (``grading_report.html``, ``summary.html``) hold no student HTML at all: every
text there is escaped (grading/autograde/feedback.py).
"""

from __future__ import annotations

import html
import re

import bleach
from bleach import html5lib_shim
from bleach.css_sanitizer import CSSSanitizer
from jinja2 import pass_context
from nbconvert.preprocessors import Preprocessor
from traitlets import Bool

__all__ = ["TAGS", "clean_html", "markdown2html", "render_markdown", "findings", "clean_notebook", "CleanNotebook"]

# Tags a notebook's Markdown legitimately produces (nbconvert's renderer: headings with anchors,
# highlighted code, tables, math as text) or that students write by hand for layout.
TAGS = frozenset({
    "a", "abbr", "acronym", "b", "bdi", "bdo", "blockquote", "br", "caption", "center", "cite", "code", "col",
    "colgroup", "dd", "del", "details", "dfn", "div", "dl", "dt", "em", "figcaption", "figure", "h1", "h2",
    "h3", "h4", "h5", "h6", "hr", "i", "img", "ins", "kbd", "li", "mark", "ol", "p", "pre", "q", "rp", "rt",
    "ruby", "s", "samp", "small", "span", "strike", "strong", "sub", "summary", "sup", "table", "tbody",
    "td", "tfoot", "th", "thead", "tr", "tt", "u", "ul", "var", "wbr",
})
HEADINGS = frozenset({"h1", "h2", "h3", "h4", "h5", "h6"})
GLOBAL_ATTRIBUTES = frozenset({"class", "title", "lang", "dir"})
ATTRIBUTES = {
    "a": {"href", "name"},
    "img": {"src", "alt", "width", "height"},
    "td": {"colspan", "rowspan", "align", "style"},
    "th": {"colspan", "rowspan", "align", "style", "scope"},
    "col": {"span"}, "colgroup": {"span"},
    "ol": {"start", "type", "reversed"}, "li": {"value"},
    "abbr": {"title"}, "acronym": {"title"}, "q": {"cite"}, "blockquote": {"cite"},
    "details": {"open"},
    **{h: {"id"} for h in HEADINGS},       # nbconvert's heading anchors (href="#Title")
}
LINK_SCHEMES = frozenset({"http", "https", "mailto"})
URL_ATTRIBUTES = frozenset({"href", "src", "cite"})
IMAGE_DATA = re.compile(r"data:image/(png|jpeg|gif);base64,[A-Za-z0-9+/=]*\Z", re.IGNORECASE)
TEXT_ALIGN = re.compile(r"\s*text-align\s*:\s*(left|right|center|justify)\s*;?\s*\Z", re.IGNORECASE)
# What a browser ignores inside a URL's scheme ("java\tscript:", " javascript:", control characters).
URL_IGNORED = re.compile(r"[\x00-\x20\x7f]+")
SCHEME = re.compile(r"([a-zA-Z][a-zA-Z0-9+.\-]*):")
ATTACHMENT_TYPES = ("image/png", "image/jpeg", "image/gif")
BASE64 = re.compile(r"[A-Za-z0-9+/=\s]*\Z")


def _url(value: str) -> str:
    """A URL as a browser reads its scheme: entities decoded, white space and control characters gone."""
    return URL_IGNORED.sub("", html.unescape(value))


def _url_allowed(tag: str, name: str, value: str) -> bool:
    url = _url(value)
    if tag == "img" and name == "src":     # inline images only: an image from elsewhere is a request
        return bool(IMAGE_DATA.match(url))
    scheme = SCHEME.match(url)
    if scheme is None:                     # relative: an anchor in the page (#Title), a path
        return not url.replace("\\", "/").startswith("//")    # (//host/x, /\host/x: another host)
    return scheme.group(1).lower() in LINK_SCHEMES


def _attribute_allowed(tag: str, name: str, value: str) -> bool:
    """The one rule for attributes (bleach's ``attributes`` callable, and :func:`findings`)."""
    name = name.lower()
    if name not in GLOBAL_ATTRIBUTES and name not in ATTRIBUTES.get(tag, ()):
        return False                       # on* handlers, srcdoc, formaction, style elsewhere, ...
    if name in URL_ATTRIBUTES:
        return _url_allowed(tag, name, value)
    if name == "style":
        return bool(TEXT_ALIGN.match(value))
    return True


_CLEANER = bleach.Cleaner(
    tags=TAGS, attributes=_attribute_allowed, protocols={*LINK_SCHEMES, "data"}, strip=False,
    strip_comments=True, css_sanitizer=CSSSanitizer(allowed_css_properties=["text-align"]))


def clean_html(text) -> str:
    """``text`` (HTML) with only allowed tags and attributes; other tags escaped, comments removed."""
    text = text.decode("utf-8", "replace") if isinstance(text, bytes) else str(text)
    return _CLEANER.clean(text)


def findings(text: str) -> list[str]:
    """What :func:`clean_html` would remove from ``text`` (HTML), in words (``script element``,
    ``onerror attribute``, ``javascript: link``, ``image from elsewhere``), each once, in order.

    The HTML is parsed as bleach (and a browser) parses it: ``<img/src=x/onerror=...>`` is an image
    with an ``onerror`` attribute, and an ``<svg>`` or ``<math>`` element is foreign content."""
    parser = html5lib_shim.BleachHTMLParser(tags=None, strip=False, consume_entities=False,
                                            namespaceHTMLElements=False)
    found: list[str] = []

    def note(what: str) -> None:
        if what not in found:
            found.append(what)

    for token in html5lib_shim.getTreeWalker("etree")(parser.parseFragment(str(text))):
        if token["type"] not in ("StartTag", "EmptyTag"):
            continue
        tag = token["name"].lower()
        if token.get("namespace") not in (None, html5lib_shim.namespaces["html"]) or tag not in TAGS:
            note(f"{tag} element")
            continue
        for (_, name), value in token["data"].items():
            if _attribute_allowed(tag, name, value):
                continue
            lowered = name.lower()
            if lowered in URL_ATTRIBUTES and (lowered in ATTRIBUTES.get(tag, ()) or lowered in GLOBAL_ATTRIBUTES):
                scheme = SCHEME.match(_url(value))
                if tag == "img":
                    note("image from elsewhere" if scheme and scheme.group(1).lower() in ("http", "https")
                         or _url(value).startswith("//") else "image that is not inline data")
                else:
                    note(f"{scheme.group(1).lower()}: link" if scheme else "link to another host")
            else:
                note(f"{lowered} attribute")
    return found


def render_markdown(source: str, attachments: dict | None = None, path: str = "") -> str:
    """``source`` as nbconvert's HTML exporter renders a Markdown cell (not yet cleaned)."""
    from nbconvert.filters.markdown_mistune import IPythonRenderer, MarkdownWithMath

    renderer = IPythonRenderer(escape=False, attachments=attachments or {}, embed_images=False, path=path,
                               anchor_link_text="\u00b6", exclude_anchor_links=False)
    return MarkdownWithMath(renderer=renderer).render(str(source))


def _markdown2html(context, source) -> str:
    """nbconvert's ``markdown2html`` filter (HTMLExporter's: a cell's attachments inlined), cleaned."""
    cell = context.get("cell") or {}
    attachments = cell.get("attachments") if hasattr(cell, "get") else None
    resources = context.get("resources") or {}
    path = resources.get("metadata", {}).get("path", "") if hasattr(resources, "get") else ""
    return clean_html(render_markdown(source, _clean_attachments(attachments), path or ""))


markdown2html = pass_context(_markdown2html)   # a Jinja filter that sees the cell, as nbconvert's own does


# --- notebooks ---------------------------------------------------------------------------------

NOTE = "The grader removed from this cell what could run or load in a browser: {what}."


def _clean_attachments(attachments) -> dict:
    """Attachments that are inline PNG/JPEG/GIF images (base64 text), nothing else."""
    kept = {}
    if not isinstance(attachments, dict):
        return kept
    for name, bundle in attachments.items():
        if not isinstance(name, str) or not isinstance(bundle, dict):
            continue
        data = {}
        for mime in ATTACHMENT_TYPES:
            value = bundle.get(mime)
            value = "".join(value) if isinstance(value, list) and all(isinstance(v, str) for v in value) else value
            if isinstance(value, str) and BASE64.match(value):
                data[mime] = value
        if data:
            kept[name] = data
    return kept


def _as_html_block(note: str, text: str) -> str:
    """``note`` (text) and ``text`` (clean HTML) as one Markdown HTML block, never read as Markdown
    again: it starts with ``<div>`` and has no empty line (one would end the block: inside ``<pre>``,
    between blocks), where an empty comment keeps the line, invisibly."""
    lines = [line if line.strip() else "<!-- -->" for line in text.strip("\n").split("\n")]
    return f"<div>\n<p><em>{html.escape(note)}</em></p>\n" + "\n".join(lines) + "\n</div>"


def clean_notebook(nb) -> list[str]:
    """Make the cells of ``nb`` (a submission's notebook, changed in place) inert; return what was
    removed, as ``"cell N: what"`` lines (N counts every cell from 1)."""
    removed = []
    metadata = nb.get("metadata")
    if isinstance(metadata, dict) and "widgets" in metadata:
        del metadata["widgets"]            # saved widget state: rendered by the widget manager, unchecked
        removed.append("notebook: saved widget state")
    for number, cell in enumerate(nb.get("cells", []), start=1):
        kind = cell.get("cell_type")
        if kind not in ("markdown", "raw"):
            continue
        if "attachments" in cell:
            kept = _clean_attachments(cell.get("attachments"))
            if kept != cell.get("attachments"):
                removed.append(f"cell {number}: attachments that are not PNG, JPEG or GIF images")
                cell["attachments"] = kept
        source = cell.get("source", "")
        source = "".join(source) if isinstance(source, list) else str(source)
        if kind == "markdown":
            rendered = render_markdown(source, cell.get("attachments"))
            found = findings(rendered)
            if found:
                cleaned = clean_html(rendered)
                cell["source"] = _as_html_block(NOTE.format(what=", ".join(found)), cleaned)
        elif str(cell.get("metadata", {}).get("raw_mimetype", "")).lower() in ("", "text/html"):
            found = findings(source)       # (the raw cells an HTML page includes as they are)
            if found:
                cell["source"] = clean_html(source)
        else:
            found = []
        if found:
            removed.append(f"cell {number}: " + ", ".join(found))
    return removed


class CleanNotebook(Preprocessor):
    """nbconvert preprocessor applying :func:`clean_notebook` (nbgrader's feedback step: the notebook
    rendered for the student is inert even where it was autograded before this step existed)."""

    enabled = Bool(True).tag(config=True)   # (nbconvert's preprocessors are off unless enabled)

    def preprocess(self, nb, resources):
        removed = clean_notebook(nb)
        if removed:
            self.log.info("cleaned %d cell(s) of %s", len(removed), resources.get("unique_key", "a notebook"))
        return nb, resources
