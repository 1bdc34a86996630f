"""The notebooks in a real browser: JupyterLab (the course's settings) in Debian's Chromium, driven by Playwright.

JupyterLab runs on 127.0.0.1 with a token on a free port, started the way students start it
(``python -m hwlib.lab``: ``jupyter/settings/overrides.json``, README first), in a scratch folder
holding the README, every course notebook with quick-profile parameters injected (as papermill
injects them), and the student release. For each notebook the test clicks Run > Run All Cells,
saves, and checks: no error output; every explorer of the notebook rendered (its picture loaded), the
numbers in its grid cells at least 11 px on screen. On Q1 it moves the convolution explorer's slider
and checks that the window and the output value shown change. Then it saves again, closes the notebook
and opens it twice more, with a fresh kernel and with none: each explorer still shows a picture of its
last view, and the page never says "Error displaying widget". On the release's Q1 (stubs) it checks
that the first check cell shows the stub's message naming
``fc_forward`` and that the explorer shows ``conv_forward``'s. Screenshots go to ``build/ui/``.

The browser is Debian's ``chromium`` (``apt-get install chromium``; never ``playwright install``).
Without it or the ``playwright`` package the test skips, saying which is missing -- except under
``CI=true``, where it fails: a green CI means the browser really ran.
"""

from __future__ import annotations

from contextlib import contextmanager
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import nbformat
import pytest

from course.execute import source_notebooks

from .conftest import REPO, shared_data_root

CHROMIUM = os.environ.get("HWLIB_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
# Flags for a closed network (../shared/TOOLCHAIN.md): no sandbox (root in CI), no GPU, no phoning home.
CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync"]
SHOTS = REPO / "build" / "ui"
TOKEN = "hw4-ui-test"
RUN_TIMEOUT = int(os.environ.get("HWLIB_UI_RUN_TIMEOUT", "900"))  # seconds for Run All of one notebook (quick profile; Q5 is the longest)

# The explorers each notebook shows (CSS class of the root widget -> screenshot name).
EXPLORERS = {
    "01_layers": {"conv": "01_conv_explorer_digit", "pool": "01_pool_explorer"},
    "02_softmax_mnist": {"sweep": "02_sweep_explorer"},
    "03_cnn_mnist": {"conv": "03_conv_explorer_learned_filter"},
    "04_image_captioning": {"captions": "04_caption_browser"},
    "05_transfer_learning": {"transfer": "05_transfer_pager"},
    "06_conv_backward_proof": {"conv": "06_conv_explorer_backward"},
}
NOTEBOOKS = {nb.stem: nb for nb in source_notebooks()}
pytestmark = pytest.mark.slow


def _need_browser():
    """Skip (or, under CI=true, fail) saying what is missing."""
    problems = []
    if not Path(CHROMIUM).is_file():
        problems.append(f"Debian's Chromium is not installed ({CHROMIUM}; apt-get install -y chromium)")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        problems.append("the Python package playwright is not installed (pip install -e '.[dev]')")
    if problems:
        reason = "browser test not run: " + "; ".join(problems)
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("CI=true: " + reason)
        pytest.skip(reason)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _quick_copy(source: Path, dest: Path, data_root: Path | None) -> None:
    """``source`` with the quick profile injected after its ``parameters`` cell (as papermill does)."""
    nb = nbformat.read(source, as_version=4)
    lines = ["# Parameters injected by tests/test_ui.py", 'profile = "quick"', "seed = 0"]
    if data_root is not None:
        lines.append(f"data_root = {str(data_root)!r}")
    cell = nbformat.v4.new_code_cell("\n".join(lines), metadata={"tags": ["injected-parameters"]})
    index = next(i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", []))
    nb.cells.insert(index + 1, cell)
    nbformat.write(nb, dest)


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """JupyterLab with the course's settings, serving a scratch folder; yields (url, folder)."""
    _need_browser()
    from grading.release.build import build_release
    from hwlib.lab import lab_command

    root = tmp_path_factory.mktemp("lab")
    data_root = shared_data_root()
    shutil.copy(REPO / "README.md", root / "README.md")
    for path in NOTEBOOKS.values():
        _quick_copy(path, root / path.name, data_root)
    build_release(course=root.parent / f"{root.name}-course", out=root.parent / f"{root.name}-release")
    shutil.copytree(root.parent / f"{root.name}-release" / "hw4", root / "release")
    _quick_copy(root / "release" / "01_layers.ipynb", root / "release" / "01_layers.ipynb", data_root)
    port = _free_port()
    # The kernels must look like a student's: no test or grading flags (they would make every explorer static).
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTEST_CURRENT_TEST", "HWLIB_QUIET", "NBGRADER_EXECUTION", "HWLIB_WIDGETS")}
    env.update(JUPYTERLAB_SETTINGS_DIR=str(root.parent / "lab-user-settings"),  # not the user's own settings
               JUPYTERLAB_WORKSPACES_DIR=str(root.parent / "lab-workspaces"), JUPYTER_RUNTIME_DIR=str(root.parent / "rt"))
    command = lab_command(["--no-browser", "--allow-root", "--ip=127.0.0.1", f"--port={port}",
                           f"--IdentityProvider.token={TOKEN}", "--ServerApp.open_browser=False"], root=root)
    log = open(root.parent / "jupyterlab.log", "w")
    server = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                urllib.request.urlopen(f"{url}/api/status?token={TOKEN}", timeout=5)
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    log_text = (root.parent / "jupyterlab.log").read_text()[-3000:]
                    raise RuntimeError(f"JupyterLab did not start: {log_text}") from None
                time.sleep(0.5)
        yield url, root
    finally:
        server.terminate()
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()


@pytest.fixture(scope="module")
def browser(lab):
    from playwright.sync_api import sync_playwright

    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS, headless=True)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser, lab):
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    yield page
    page.close()
    _shut_down_kernels(lab[0])


