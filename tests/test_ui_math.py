"""Math in a real browser, offline: every page the kit writes or serves renders every formula.

Debian's Chromium (through Playwright, launched as tests/test_ui.py launches it) opens each page with every
request that leaves localhost aborted and counted, waits until MathJax has finished (a callback queued on
MathJax's own queue once its start-up typesetting has run), and counts what a reader sees:

* the HTML report (``course/report.py``), built from two small executed notebooks that hold the course's
  real derivations (the reference answers of Q1 and Q6: primes, sums, fractions, cases);
* nbgrader's feedback HTML (``feedback/<student>/hw4/01_layers.html``) of a student whose Q1 derivation
  cells hold those answers, made by the kit's ``grading.autograde.feedback.feedback_one`` (and the same
  HTML alone, as nbgrader's exchange releases it: it asks the CDN for MathJax, for a reader online);
* formgrader's manual-grading page of that notebook, served by ``jupyter server`` from the course root
  (formgrader is one of its extensions; it reads the course's ``nbgrader_config.py``).

On each page: MathJax is there (not "MathJax is not defined"); it finished within the time limit; it
found at least as many formulas as the page's Markdown holds; every one has its rendered frame; the
visible text holds "Math Processing Error" 0 times, no TeX error box, no ``$$`` and no raw TeX command
outside code; no MathJax script failed to load; no request went beyond localhost. The counts go to
``build/ui/math.json``. Without Chromium or playwright the tests skip; under ``CI=true`` they fail.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import urllib.parse
import urllib.request
from pathlib import Path

import nbformat
import pytest

from course import report
from grading.nbgrader.course_root import ASSIGNMENT, clone, run_converter

from .conftest import REPO
from .test_grading_release import shared_release
from .test_ui import CHROMIUM, CHROMIUM_FLAGS, SHOTS, _need_browser, formgrader_server
from .test_ui import TOKEN as UI_TOKEN

pytestmark = pytest.mark.slow
TOKEN = UI_TOKEN  # formgrader_server starts it with the UI test's token
STUDENT = "ada"
LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")
# Seconds MathJax may take on a page (a few hundred formulas: about 10 s on two busy cores).
MATHJAX_TIMEOUT = float(os.environ.get("HWLIB_UI_MATHJAX_TIMEOUT", "180"))

# What a reader sees, once MathJax's queue has run dry. A formula is rendered when its output frame
# (``<id>-Frame``) exists and is neither MathJax's "[Math Processing Error]" nor a TeX error box.
MEASURE = r"""async (timeoutMs) => {
    // Raw TeX a reader sees: "$$" in the visible text, and TeX commands in text outside code and outside
    // MathJax's output (a preview left standing is raw TeX, so it counts).
    const raw = () => {
        const skip = "pre, code, script, style, textarea, .MathJax, .MathJax_Display, .MJX_Assistive_MathML";
        const found = [];
        const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
        while (walker.nextNode()) {
            const node = walker.currentNode, parent = node.parentElement;
            if (!parent || parent.closest(skip) || !parent.getClientRects().length) continue;
            if (/\$\$|\\(frac|partial|sum|mathbf|mathrm|cdot|left|right|begin|end|text)\b/.test(node.nodeValue))
                found.push(node.nodeValue.trim().slice(0, 80));
        }
        const text = document.body.innerText;
        return {processing_errors: (text.match(/Math Processing Error/g) || []).length,
                raw_dollars: (text.match(/\$\$/g) || []).length, raw_tex: found.slice(0, 5), raw_tex_count: found.length,
                text: text.slice(0, 300)};
    };
    if (!window.MathJax || !window.MathJax.Hub) return Object.assign({mathjax: false}, raw());
    const start = performance.now();
    const finished = await Promise.race([
        // (the hook returns nothing: a callback it returned would hold MathJax's start-up until it ran)
        new Promise(done => MathJax.Hub.Register.StartupHook("End", () => { MathJax.Hub.Queue(() => done(true)); })),
        new Promise(done => setTimeout(() => done(false), timeoutMs))]);
    const jax = MathJax.Hub.getAllJax();
    const bad = [];
    let primes = 0;
    for (const j of jax) {
        const frame = document.getElementById(j.inputID + "-Frame");
        const tex = j.originalText || "";
        if (tex.includes("'")) primes += 1;
        if (!frame || frame.classList.contains("MathJax_Error") || frame.querySelector(".noError, .merror")
                || /Math Processing Error/.test(frame.textContent)) bad.push(tex.slice(0, 80));
    }
    return Object.assign({mathjax: true, finished, seconds: Math.round(performance.now() - start) / 1000,
            font: MathJax.OutputJax["HTML-CSS"] ? MathJax.OutputJax["HTML-CSS"].fontInUse || null : null,
            formulas: jax.length, rendered: jax.length - bad.length, with_prime: primes, not_rendered: bad.slice(0, 5)},
        raw());
}"""


def _local(url: str) -> bool:
    parts = urllib.parse.urlsplit(url)
    return parts.scheme in ("file", "data", "blob", "about") or parts.hostname in LOCAL_HOSTS


def _tex_segments(markdown: str) -> int:
    """How many formulas MathJax should find in ``markdown``: ``$$...$$`` and ``$...$`` outside code."""
    text = re.sub(r"^```.*?^```", "", markdown, flags=re.DOTALL | re.MULTILINE)   # fenced code
    text = re.sub(r"`[^`\n]*`", "", text).replace(r"\$", "")        # code spans, escaped dollars
    return len(re.findall(r"\$\$.+?\$\$|\$[^$]+?\$", text, flags=re.DOTALL))


def _reference_answers(stem: str) -> dict[str, str]:
    """grade_id -> the reference answer of each hand-graded Markdown cell of ``notebooks/<stem>.ipynb``."""
    nb = nbformat.read(REPO / "notebooks" / f"{stem}.ipynb", as_version=4)
    return {c.metadata["nbgrader"]["grade_id"]: report._DELIMITER.sub("", c.source).strip() for c in nb.cells
            if c.cell_type == "markdown" and c.metadata.get("nbgrader", {}).get("grade")}


def _record(name: str, seen: dict) -> None:
    """Keep each page's counts in build/ui/math.json."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    path = SHOTS / "math.json"
    data = json.loads(path.read_text()) if path.exists() else {}
    data[name] = {k: v for k, v in seen.items() if k != "text"}
    path.write_text(json.dumps(data, indent=1, sort_keys=True))


