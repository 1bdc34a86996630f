"""A submission carries no active content into anyone's browser (grading/autograde/sanitize.py).

A student's Markdown derivation holding ``<script>``, ``<img onerror>``, ``javascript:`` links, frames and
images from elsewhere goes through the kit's sanitizer, the autograded notebook's cleaning
(``merge_outputs``) and the HTML exporters of nbgrader's feedback and formgrader's manual-grading page
as the course configures them; it comes out with nothing that runs or loads, while ``$x^2$`` math and
an ordinary link remain. The kit's own pages (``grading_report.html``, ``summary.html``) escape what
a submission controls: student ids, messages, error texts. Fast: no grading run (tests/test_ui_html_safety.py
drives a real one in a browser).
"""

from __future__ import annotations

import html
import json
import os
import re
from pathlib import Path

import nbformat
import pytest

from .conftest import REPO

MARKER = "__hw4_pwned"          # every payload that runs sets window.__hw4_pwned (and the page title)
EVIL = "evil.example"           # every payload that loads asks this host
HOSTILE_ID = "a b'; <i>x"
HOSTILE_MESSAGE = "ValueError: <script>window.__hw4_pwned='message'</script> and <img src=x onerror=alert(1)>"

# A derivation cell as a hostile student writes it: math and a link to keep, the rest to neutralise.
PAYLOAD = f"""## Derivation

The gradient is $x^2$ for $i<j$, and $$\\frac{{\\partial L}}{{\\partial W}} = X^T \\, dY$$
(and a TeX link for MathJax: $\\href{{javascript:window.{MARKER}='tex'}}{{y}}$).

See [the docs](https://example.org/docs) and **bold** text.

<script>window.{MARKER} = 'script'; document.title = 'PWNED';</script>
<img src=x onerror="window.{MARKER}='img'; document.title='PWNED'">
<a href="javascript:window.{MARKER}='link'">a javascript link</a> and [another](javascript:window.{MARKER}='md-link')
<a href="jav&#x09;ascript:window.{MARKER}='entity'">entity link</a> <a href="//{EVIL}/x">other host</a>
<iframe src="http://{EVIL}/frame" srcdoc="<script>parent.{MARKER}='iframe'</script>"></iframe>
<img src="http://{EVIL}/track.png"> <IMG SRC="https://{EVIL}/upper.png">
<svg onload="window.{MARKER}='svg'"><script>window.{MARKER}='svg-script'</script></svg>
<details open ontoggle="window.{MARKER}='details'"><summary>s</summary>x</details>
<object data="http://{EVIL}/o"></object><embed src="http://{EVIL}/e">
<link rel="stylesheet" href="http://{EVIL}/x.css"><base href="http://{EVIL}/">
<meta http-equiv="refresh" content="0; url=http://{EVIL}/refresh">
<form action="javascript:window.{MARKER}='form'"><button formaction="javascript:window.{MARKER}='button'">go</button></form>
<p style="background: url(http://{EVIL}/bg.png)" onclick="window.{MARKER}='click'">styled</p>

<style>body {{ background: url(http://{EVIL}/style.png) }}</style>

<math><mtext><table><mglyph><style><img src=x onerror="window.{MARKER}='mxss'">
"""
OUTPUT_HTML = (f"<b>bold</b><script>window.{MARKER}='output'</script>"
               f"<img src=x onerror=\"window.{MARKER}='out-img'\">")
OUTPUT_JS = f"window.{MARKER} = 'javascript-output'"
PNG = "iVBORw0KGgo="
SAFE_MARKDOWN = ("# Q1\n\nFine: $x^2$, $$a & b$$, [docs](https://example.org/docs), `<code>` and\n\n"
                 "| a | b |\n|:--|--:|\n| 1 | 2 |\n")


def _url(value: str) -> str:
    return re.sub(r"[\x00-\x20\x7f]+", "", html.unescape(value)).lower()