def _shut_down_kernels(url: str) -> None:
    """Stop every kernel the test started (a notebook's kernel outlives its browser tab). The sessions
    go first, as JupyterLab's "Shut Down All" does: a session left pointing at a deleted kernel makes
    the next page that opens the notebook ask for a kernel instead of starting one."""
    with urllib.request.urlopen(f"{url}/api/sessions?token={TOKEN}") as answer:
        sessions = json.load(answer)
    for session in sessions:
        request = urllib.request.Request(f"{url}/api/sessions/{session['id']}?token={TOKEN}", method="DELETE")
        urllib.request.urlopen(request).close()
    with urllib.request.urlopen(f"{url}/api/kernels?token={TOKEN}") as answer:
        kernels = json.load(answer)
    for kernel in kernels:
        request = urllib.request.Request(f"{url}/api/kernels/{kernel['id']}?token={TOKEN}", method="DELETE")
        urllib.request.urlopen(request).close()


@contextmanager
def formgrader_server(course: Path):
    """``jupyter server`` (formgrader is one of its extensions) in the course root ``course``, as a TA
    starts it; yields its URL, and stops it afterwards."""
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTEST_CURRENT_TEST",)}
    env.update(JUPYTER_RUNTIME_DIR=str(course.parent / "rt"), PYTHONPATH=str(REPO))
    log = open(course.parent / "jupyter-server.log", "w")
    server = subprocess.Popen([sys.executable, "-m", "jupyter", "server", "--no-browser", "--allow-root",
                               "--ip=127.0.0.1", f"--port={port}", f"--IdentityProvider.token={TOKEN}",
                               "--ServerApp.open_browser=False"], cwd=course, env=env, stdout=log,
                              stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                urllib.request.urlopen(f"{url}/api/status?token={TOKEN}", timeout=5).close()
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("jupyter server did not start: "
                                       + (course.parent / "jupyter-server.log").read_text()[-3000:]) from None
                time.sleep(0.5)
        yield url
    finally:
        server.terminate()
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()


# --- driving JupyterLab -----------------------------------------------------------------------------

def _panel(page):
    """The notebook on show (JupyterLab keeps other documents' panels hidden in the DOM)."""
    return page.locator(".jp-NotebookPanel >> visible=true").first


def _open(page, url: str, path: str) -> None:
    # ?reset: a fresh workspace, so that only this notebook is open (and gets a kernel).
    page.goto(f"{url}/lab/tree/{path}?reset&token={TOKEN}")
    _panel(page).locator(".jp-Cell").first.wait_for(timeout=90_000)
    _panel(page).locator(".jp-Notebook-ExecutionIndicator[data-status='idle']").wait_for(timeout=90_000)


def _menu(page, menu: str, item: str) -> None:
    page.click(f".lm-MenuBar-itemLabel:text-is('{menu}')")
    page.click(f".lm-Menu-itemLabel:text-is('{item}')")


def _wait_until_done(page, timeout: float) -> float:
    """Seconds until the run has started (the first code cell has an execution count: on a cold start
    the kernel may still be idle, with nothing queued yet, well after Run All was clicked), no cell is
    queued or running, and the kernel is idle."""
    start = time.monotonic()
    time.sleep(1.0)
    while time.monotonic() - start < timeout:
        prompts = _panel(page).locator(".jp-CodeCell .jp-InputPrompt").all_inner_texts()
        idle = _panel(page).locator(".jp-Notebook-ExecutionIndicator[data-status='idle']").count() > 0
        started = bool(prompts) and any(ch.isdigit() for ch in prompts[0])
        if started and idle and not any("*" in p for p in prompts):
            return time.monotonic() - start
        time.sleep(0.5)
    shot = SHOTS / "FAILED_run_all.png"                       # what the page showed, for the report
    page.screenshot(path=str(shot), full_page=True)
    raise AssertionError(f"the notebook was still running after {timeout:.0f} s (prompts {prompts[:5]}, "
                         f"kernel idle: {idle}; screenshot {shot})")


def _started(page) -> bool:
    """Some code cell is queued, running or done (its prompt shows * or a number)."""
    prompts = _panel(page).locator(".jp-CodeCell .jp-InputPrompt").all_inner_texts()
    return any("*" in p or any(ch.isdigit() for ch in p) for p in prompts)


def _answer_dialog(page) -> None:
    """A JupyterLab dialog in front of the notebook (seen only under make test's load, where it swallowed
    Run All): a kernel choice is accepted with its default; any other dialog fails the test, quoted."""
    dialog = page.locator(".jp-Dialog")
    if not dialog.count() or not dialog.first.is_visible():
        return
    text = " ".join(dialog.first.inner_text().split())
    page.screenshot(path=str(SHOTS / "dialog.png"))
    with open(SHOTS / "dialogs.txt", "a") as log:
        log.write(text + "\n")
    assert re.search(r"kernel", text, re.I) and not re.search(r"error|fail|not found|dead", text, re.I), \
        f"JupyterLab shows a dialog in front of the notebook: {text!r} (screenshot {SHOTS / 'dialog.png'})"
    # A click that lands while the dialog is still being filled (its kernel list arrives after it
    # shows) does nothing, as it would for a person, who then clicks again: click until it is gone.
    deadline = time.monotonic() + 60
    while dialog.count() and dialog.first.is_visible():
        assert time.monotonic() < deadline, f"the dialog {text!r} stayed after clicking its accept button for 60 s"
        accept = dialog.first.locator(".jp-Dialog-button.jp-mod-accept").first
        if accept.is_visible() and accept.is_enabled():
            accept.click()
        try:
            dialog.first.wait_for(state="detached", timeout=5_000)
        except Exception:  # noqa: BLE001 (playwright's TimeoutError: still there, look again)
            continue


def _run_all(page) -> float:
    # Now and then (seen under make test's two workers, never alone) a Run All issued right after the
    # notebook opened is lost: no cell is ever queued and the kernel stays idle. Then it is issued again.
    for _ in range(3):
        _answer_dialog(page)
        _panel(page).locator(".jp-Cell").first.click()  # the active document is the one Run All runs
        _menu(page, "Run", "Run All Cells")
        deadline = time.monotonic() + 60
        while not _started(page) and time.monotonic() < deadline:
            time.sleep(0.5)
        if _started(page):
            break
    return _wait_until_done(page, RUN_TIMEOUT)


def _save_and_read(page, path: Path) -> nbformat.NotebookNode:
    """Save the notebook in JupyterLab and read the file back once the server has finished writing it
    (its modification time changes when the write begins: a read then can see a half-written file)."""
    before = path.stat().st_mtime_ns
    _menu(page, "File", "Save Notebook")
    deadline = time.monotonic() + 30
    while path.stat().st_mtime_ns == before and time.monotonic() < deadline:
        time.sleep(0.2)
    while True:
        try:
            return nbformat.read(path, as_version=4)
        except (ValueError, nbformat.reader.NotJSONError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def _errors(nb) -> list[str]:
    return [f"cell {i}: {o.get('ename')}: {o.get('evalue')}" for i, cell in enumerate(nb.cells)
            if cell.cell_type == "code" for o in cell.outputs if o.get("output_type") == "error"]


def _cell_with(page, text: str):
    """The code cell whose source contains ``text``."""
    return _panel(page).locator(".jp-CodeCell").filter(has=page.locator(".cm-content", has_text=text)).first


def _shoot(locator, name: str) -> Path:
    locator.scroll_into_view_if_needed()
    path = SHOTS / f"{name}.png"
    locator.screenshot(path=str(path))
    return path


def _picture_loaded(explorer) -> bool:
    images = explorer.locator("img")
    return images.count() > 0 and all(images.nth(i).evaluate("img => img.complete && img.naturalWidth > 0")
                                      for i in range(images.count()))


def _timings(update: dict) -> None:
    """Keep the seconds of each Run All in build/ui/timings.json (the closing note quotes them)."""
    path = SHOTS / "timings.json"
    data = json.loads(path.read_text()) if path.exists() else {}
    data.update(update)
    path.write_text(json.dumps(data, indent=1, sort_keys=True))


# --- the tests ----------------------------------------------------------------------------------------

def test_lab_opens_the_readme_first_without_the_news_popup(page, lab):
    url, _ = lab
    page.goto(f"{url}/?token={TOKEN}")  # the course's default URL: README.md, rendered
    page.wait_for_selector(".jp-RenderedMarkdown h1:has-text('EECS 545 HW4')", timeout=90_000)
    time.sleep(3)  # the news question, when enabled, pops up within a second or two of start-up
    toasts = page.locator(".Toastify__toast").all_inner_texts()  # JupyterLab's notifications
    assert not [t for t in toasts if "news" in t.lower()], f"the news pop-up covers the first view: {toasts}"
    page.screenshot(path=str(SHOTS / "00_readme_first.png"))


@pytest.mark.parametrize("stem", list(EXPLORERS))
def test_notebook_runs_in_jupyterlab_and_its_explorers_render(page, browser, lab, stem):
    url, root = lab
    name = NOTEBOOKS[stem].name
    _open(page, url, name)
    seconds = _run_all(page)
    _timings({stem: round(seconds, 1)})
    errors = _errors(_save_and_read(page, root / name))
    assert not errors, f"{name}: error outputs in JupyterLab:\n" + "\n".join(errors)
    for css, shot in EXPLORERS[stem].items():
        explorer = _wait_for_explorer(page, root / name, css)
        assert _picture_loaded(explorer), f"{name}: the {css} explorer's picture did not load"
        assert "NotImplementedError" not in explorer.inner_text(), f"{name}: the reference solution is a stub?"
        _shoot(explorer, shot)
    if stem == "01_layers":
        _conv_slider_moves_the_window(page)
        _pool_slider_moves(page)
    if stem == "03_cnn_mnist":
        training = _cell_with(page, "train_live(solver")
        outputs = training.locator(".jp-OutputArea")
        assert outputs.locator("img").count() == 1, "the live curves were not drawn"
        assert "appear after the first epoch" not in outputs.inner_text(), "the live curves stayed a placeholder"
        _shoot(outputs, "03_live_training_curves")
    grids = {css: _grid_font_px(_panel(page).locator(f".hwlib-{css}-explorer").first) for css in EXPLORERS[stem]
             if css in GRIDS}
    assert all(px >= 11 for px in grids.values()), f"{name}: grid numbers on screen (px): {grids}"
    _save_and_read(page, root / name)  # the explorers' last views (the sliders moved) go into the file
    page.close()
    _shut_down_kernels(url)
    _saved_explorers_show_pictures(browser, url, root, name, stem)


# --- a saved notebook, opened again -------------------------------------------------------------------

GRIDS = ("conv", "pool")  # the explorers that write numbers into grid cells


def _grid_font_px(explorer) -> float:
    """The on-screen size (CSS px) of the numbers in an explorer's grid cells: drawn at GRID_FONT_PT in a
    picture of DPI pixels per inch, shown at the width Chromium gives the picture."""
    from hwlib.explore._common import DPI, GRID_FONT_PT

    picture = explorer.locator("img.hwlib-figure").first
    picture.wait_for(timeout=60_000)
    scale = picture.evaluate("img => img.getBoundingClientRect().width / img.naturalWidth")
    return GRID_FONT_PT * DPI / 72 * scale


def _open_without_kernel(page, url: str, saved: Path) -> None:
    """``saved`` as someone opens it who has no such kernel (a TA's machine): a copy naming a kernel
    that is not installed, opened with JupyterLab's "No Kernel" choice."""
    nb = nbformat.read(saved, as_version=4)
    nb.metadata["kernelspec"] = {"name": "hw4-no-such-kernel", "display_name": "not installed"}
    nb.metadata.pop("language_info", None)
    copy = saved.with_name(f"{saved.stem}-no-kernel.ipynb")
    nbformat.write(nb, copy)
    page.goto(f"{url}/lab/tree/{copy.relative_to(saved.parent)}?reset&token={TOKEN}")
    dialog = page.locator(".jp-Dialog")
    dialog.wait_for(timeout=90_000)
    dialog.locator(".jp-Dialog-button:has-text('No Kernel')").click()
    dialog.wait_for(state="detached", timeout=30_000)
    _panel(page).locator(".jp-Cell").first.wait_for(timeout=90_000)


def _saved_explorers_show_pictures(browser, url: str, root: Path, name: str, stem: str) -> None:
    """Closed after Run All and a save, the notebook is opened again with a fresh kernel (the student
    coming back) and with no kernel (a TA's copy): each explorer shows a picture of its last view, no
    "Error displaying widget" anywhere, grid numbers still at least 11 px."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    for how in ("kernel", "no kernel"):
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        try:
            if how == "kernel":
                _open(page, url, name)
            else:
                _open_without_kernel(page, url, root / name)
            for css in EXPLORERS[stem]:
                explorer = _panel(page).locator(f".hwlib-{css}-explorer").first
                try:
                    explorer.wait_for(timeout=60_000)
                    page.wait_for_function("el => [...el.querySelectorAll('img')].some(i => i.complete && "
                                           "i.naturalWidth > 0)", arg=explorer.element_handle(), timeout=60_000)
                except PlaywrightTimeout:
                    shot = SHOTS / f"FAILED_{stem}_reopened_{how.replace(' ', '_')}.png"
                    page.screenshot(path=str(shot), full_page=True)
                    errors = _panel(page).inner_text().count("Error displaying widget")
                    raise AssertionError(
                        f"{name} opened again ({how}): no picture of the {css} explorer; {errors} x 'Error displaying "
                        "widget' on the page (the widget state is saved with the notebook only when the course's "
                        "JupyterLab settings say so: saveState of @jupyter-widgets/jupyterlab-manager:plugin in "
                        f"jupyter/settings/overrides.json) (screenshot {shot})") from None
                if css in GRIDS:
                    px = _grid_font_px(explorer)
                    assert px >= 11, f"{name} opened again ({how}): the {css} explorer's numbers are {px:.1f} px"
            text = _panel(page).inner_text()
            shot = _shoot(_panel(page).locator(f".hwlib-{next(iter(EXPLORERS[stem]))}-explorer").first,
                          f"{stem}_reopened_{how.replace(' ', '_')}")
            for problem in ("Error displaying widget", "Loading widget"):
                assert text.count(problem) == 0, \
                    f"{name} opened again ({how}): {text.count(problem)} x {problem!r} on the page (screenshot {shot})"
        finally:
            page.close()
            _shut_down_kernels(url)


def _wait_for_explorer(page, saved: Path, css: str):
    """The notebook's first ``css`` explorer once visible; if it never shows, fail saying what the
    page and the saved notebook hold (a widget view in the file but not on the page is a front-end
    problem; none in the file, the kernel's), with a screenshot."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    explorer = _panel(page).locator(f".hwlib-{css}-explorer").first
    try:
        explorer.wait_for(state="attached", timeout=120_000)  # under make test's load a widget can take a while
        explorer.scroll_into_view_if_needed(timeout=30_000)
        explorer.wait_for(timeout=30_000)
        return explorer
    except PlaywrightTimeout:
        shot = SHOTS / f"missing_{css}_explorer.png"
        page.screenshot(path=str(shot), full_page=True)
        views = [i for i, cell in enumerate(nbformat.read(saved, as_version=4).cells) if cell.cell_type == "code"
                 for o in cell.get("outputs", []) if "application/vnd.jupyter.widget-view+json" in o.get("data", {})]
        raise AssertionError(
            f"{saved.name}: the {css} explorer did not show: {explorer.count()} in the page's DOM; widget views in "
            f"the saved notebook's cells {views}; widget errors on the page: "
            f"{_panel(page).locator('.jupyter-widgets-error-widget, .jp-RenderedText[data-mime-type*=stderr]').all_inner_texts()[:3]}"
            f" (screenshot {shot})") from None


def _conv_slider_moves_the_window(page):
    explorer = _panel(page).locator(".hwlib-conv-explorer").first
    formula, where = explorer.locator(".hwlib-formula"), explorer.locator(".hwlib-where")
    picture = explorer.locator("img.hwlib-figure")
    handle = explorer.locator(".hwlib-position .noUi-handle")
    before = {"formula": formula.inner_text(), "where": where.inner_text(), "src": picture.get_attribute("src")}
    assert before["formula"].startswith("Y["), before
    values = [before["formula"].rsplit("=", 1)[1].split()[0]]
    for _ in range(6):   # step right until the output value shown changes too (a blank region reads 0)
        old = formula.inner_text()  # read before the key press: the redraw may come back at once
        handle.focus()
        page.keyboard.press("ArrowRight")
        page.wait_for_function("([el, old]) => el.innerText !== old", arg=[formula.element_handle(), old],
                               timeout=30_000)
        values.append(formula.inner_text().rsplit("=", 1)[1].split()[0])
        if values[-1] != values[0]:
            break
    after = {"formula": formula.inner_text(), "where": where.inner_text(), "src": picture.get_attribute("src")}
    assert after["where"] != before["where"], "the highlighted window did not move"
    assert after["src"] != before["src"], "the picture was not redrawn"
    assert len(set(values)) > 1, f"the output value shown never changed: {values}"
    _shoot(explorer, "01_conv_explorer_digit_moved")
    explorer.locator("button:has-text('backward: dX')").click()
    page.wait_for_function("el => el.innerText.startsWith('dX[')", arg=formula.element_handle(), timeout=30_000)
    _shoot(explorer, "01_conv_explorer_backward_dx")


def _pool_slider_moves(page):
    explorer = _panel(page).locator(".hwlib-pool-explorer").first
    text = explorer.locator(".hwlib-formula")
    old = text.inner_text()
    explorer.locator(".hwlib-position .noUi-handle").focus()
    page.keyboard.press("ArrowRight")
    page.wait_for_function("([el, old]) => el.innerText !== old", arg=[text.element_handle(), old], timeout=30_000)
    assert text.inner_text().startswith("window 7"), text.inner_text()
    _shoot(explorer, "01_pool_explorer_next_window")


def test_release_q1_shows_the_stub_messages(page, lab):
    """The student release (stubs in place): the first check cell shows the stub's message, naming
    fc_forward; the convolution explorer shows conv_forward's message, not a traceback."""
    url, root = lab
    path = root / "release" / "01_layers.ipynb"
    _open(page, url, "release/01_layers.ipynb")
    _run_all(page)  # stops at the first error: the first check cell
    nb = _save_and_read(page, path)
    failing = [(i, o) for i, c in enumerate(nb.cells) if c.cell_type == "code"
               for o in c.outputs if o.get("output_type") == "error"]
    assert failing, "the release's Q1 ran without an error: are the stubs in place?"
    index, error = failing[0]
    first_check = next(i for i, c in enumerate(nb.cells) if c.cell_type == "code" and "fc_forward(" in c.source)
    assert index == first_check, f"the first error is in cell {index}, not in the first check cell {first_check}"
    assert error["ename"] == "NotImplementedError" and "fc_forward" in error["evalue"], error
    cell = _cell_with(page, "out, cache = fc_forward(x, w, b)")
    assert "fc_forward" in cell.locator(".jp-OutputArea").inner_text()
    _shoot(cell, "07_release_q1_first_check_stub")
    explorer_cell = _cell_with(page, "conv_explorer(images=")
    explorer_cell.locator(".cm-content").click()
    page.keyboard.press("Shift+Enter")
    verdict = explorer_cell.locator(".hwlib-conv-explorer .hwlib-verdict")
    verdict.wait_for(timeout=60_000)
    page.wait_for_function("el => el.innerText.includes('NotImplementedError')", arg=verdict.element_handle(),
                           timeout=60_000)
    assert "conv_forward" in verdict.inner_text(), verdict.inner_text()
    assert explorer_cell.locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']").count() == 0
    _shoot(explorer_cell.locator(".hwlib-conv-explorer"), "07_release_conv_explorer_stub")


def test_release_carries_the_course_settings(lab):
    """Students get the same JupyterLab settings: ``python -m hwlib.lab`` in the release folder uses them."""
    _, root = lab
    release = root / "release"
    assert (release / "jupyter" / "settings" / "overrides.json").read_text() == \
        (REPO / "jupyter" / "settings" / "overrides.json").read_text()
    code = "from hwlib.lab import lab_command; print(lab_command()[4])"
    printed = subprocess.run([sys.executable, "-c", code], cwd=release, capture_output=True, text=True, check=True)
    assert printed.stdout.strip() == f"--LabApp.app_settings_dir={release / 'jupyter' / 'settings'}"