@pytest.fixture(scope="module")
def browser():
    _need_browser()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS, headless=True)
        yield chromium
        chromium.close()


def _visit(browser, url: str, name: str) -> dict:
    """Open ``url`` with the network closed but for localhost; MathJax's counts, requests sent elsewhere
    (aborted), local requests that failed, and the page's script errors."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    blocked, failed, errors = [], [], []

    def route(route):
        if _local(route.request.url):
            route.continue_()
        else:
            blocked.append(route.request.url)
            route.abort()

    context.route("**/*", route)
    page = context.new_page()
    page.on("requestfailed", lambda request: None if request.url in blocked else failed.append(request.url))
    page.on("pageerror", lambda error: errors.append(str(error)))
    try:
        page.goto(url, wait_until="load", timeout=120_000)
        seen = page.evaluate(MEASURE, MATHJAX_TIMEOUT * 1000)
        page.screenshot(path=str(SHOTS / f"math_{name}.png"))
    finally:
        context.close()
    seen.update(blocked=blocked, failed=failed, page_errors=errors[:5])
    _record(name, seen)
    return seen


def _assert_rendered(seen: dict, what: str, expected: int) -> None:
    assert seen["mathjax"], (f"{what}: MathJax is not defined (requests sent elsewhere and aborted: {seen['blocked']}): "
                             f"$$ shown {seen['raw_dollars']} times, raw TeX in {seen['raw_tex_count']} places, "
                             f"e.g. {seen['raw_tex'][:2]}")
    assert seen["finished"], f"{what}: MathJax had not finished after {MATHJAX_TIMEOUT:.0f} s: {seen}"
    assert seen["processing_errors"] == 0, f"{what}: 'Math Processing Error' {seen['processing_errors']} times: {seen}"
    assert seen["formulas"] >= expected > 0, f"{what}: MathJax found {seen['formulas']} formulas, the page holds {expected}"
    assert seen["rendered"] == seen["formulas"], \
        f"{what}: {seen['formulas'] - seen['rendered']} of {seen['formulas']} formulas not rendered, e.g. {seen['not_rendered']}"
    assert seen["raw_dollars"] == 0 and seen["raw_tex_count"] == 0, \
        f"{what}: raw TeX in the visible text ($$ {seen['raw_dollars']} times): {seen['raw_tex']}"
    assert seen["with_prime"] > 0, f"{what}: no formula with a prime ($H'$): the case of issue 26 was not exercised"
    missing = [u for u in seen["failed"] if u.split("?")[0].endswith(".js")]
    assert not missing, f"{what}: MathJax files that failed to load: {missing}"
    assert not seen["blocked"], f"{what}: requests beyond localhost (aborted): {seen['blocked']}"
    assert not [e for e in seen["page_errors"] if "MathJax" in e], f"{what}: script errors: {seen['page_errors']}"


# --- (a) the report ---------------------------------------------------------------------------------------

def _executed(path: Path, stem: str, title: str) -> int:
    """A small executed notebook holding the reference derivations of ``stem``; return its formula count."""
    answers = _reference_answers(stem)
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [nbformat.v4.new_markdown_cell(f"# {title}")]
    for number, (grade_id, answer) in enumerate(answers.items(), 1):
        code = nbformat.v4.new_code_cell(f"print('RESULT check {number}')", execution_count=number)
        code.outputs = [nbformat.v4.new_output("stream", name="stdout", text=f"RESULT check {number}\n")]
        nb.cells += [nbformat.v4.new_markdown_cell(f"## {grade_id}\n\n{answer}"), code]
    nbformat.write(nb, path)
    return sum(_tex_segments(a) for a in answers.values())


def test_report_renders_every_formula_offline(browser, tmp_path):
    folder = tmp_path / "notebooks"
    folder.mkdir()
    expected = (_executed(folder / "01_layers.ipynb", "01_layers", "Q1: layers")
                + _executed(folder / "06_conv_backward_proof.ipynb", "06_conv_backward_proof", "Q6: proofs"))
    out = tmp_path / "report"
    assert report.main(["--notebooks", str(folder), "--out", str(out), "--no-pdf"]) == 0
    seen = _visit(browser, (out / "hw4.html").as_uri(), "report")
    _assert_rendered(seen, "the report", expected)
    assert seen["font"] == "STIX-Web", seen["font"]      # the fonts the copy ships


# --- (b) nbgrader's feedback and (c) formgrader's manual-grading page ---------------------------------------

@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    """A course (the kit's release, cloned) where ``ada`` submitted Q1 with the reference derivations;
    nbgrader's autograde (no execution: the course configuration for the grading tool) and the kit's
    feedback ran. Returns the course, the submitted notebook's formula count, and its formgrader id."""
    _need_browser()
    from grading.autograde.feedback import feedback_one
    from grading.autograde.gradebook import gradebook

    shared = shared_release(tmp_path_factory)
    course = clone(shared["course"], tmp_path_factory.mktemp("math") / "course")
    submitted = course / "submitted" / STUDENT / ASSIGNMENT
    shutil.copytree(shared["folder"], submitted)
    path = submitted / "01_layers.ipynb"
    nb = nbformat.read(path, as_version=4)
    answers = _reference_answers("01_layers")
    filled = []
    for cell in nb.cells:   # the derivations that the course's profile asks for
        grade_id = cell.metadata.get("nbgrader", {}).get("grade_id")
        if grade_id in answers:
            cell.source = answers[grade_id]
            filled.append(grade_id)
    assert "q1-conv-derivation" in filled, f"the release's Q1 has no convolution derivation (its primes): {filled}"
    nbformat.write(nb, path)
    result = run_converter("autograde", course, student=STUDENT)
    assert result["success"], result["log"][-3000:]
    assert feedback_one(course, STUDENT), "nbgrader's generate_feedback failed"
    with gradebook(course) as gb:
        submission = gb.find_submission_notebook("01_layers", ASSIGNMENT, STUDENT).id
    expected = sum(_tex_segments(c.source) for c in nb.cells if c.cell_type == "markdown")
    return {"course": course, "expected": expected, "submission": submission}


def test_nbgrader_feedback_renders_every_formula_offline(browser, graded):
    folder = graded["course"] / "feedback" / STUDENT / ASSIGNMENT
    assert (folder / "mathjax" / "MathJax.js").is_file(), "no MathJax copy beside the feedback HTML"
    seen = _visit(browser, (folder / "01_layers.html").as_uri(), "feedback")
    _assert_rendered(seen, "nbgrader's feedback", graded["expected"])
    assert seen["font"] == "STIX-Web", seen["font"]
    # Released through nbgrader's exchange, the HTML travels alone: MathJax then comes from the CDN (online).
    alone = graded["course"].parent / "fetched"
    alone.mkdir()
    shutil.copy(folder / "01_layers.html", alone / "01_layers.html")
    fetched = _visit(browser, (alone / "01_layers.html").as_uri(), "feedback_without_mathjax_folder")
    assert [u.split("?")[0] for u in fetched["blocked"]] == ["https://cdnjs.cloudflare.com/ajax/libs/mathjax/2.7.7/latest.js"], \
        fetched["blocked"]


@pytest.fixture(scope="module")
def formgrader(graded):
    """``jupyter server`` in the course root (as a TA starts it: README, step 5); yields its URL."""
    with formgrader_server(graded["course"]) as url:
        yield url


def test_formgrader_manual_grading_page_renders_every_formula_offline(browser, graded, formgrader):
    seen = _visit(browser, f"{formgrader}/formgrader/submissions/{graded['submission']}/?token={TOKEN}", "formgrader")
    _assert_rendered(seen, "formgrader's manual-grading page", graded["expected"])
    assert seen["font"] == "STIX-Web", seen["font"]
    assert not seen["page_errors"], f"formgrader's scripts failed: {seen['page_errors']}"
