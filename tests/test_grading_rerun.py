"""The autograded notebooks keep the student's saved outputs (as data), and the sandbox re-run is set
beside them with a verdict per headline result (grading/autograde/notebooks.py, rerun.py)."""

from __future__ import annotations

import base64
import json
import os
import random
from dataclasses import asdict

import nbformat
import pytest

from grading.autograde import rerun
from grading.autograde.compose import tools_dir
from grading.autograde.notebooks import keep_saved_outputs, parameterize, rerun_dir, run_notebook
from grading.autograde.sandbox import Limits, Sandbox
from grading.nbgrader.course_root import ASSIGNMENT

PNG = base64.b64encode(b"\x89PNG\r\n\x1a\n" + bytes(range(40))).decode()


def code(cell_id, source, *outputs, tags=(), count=1):
    cell = nbformat.v4.new_code_cell(source, id=cell_id, metadata={"tags": list(tags)} if tags else {})
    cell.outputs = [nbformat.from_dict(o) for o in outputs]
    cell.execution_count = count
    return cell


def stream(text):
    return nbformat.v4.new_output("stream", name="stdout", text=text)


def failed(ename, evalue):
    return nbformat.v4.new_output("error", ename=ename, evalue=evalue, traceback=[f"{ename}: {evalue}"])


def notebook(*cells, profile="full"):
    nb = nbformat.v4.new_notebook()
    nb.cells = [code("params", f'profile = "{profile}"\nseed = 0', tags=["parameters"]), *cells]
    return nb


def result_line(test_acc, extra=""):
    return f"epoch 10 done (95.3 s){extra}\nRESULT Q3 ConvNet: test accuracy {test_acc:.4f} (full MNIST)\n"


def verdict(saved_nb, rerun_nb, ids=("head",)):
    [headline] = rerun.compare(saved_nb, rerun_nb, list(ids))
    return headline


# --- verdicts ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("saved, again, expected", [
    (0.9812, 0.9812, "reproduced"),
    (0.9812, 0.9830, "reproduced"),   # 0.0018 apart: within 0.002
    (0.9812, 0.9835, "differs"),      # 0.0023 apart
    (0.9812, 0.9689, "differs"),
])
def test_numbers_within_the_tolerance_are_reproduced(saved, again, expected):
    saved_nb = notebook(code("head", "...", stream(result_line(saved))))
    rerun_nb = notebook(code("head", "...", stream(result_line(again, extra=" and more progress"))))
    headline = verdict(saved_nb, rerun_nb)
    assert headline.verdict == expected, headline.message
    assert headline.cell == 2 and headline.saved == f"RESULT Q3 ConvNet: test accuracy {saved:.4f} (full MNIST)"
    if expected == "differs":
        assert f"differs by {abs(saved - again):.4g} ({saved:.4f} saved, {again:.4f} re-run)" in headline.message


def test_durations_are_not_compared_and_words_are():
    saved_nb = notebook(code("head", "...", stream("loss 0.5000 after 12 epochs (12.0 s)\n")))
    rerun_nb = notebook(code("head", "...", stream("loss 0.5000 after 12 epochs (31.5 s)\n")))
    assert verdict(saved_nb, rerun_nb).verdict == "reproduced"
    rerun_nb = notebook(code("head", "...", stream("loss 0.5000 after 12 epochs on the embedded digits\n")))
    headline = verdict(saved_nb, rerun_nb)
    assert headline.verdict == "differs" and "differs in its text" in headline.message
    assert "embedded digits" in headline.message


def test_other_profiles_are_not_comparable():
    saved_nb = notebook(code("head", "...", stream(result_line(0.99))), profile="full")
    rerun_nb = parameterize(notebook(code("head", "...", stream(result_line(0.93)))), {"profile": "quick"})
    headline = verdict(saved_nb, rerun_nb)
    assert headline.verdict == "not comparable"
    assert headline.message == "not comparable (saved under profile full, re-run under quick)"
    # A printed "Profile:" line says what really ran, whatever the parameters cell says now.
    saved_nb.cells.insert(1, code("show", "print(profile)", stream("Profile: quick\n")))
    assert verdict(saved_nb, rerun_nb).verdict == "differs"


def test_figures_only_are_left_to_the_eye():
    figure = nbformat.v4.new_output("display_data", data={"image/png": PNG})
    headline = verdict(notebook(code("head", "plot()", figure)), notebook(code("head", "plot()", figure)))
    assert headline.verdict == "not comparable" and "figures only" in headline.message


