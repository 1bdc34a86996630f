"""A hostile submission's pages in a real browser: nothing of it runs, nothing is fetched from outside.

A small course grades two submissions (no notebook execution, nbgrader's feedback on): ``mallory``,
whose Q1 derivation cell, an extra Markdown cell and a code cell's saved HTML output hold the payloads
of tests/test_grading_html_safety.py (scripts, ``onerror``, ``javascript:`` links, frames, images and
styles from ``evil.example``); and a folder named ``a b'; <i>x``, beside a file whose name is an
``<img onerror>`` tag (listed as not graded in the summary). Debian's Chromium (through Playwright, as
tests/test_ui.py drives it) then opens, with every request that leaves localhost aborted and counted:

* nbgrader's feedback HTML of mallory's Q1 notebook, her ``grading_report.html``, ``summary.html``;
* formgrader's manual-grading page of that notebook, served by ``jupyter server`` from the course root,
  after a raw copy of the payload was put back into the autograded notebook (as a course graded before
  the kit cleaned notebooks would hold it): the page is safe through the course's configuration alone.

On each page, once MathJax (where it loaded) has typeset it: ``window.__hw4_pwned`` is unset and the
title is not ``PWNED`` (every payload that runs sets them), no alert, no frame or embedded object, no
handler or ``javascript:`` URL (a TeX ``\\href`` included: MathJax's Safe extension), and no request to
any host but localhost -- nbgrader's own templates load MathJax from a CDN, the only outside request
tolerated, for a course whose templates do not carry a local copy. ``$x^2$`` (as text or typeset) and
the ordinary link are on the notebook pages. Without Chromium or playwright the test skips; under
``CI=true`` it fails (as tests/test_ui.py does).
"""

from __future__ import annotations

import shutil
import urllib.parse
import urllib.request
from pathlib import Path

import nbformat
import pytest

from grading.nbgrader.course_root import ASSIGNMENT, clone

from .test_grading_html_safety import EVIL, MARKER, OUTPUT_HTML, PAYLOAD
from .test_grading_release import shared_release
from .test_ui import CHROMIUM, CHROMIUM_FLAGS, _need_browser, formgrader_server
from .test_ui import TOKEN as UI_TOKEN

pytestmark = pytest.mark.slow
TOKEN = UI_TOKEN  # formgrader_server starts it with the UI test's token
STUDENT = "mallory"
HOSTILE_FOLDER = "a b'; <i>x"
HOSTILE_FILE = f"<img src=x onerror=window.{MARKER}='entry'>.txt"
# nbgrader's feedback and formgrade templates load MathJax from this CDN (not configurable there).
TEMPLATE_CDN = "https://cdnjs.cloudflare.com/ajax/libs/mathjax/"
LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")


def _hostile_copy(release: Path, dest: Path) -> None:
    """The blank release with the payloads in Q1: the derivation cell, a new Markdown cell, the first
    code cell's saved output (HTML)."""
    shutil.copytree(release, dest)
    path = dest / "01_layers.ipynb"
    nb = nbformat.read(path, as_version=4)
    cells = [c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == "q1-fc-derivation"]
    assert cells, "the release's Q1 has no q1-fc-derivation cell"
    cells[0].source = PAYLOAD
    first = next(c for c in nb.cells if c.cell_type == "code")
    first.outputs = [nbformat.v4.new_output("display_data", data={"text/html": OUTPUT_HTML, "text/plain": "saved"})]
    first.execution_count = 1
    nb.cells.append(nbformat.v4.new_markdown_cell(PAYLOAD))
    nbformat.write(nb, path)


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    _need_browser()
    from grading.autograde.deadlines import POLICY_ENV
    from grading.autograde.job import Settings, autograde

    shared = shared_release(tmp_path_factory)
    base = tmp_path_factory.mktemp("html-safety")
    course = clone(shared["course"], base / "course")
    subs = base / "submissions"
    _hostile_copy(shared["folder"], subs / STUDENT / ASSIGNMENT)
    shutil.copytree(shared["folder"], subs / HOSTILE_FOLDER / ASSIGNMENT)
    (subs / HOSTILE_FILE).write_text("not a submission\n")
    policy = base / "no_deadline.toml"
    policy.write_text("# no [deadline] table: no late penalty\n")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(POLICY_ENV, str(policy))
        results = autograde(subs, Settings(course=course, workers=2, execute=False, nbgrader_feedback=True,
                                           budget_scale=0.3), log=lambda *a: None)
    ids = sorted(r.student for r in results)
    assert STUDENT in ids and len(ids) == 2, ids
    # formgrader must be safe by configuration too: a raw payload cell, as an older autograded notebook holds it
    autograded = course / "autograded" / STUDENT / ASSIGNMENT / "01_layers.ipynb"
    nb = nbformat.read(autograded, as_version=4)
    nb.cells.append(nbformat.v4.new_markdown_cell(PAYLOAD))
    nbformat.write(nb, autograded)
    return {"course": course, "other": next(i for i in ids if i != STUDENT)}


@pytest.fixture(scope="module")
def formgrader(graded):
    """``jupyter server`` (formgrader is one of its extensions) in the course root; yields its URL."""
    with formgrader_server(graded["course"]) as url:
        yield url


@pytest.fixture(scope="module")
def browser(graded):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS, headless=True)
        yield chromium
        chromium.close()