def active_content(page: str) -> list[str]:
    """What in ``page`` (HTML) would run or load something of the payloads: scripts, handlers,
    javascript: URLs, frames and embedded objects, elements or styles naming the outside host.
    Parsed with Python's own parser, independent of bleach's."""
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(page, "html.parser")
    found = []
    for tag in soup.find_all(True):
        name = tag.name.lower()
        if name in ("iframe", "frame", "frameset", "object", "embed", "base", "form", "applet"):
            found.append(f"<{name}> element")
        if name in ("script", "style") and (MARKER in tag.get_text() or EVIL in tag.get_text()
                                            or EVIL in str(tag.get("src", ""))):
            found.append(f"<{name}> of the submission: {str(tag)[:80]}")
        if name == "meta" and tag.get("http-equiv", "").lower() == "refresh":
            found.append("<meta> refresh")
        for attr, value in tag.attrs.items():
            value = " ".join(value) if isinstance(value, list) else str(value)
            if attr.lower().startswith("on") and MARKER in value:
                found.append(f"{attr} handler on <{name}>")
            if EVIL in value:
                found.append(f"{attr}={value[:60]!r} on <{name}> (loads from outside)")
            if attr.lower() in ("href", "src", "action", "formaction", "data", "srcdoc") and \
                    _url(value).startswith(("javascript:", "vbscript:", "data:text")):
                found.append(f"{attr}={value[:60]!r} on <{name}>")
    return found


def payload_notebook(hostile_output: bool = True):
    """A notebook with the payload in a graded derivation cell, an ungraded Markdown cell, a raw cell,
    an attachment, saved widget state and (``hostile_output``) a code cell's HTML/JS output."""
    grade = {"grade": True, "solution": True, "grade_id": "q1-fc-derivation", "points": 5, "score": 0,
             "schema_version": 3, "locked": False}
    svg = "<svg xmlns='http://www.w3.org/2000/svg' onload='alert(1)'/>"
    outputs = [nbformat.v4.new_output("display_data", data={"text/html": OUTPUT_HTML, "text/plain": "plain text"}),
               nbformat.v4.new_output("display_data", data={"application/javascript": OUTPUT_JS}),
               nbformat.v4.new_output("display_data", data={"text/markdown": PAYLOAD})] if hostile_output else []
    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_markdown_cell(SAFE_MARKDOWN),
        nbformat.v4.new_markdown_cell(PAYLOAD, metadata={"nbgrader": grade}),
        nbformat.v4.new_code_cell("x = 1", outputs=outputs, execution_count=1),
        nbformat.v4.new_markdown_cell(PAYLOAD, attachments={"a.svg": {"image/svg+xml": svg},
                                                            "b.png": {"image/png": PNG}}),
        nbformat.v4.new_raw_cell(PAYLOAD, metadata={"raw_mimetype": "text/html"}),
        nbformat.v4.new_markdown_cell("A figure: ![fig](attachment:b.png)", attachments={"b.png": {"image/png": PNG}}),
    ])
    nb.metadata["widgets"] = {"application/vnd.jupyter.widget-state+json": {"state": {}, "version_major": 2}}
    return nb


# --- the sanitizer -------------------------------------------------------------------------------

def test_clean_html_keeps_nothing_active():
    from grading.autograde.sanitize import clean_html, findings, render_markdown

    rendered = render_markdown(PAYLOAD)
    assert active_content(rendered), "the payload should be active before cleaning"
    found = findings(rendered)
    for what in ("script element", "onerror attribute", "javascript: link", "iframe element", "image from elsewhere",
                 "svg element", "ontoggle attribute", "object element", "style element", "base element",
                 "form element", "link to another host"):
        assert what in found, (what, found)
    cleaned = clean_html(rendered)
    assert active_content(cleaned) == []
    assert not re.search(r"<(script|iframe|object|embed|svg|math|style|link|base|meta|form)\b", cleaned, re.I)
    assert not re.search(r"\son\w+\s*=", re.sub(r"&lt;.*?&gt;", "", cleaned, flags=re.S), re.I)
    # What stays: math as text for MathJax, the ordinary link, Markdown's own markup.
    assert "$x^2$" in cleaned and "$i&lt;j$" in cleaned and "$$\\frac{\\partial L}{\\partial W}" in cleaned
    assert '<a href="https://example.org/docs">the docs</a>' in cleaned and "<strong>bold</strong>" in cleaned
    assert '<h2 id="Derivation">' in cleaned
    # The refused tags are shown as text (the TA sees what the student wrote), not run.
    assert "&lt;script&gt;" in cleaned and clean_html(cleaned) == cleaned