def test_missing_in_the_saved_notebook():
    rerun_nb = notebook(code("head", "...", stream(result_line(0.99))))
    assert verdict(notebook(), rerun_nb).message == "missing in the saved notebook (the cell was deleted)"
    never_run = notebook(code("head", "...", count=None))
    assert verdict(never_run, rerun_nb).message == "missing in the saved notebook (the cell was not run before saving)"
    broken = notebook(code("head", "...", failed("NameError", "name 'solver' is not defined")))
    headline = verdict(broken, rerun_nb)
    assert headline.verdict == "missing" and "NameError: name 'solver' is not defined" in headline.message


def test_a_stopped_rerun_names_the_first_failing_cell():
    saved_nb = notebook(code("train", "train()", stream("trained\n")), code("head", "...", stream(result_line(0.99))))
    rerun_nb = parameterize(notebook(code("train", "train()", failed("ValueError", "boom")),
                                     code("head", "...", failed("NameError", "name 'model' is not defined"))),
                            {"profile": "full"})
    headline = verdict(saved_nb, rerun_nb)
    # cell 2 as the TA counts them: the grader's injected parameters cell is not one of the student's
    assert headline.verdict == "stopped" and headline.message == "the re-run stopped at cell 2: ValueError: boom"
    not_reached = parameterize(notebook(code("train", "train()", failed("KeyboardInterrupt", "")),
                                        code("head", "...", count=None)), {})
    not_reached.cells[-1].execution_count = None
    assert verdict(saved_nb, not_reached).message.startswith("the re-run stopped at cell 2: KeyboardInterrupt")
    headline = rerun.compare(saved_nb, None, ["head"], not_run="the notebook ran past its budget of 900 s")[0]
    assert headline.verdict == "stopped" and headline.message.endswith("the notebook ran past its budget of 900 s")


def test_headlines_come_from_the_tags_of_the_source_notebook():
    source = notebook(code("a", "x"), code("b", "y", tags=["headline"]), code("c", "z", tags=["headline", "other"]))
    assert rerun.headline_ids(source) == ["b", "c"]


def test_the_report_section_escapes_what_the_notebooks_printed():
    saved_nb = notebook(code("head", "...", stream("RESULT <script>alert(1)</script> 0.5\n")))
    rows = [asdict(h) for h in rerun.compare(saved_nb, saved_nb, ["head"])]
    section = rerun.report_section([{"name": "03_cnn_mnist", "headlines": rows}])
    assert "<script>" not in section and "&lt;script&gt;alert(1)&lt;/script&gt; 0.5" in section
    assert "reproduced" in section and rerun.report_section([{"name": "x", "headlines": []}]) == ""


# --- the autograded notebook keeps the saved outputs, as data ------------------------------------------

def _outputs(nb, cell_id):
    return next(c for c in nb.cells if c.get("id") == cell_id).outputs


@pytest.fixture
def saved_and_autograded(tmp_path):
    course, student = tmp_path / "course", "ada"
    text = "epoch 1: loss 2.3026\nepoch 2: loss 0.4150 \u2713\n" + "x" * 5000 + "\n"
    saved = notebook(
        code("log", "train()", stream(text), count=7),
        code("html", "table", nbformat.v4.new_output(
            "execute_result", execution_count=8, data={"text/html": "<b onclick=steal()>x</b>", "text/plain": "x"})),
        code("js", "js()", nbformat.v4.new_output("display_data", data={"application/javascript": "steal()"})),
        code("md", "md()", nbformat.v4.new_output("display_data", data={"text/markdown": "<script>steal()</script>"})),
        code("img", "plot()", nbformat.v4.new_output("display_data", data={"image/png": PNG,
                                                                           "image/svg+xml": "<svg onload='steal()'/>",
                                                                           "text/plain": "<Figure>"})),
        code("bad", "forged()", nbformat.v4.new_output("display_data", data={"image/png": 'AAAA"><script>steal()'})),
        code("locked", "print('edited by the student')", stream("edited output\n")),
    )
    graded = nbformat.from_dict(json.loads(nbformat.writes(saved)))
    for cell in graded.cells:   # what nbgrader's sanitizing leaves: no outputs, edited locked cells restored
        cell.outputs, cell.execution_count = [], None
    graded.cells[-1].source = "print('as released')"
    for folder, nb in (("submitted", saved), ("autograded", graded)):
        path = course / folder / student / ASSIGNMENT / "03_cnn_mnist.ipynb"
        path.parent.mkdir(parents=True)
        nbformat.write(nb, path)
    return course, student, text