MATHJAX_DONE = """async (ms) => {
    if (!window.MathJax || !window.MathJax.Hub) return false;
    return await Promise.race([
        new Promise(done => MathJax.Hub.Register.StartupHook("End", () => { MathJax.Hub.Queue(() => done(true)); })),
        new Promise(done => setTimeout(() => done(false), ms))]);
}"""


def _local(url: str) -> bool:
    parts = urllib.parse.urlsplit(url)
    return parts.scheme in ("file", "data", "blob", "about") or parts.hostname in LOCAL_HOSTS


def _visit(browser, url: str) -> dict:
    """Open ``url`` with the network closed but for localhost; return what happened on the page."""
    context = browser.new_context()
    outside, dialogs = [], []

    context.route("**/*", lambda route: route.continue_() if _local(route.request.url) else route.abort())
    page = context.new_page()
    page.on("request", lambda request: None if _local(request.url) else outside.append(request.url))  # counted
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    try:
        page.goto(url, wait_until="load", timeout=60_000)
        page.wait_for_timeout(1500)   # image errors, toggles, refreshes: they fire soon after load
        # Where MathJax loaded (from localhost or beside the page), until it has typeset the page: a TeX
        # \\href to javascript: would become a link then (MathJax's Safe extension must drop it).
        page.evaluate(MATHJAX_DONE, 30_000)
        seen = page.evaluate("""(marker) => {
            const handlers = [];
            for (const el of document.querySelectorAll('*')) {
                for (const attr of el.attributes) {
                    const name = attr.name.toLowerCase();
                    if ((name.startsWith('on') && attr.value.includes(marker)) ||
                        (['href', 'src', 'action', 'formaction'].includes(name) &&
                         attr.value.replace(/[\\x00-\\x20]/g, '').toLowerCase().startsWith('javascript:')))
                        handlers.push(`${el.tagName} ${name}=${attr.value.slice(0, 60)}`);
                }
            }
            return {pwned: typeof window[marker] === 'undefined' ? null : String(window[marker]),
                    title: document.title,
                    frames: document.querySelectorAll('iframe, frame, object, embed, base').length,
                    handlers,
                    text: document.body ? document.body.innerText : '',
                    // math: as $...$ text, or typeset by MathJax (which keeps each formula's TeX in a script)
                    tex: Array.from(document.querySelectorAll('script[type^="math/tex"]')).map(s => s.textContent),
                    docs_links: document.querySelectorAll('a[href="https://example.org/docs"]').length};
        }""", MARKER)
        seen["url"] = page.url
    finally:
        context.close()
    seen.update(outside=outside, dialogs=dialogs)
    return seen


def _assert_inert(seen: dict, what: str) -> None:
    assert seen["pwned"] is None and seen["title"] != "PWNED", \
        f"{what}: a script of the submission ran: {seen['pwned']}"
    assert not seen["dialogs"], f"{what}: dialogs {seen['dialogs']}"
    assert seen["frames"] == 0 and not seen["handlers"], (what, seen["frames"], seen["handlers"])
    assert not [u for u in seen["outside"] if EVIL in u], f"{what}: requests made for the submission: {seen['outside']}"
    unexpected = [u for u in seen["outside"] if not u.startswith(TEMPLATE_CDN)]
    assert not unexpected, f"{what}: requests beyond localhost: {unexpected}"
    assert seen["url"].split("?")[0].rstrip("/") == seen["start"].split("?")[0].rstrip("/"), f"{what}: navigated away"


def _check(browser, url: str, what: str) -> dict:
    seen = _visit(browser, url)
    seen["start"] = url
    _assert_inert(seen, what)
    return seen


def _has_math(seen: dict) -> bool:
    """``$x^2$`` is on the page: as text (MathJax not loaded) or typeset."""
    return "$x^2$" in seen["text"] or "x^2" in [t.strip() for t in seen["tex"]]


def test_feedback_report_and_summary_are_inert(graded, browser):
    course = graded["course"]
    folder = course / "feedback" / STUDENT / ASSIGNMENT
    feedback = _check(browser, (folder / "01_layers.html").as_uri(), "nbgrader's feedback")
    assert _has_math(feedback) and feedback["docs_links"] >= 2, "math or the ordinary link went missing"
    assert "The grader removed from this cell" in feedback["text"]
    assert f"window.{MARKER} = 'script'" in feedback["text"]          # shown as text, not run
    _check(browser, (folder / "grading_report.html").as_uri(), "grading_report.html")
    other = _check(browser, (course / "feedback" / graded["other"] / ASSIGNMENT / "grading_report.html").as_uri(),
                   "the other student's grading_report.html")
    assert graded["other"] in other["text"]
    summary = _check(browser, (course / "summary.html").as_uri(), "summary.html")
    assert HOSTILE_FILE in summary["text"]                             # the entry's name, as text


def test_formgrader_manual_grading_page_is_inert(graded, formgrader, browser):
    from grading.autograde.gradebook import gradebook

    with gradebook(graded["course"]) as gb:
        submission = gb.find_submission_notebook("01_layers", ASSIGNMENT, STUDENT).id
    seen = _check(browser, f"{formgrader}/formgrader/submissions/{submission}/?token={TOKEN}",
                  "formgrader's manual-grading page")
    assert "Derivation" in seen["text"] and _has_math(seen), seen["text"][:2000]
    assert seen["docs_links"] >= 3                                     # the two cleaned cells and the raw one
    assert seen["text"].count(f"window.{MARKER} = 'script'") >= 3       # the raw cell too: escaped by the filter