def test_ordinary_markdown_is_untouched():
    from grading.autograde.sanitize import clean_html, findings, render_markdown

    rendered = render_markdown(SAFE_MARKDOWN)
    assert findings(rendered) == []
    cleaned = clean_html(rendered)
    for kept in ("<h1 id=\"Q1\">", "$x^2$", "$$a &amp; b$$", '<a href="https://example.org/docs">docs</a>',
                 "<code>&lt;code&gt;</code>", '<th style="text-align:left;">', '<td style="text-align:right;">'):
        assert kept in cleaned, (kept, cleaned)
    image = '<p><img alt="fig" src="data:image/png;base64,iVBORw0KGgo="></p>'
    assert findings(image) == [] and clean_html(image) == image


@pytest.mark.parametrize("vector", [
    '<a href="JaVaScRiPt:alert(1)">x</a>', '<a href=" javascript:alert(1)">x</a>',
    '<a href="&#106;avascript:alert(1)">x</a>', '<a href="vbscript:x">x</a>',
    '<a href="data:text/html;base64,PHNjcmlwdD4=">x</a>', '<img src="data:image/svg+xml;base64,PHN2Zz4=">',
    '<img/src=x/onerror=alert(1)>', '<div onmouseover="alert(1)">x</div>', '<p style="background:url(//e/x)">x</p>',
    '<scr<script>ipt>alert(1)</script>', '<noscript><p title="</noscript><img src=x onerror=alert(1)>">',
    '<table background="http://e/x">', '<a href="/\\evil.example/x">x</a>', '<video><source onerror=alert(1)></video>',
    '<input autofocus onfocus=alert(1)>',
])
def test_clean_html_vectors(vector):
    from grading.autograde.sanitize import clean_html, findings

    assert findings(vector), vector
    cleaned = clean_html(vector)
    assert findings(cleaned) == [], cleaned
    assert not re.search(r"<[a-z]+[^>]*\s(on\w+|style|background)\s*=", cleaned, re.I), cleaned
    assert not re.search(r"(href|src)=\"\s*(javascript|vbscript|data:text|data:image/svg)", cleaned, re.I), cleaned


def test_clean_notebook_rewrites_hostile_cells_only():
    from grading.autograde.sanitize import clean_notebook, findings, render_markdown

    nb = payload_notebook()
    safe_before = nb.cells[0].source
    removed = clean_notebook(nb)
    assert [r.split(":")[0] for r in removed] == ["notebook", "cell 2", "cell 4", "cell 4", "cell 5"], removed
    assert nb.cells[0].source == safe_before                       # nothing to remove: byte for byte
    assert "widgets" not in nb.metadata
    assert set(nb.cells[3].attachments) == {"b.png"}
    for cell in (nb.cells[1], nb.cells[3]):
        text = render_markdown(cell.source, cell.get("attachments"))
        assert findings(text) == [] and active_content(text) == [], text
        assert "The grader removed from this cell" in text and "script element" in text
        assert "$x^2$" in text and '<a href="https://example.org/docs">the docs</a>' in text
    assert findings(nb.cells[4].source) == [] and active_content(nb.cells[4].source) == []
    assert clean_notebook(nb) == []                                # idempotent