def test_the_autograded_notebook_keeps_the_saved_text_and_drops_html_and_scripts(saved_and_autograded):
    course, student, text = saved_and_autograded
    assert keep_saved_outputs(course, student) == 7   # every code cell but the restored one
    path = course / "autograded" / student / ASSIGNMENT / "03_cnn_mnist.ipynb"
    nb = nbformat.read(path, as_version=4)
    assert [o.text for o in _outputs(nb, "log")] == [text]                 # byte for byte
    assert next(c for c in nb.cells if c.id == "log").execution_count == 7
    assert [o.data for o in _outputs(nb, "html")] == [{"text/plain": "x"}]
    assert _outputs(nb, "js") == [] and _outputs(nb, "bad") == []
    assert [o.data for o in _outputs(nb, "md")] == [{"text/plain": "<script>steal()</script>"}]
    assert [o.data for o in _outputs(nb, "img")] == [{"image/png": PNG, "text/plain": "<Figure>"}]
    assert _outputs(nb, "locked") == []   # its output came from code that is no longer there
    mimes = {m for c in nb.cells for o in c.outputs for m in o.get("data", {})}
    assert mimes <= {"text/plain", "image/png"}
    # Rendered as formgrader and the feedback render it, nothing the student printed becomes markup.
    from nbconvert import HTMLExporter
    page, _ = HTMLExporter().from_notebook_node(nb)
    assert "steal()" in page and "<script>steal()" not in page and "onload=" not in page and "onclick=" not in page


# --- end to end: a notebook re-run in the sandbox --------------------------------------------------------

HEADLINE = 'import random\nrandom.seed(seed)\nprint(f"RESULT accuracy {random.random():.4f}")'


def _course_with(tmp_path, saved_accuracy: float, student: str):
    course = tmp_path / "course"
    cells = [code("show", 'print(f"Profile: {profile}")'), code("head", HEADLINE, tags=["headline"]),
             code("page", "from IPython.display import HTML, display\ndisplay(HTML('<script>steal()</script>'))\n"
                          "print('page shown')")]
    source = notebook(*cells, profile="full")
    path = course / "source" / ASSIGNMENT / "x.ipynb"
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(source, path)
    saved = notebook(*cells, profile="quick")
    saved.cells[1].outputs = [stream("Profile: quick\n")]
    saved.cells[2].outputs = [stream(f"RESULT accuracy {saved_accuracy:.4f}\n")]
    path = course / "autograded" / student / ASSIGNMENT / "x.ipynb"
    path.parent.mkdir(parents=True)
    nbformat.write(saved, path)
    return course, path


@pytest.mark.parametrize("offset, expected", [(0.0, "reproduced"), (0.1, "differs")])
def test_a_sandboxed_rerun_leaves_the_saved_notebook_and_compares_its_headline(tmp_path, offset, expected):
    random.seed(0)
    accuracy = random.random()   # what the headline cell prints with seed 0
    course, path = _course_with(tmp_path, accuracy + offset, "ada")
    before = path.read_bytes()
    run = tmp_path / "run"
    (run / "ada" / "submission").mkdir(parents=True)
    for folder in (tmp_path, run):
        os.chmod(folder, 0o711)
    box = Sandbox(run / "ada", slot=950 + os.getpid() % 40, tools=tools_dir(run), limits=Limits(memory_bytes=2 << 30))
    try:
        result = run_notebook(box, path, {"profile": "quick", "seed": 0}, cell_timeout=60, budget=120)
    finally:
        box.close()
    assert result.status == "ok", result.message
    assert path.read_bytes() == before                      # the student's saved outputs stay
    [headline] = result.headlines
    assert headline["verdict"] == expected, headline
    assert headline["saved"] == f"RESULT accuracy {accuracy + offset:.4f}"
    assert headline["rerun"] == f"RESULT accuracy {accuracy:.4f}"
    if expected == "differs":
        assert f"differs by {offset:.4g}" in headline["message"]
    again = nbformat.read(rerun_dir(course) / "ada" / "x.ipynb", as_version=4)
    texts = [o.get("text", "") for c in again.cells if c.cell_type == "code" for o in c.outputs]
    assert "page shown\n" in texts and f"RESULT accuracy {accuracy:.4f}\n" in texts
    assert not any("text/html" in o.get("data", {}) for c in again.cells if c.cell_type == "code" for o in c.outputs)