def test_merge_outputs_cleans_the_autograded_notebook():
    from grading.autograde.notebooks import merge_outputs
    from grading.autograde.sanitize import findings, render_markdown

    submitted = nbformat.writes(payload_notebook())
    untrusted = json.loads(submitted)                   # the student's notebook, as data
    trusted = nbformat.reads(submitted, as_version=4)   # nbgrader's autograded copy: outputs cleared
    # A cell the student's notebook lacks (a restored test cell), with an output left by mistake: cleaned too.
    trusted.cells.append(nbformat.v4.new_code_cell("y = 2", outputs=[
        nbformat.v4.new_output("display_data", data={"text/html": OUTPUT_HTML})]))
    assert merge_outputs(trusted, untrusted) == 1
    code = trusted.cells[2]   # the student's outputs, as data: text kept, HTML, JavaScript and Markdown not rendered
    assert [dict(o.data) for o in code.outputs] == [{"text/plain": "plain text"}, {"text/plain": PAYLOAD}]
    assert trusted.cells[-1].outputs == []
    for cell in trusted.cells:
        if cell.cell_type == "markdown":
            assert findings(render_markdown(cell.source, cell.get("attachments"))) == []


# --- nbgrader's feedback and formgrader, as the course configures them ---------------------------

def _exporter(template: str):
    from nbconvert.exporters import HTMLExporter
    from nbgrader.server_extensions.formgrader import handlers
    from traitlets.config import Config
    from traitlets.config.loader import PyFileConfigLoader

    config = Config(PyFileConfigLoader("nbgrader_config.py", path=str(REPO / "grading" / "nbgrader")).load_config())
    # What GenerateFeedback and formgrader's extension add to the course's configuration.
    config.HTMLExporter.template_name = template
    config.HTMLExporter.extra_template_basedirs = [  # the kit's own template folders (if any) first
        *[d for d in config.HTMLExporter.get("extra_template_basedirs", []) if d != handlers.template_path],
        handlers.template_path]
    config.HTMLExporter.extra_template_paths = [str(Path(handlers.__file__).parent / "static" / "node_modules"
                                                    / "bootstrap" / "dist" / "css")]
    return config, HTMLExporter(config=config)


RESOURCES = {
    "feedback": {"nbgrader": {"notebook": "01_layers", "score": 0, "max_score": 20, "late_penalty": 0}},
    "formgrade": {"assignment_id": "hw4", "notebook_id": "01_layers", "submission_id": "abc", "index": 0, "total": 1,
                  "base_url": "", "student": "mallory", "last_name": None, "first_name": None, "notebook_path": "x"},
}


@pytest.mark.parametrize("template", ["feedback", "formgrade"])
def test_nbgrader_pages_render_the_payload_inert(template):
    """The notebook as nbgrader left it, before the kit cleaned it (an older course): the exporter alone,
    configured by grading/nbgrader/nbgrader_config.py, keeps the page inert."""
    config, exporter = _exporter(template)
    assert config.HTMLExporter.sanitize_html is True
    page, _ = exporter.from_notebook_node(payload_notebook(), resources=RESOURCES[template])
    assert active_content(page) == [], active_content(page)
    assert OUTPUT_JS not in page and "<b>bold</b>" in page            # the HTML output cleaned, the JS left out
    assert "$x^2$" in page and '<a href="https://example.org/docs">the docs</a>' in page
    assert f'src="data:image/png;base64,{PNG}"' in page                # the cell's attachment, inlined
    assert page.count("&lt;script&gt;window.__hw4_pwned = 'script'") >= 2   # shown as text, in both cells


def test_feedback_preprocessors_clean_the_notebook():
    """nbgrader's feedback step runs the kit's CleanNotebook (the cell then says what was removed)."""
    from grading.autograde.sanitize import CleanNotebook

    config, _ = _exporter("feedback")
    assert CleanNotebook in config.GenerateFeedback.preprocessors
    nb, _ = CleanNotebook(config=config)(payload_notebook(), {})
    assert "The grader removed from this cell" in nb.cells[1].source


# --- the kit's own pages ------------------------------------------------------------------------

@pytest.fixture
def hostile_course(tmp_path, monkeypatch):
    """A course folder with one saved result, of a student whose id, problems and failures are hostile."""
    from grading.autograde.deadlines import POLICY_ENV
    from grading.autograde.gradebook import NotebookRun, StudentResult, save_result
    from grading.autograde.hidden import CaseResult, GroupResult

    policy = tmp_path / "no_deadline.toml"
    policy.write_text("# no [deadline] table\n")
    monkeypatch.setenv(POLICY_ENV, str(policy))
    course = tmp_path / "course"
    course.mkdir()
    (course / "nbgrader_config.py").write_text("c = get_config()\nc.CourseDirectory.course_id = 'eecs545'\n")
    (course / "not_graded.json").write_text(json.dumps([{"entry": "<b>x</b>.zip", "reason": HOSTILE_MESSAGE}]))
    case = CaseResult(id="fc-<i>1</i>", points=0, max_points=2, passed=False, describe="x<script>(2,3)</script>",
                      message=HOSTILE_MESSAGE)
    groups = {"q1-fc-test": GroupResult("q1-fc-test", 0, 2, "error", HOSTILE_MESSAGE, [case],
                                        policy=[{"message": HOSTILE_MESSAGE}])}
    headline = {"cell": 3, "id": "c", "verdict": "differs", "message": HOSTILE_MESSAGE, "saved": "<script>s</script>",
                "rerun": "<iframe src=//evil.example>"}
    run = NotebookRun("01_<i>layers", "error", 1.0, HOSTILE_MESSAGE, headlines=[headline])
    save_result(course, StudentResult(HOSTILE_ID, groups, [run], [HOSTILE_MESSAGE], flags=[HOSTILE_MESSAGE],
                                      submission={"source": "<b>x</b>.zip", "left_out": ["<i>old</i>.zip"]}))
    return course


def _no_markup_from(page: str) -> None:
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(page, "html.parser")
    foreign = [t for t in soup.find_all(["script", "iframe", "img", "i"])   # the kit's pages hold no <i>, and
               if not (t.name == "img" and t.get("src", "").startswith("data:image/png;base64,"))]  # only its plots
    assert not foreign, [str(t)[:80] for t in foreign]
    assert not [a for t in soup.find_all(True) for a in t.attrs if a.lower().startswith("on")]
    assert active_content(page) == []


def test_grading_report_escapes_what_the_submission_controls(hostile_course):
    from grading.autograde.feedback import student_report

    page = student_report(hostile_course, HOSTILE_ID)
    _no_markup_from(page)
    assert html.escape(HOSTILE_ID) in page and HOSTILE_ID not in page
    assert html.escape(HOSTILE_MESSAGE) in page


def test_class_summary_escapes_what_the_submission_controls(hostile_course):
    from grading.autograde.feedback import class_summary

    page = class_summary(hostile_course).read_text(encoding="utf-8")
    _no_markup_from(page)
    assert html.escape(HOSTILE_ID) in page and HOSTILE_ID not in page
    assert html.escape("<b>x</b>.zip") in page


def test_autograde_of_a_missing_folder_is_one_line(tmp_path):
    import subprocess
    import sys

    missing = tmp_path / "nonexistent"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    for source, why in ((missing, "does not exist"), (REPO / "README.md", "is not a folder")):
        done = subprocess.run([sys.executable, "-m", "grading", "autograde", str(source)], cwd=REPO, env=env,
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 2, done.stderr
        assert done.stderr.strip() == (f"python -m grading autograde: error: {source} {why}: expected a folder of "
                                       "submissions (<student>/hw4/ folders or <student>_....zip files)"), done.stderr
        assert "Traceback" not in done.stderr and done.stdout == ""
