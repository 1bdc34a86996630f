"""The report build: one HTML with offline math always (rendered in Chromium: tests/test_ui_math.py), a PDF
when LaTeX is installed."""

from __future__ import annotations

import shutil
import subprocess

import nbformat
import pytest

from course import report


def _executed_notebook(path, title, with_plot=False):
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    cells = [nbformat.v4.new_markdown_cell(f"# {title}\n\n### BEGIN SOLUTION\nThe gradient $\\frac{{\\partial L}}{{\\partial W}} = X^T dY$.\n\n## Part one"),
             nbformat.v4.new_code_cell("profile = 'full'", metadata={"tags": ["parameters"]}),
             nbformat.v4.new_code_cell("print('SECRET_INPUT_MARKER')")]
    cells[2].outputs = [nbformat.v4.new_output("stream", name="stdout", text="RESULT accuracy=0.99\n")]
    if with_plot:
        png = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
        cells[2].outputs.append(nbformat.v4.new_output("display_data", data={"image/png": png, "text/plain": "<Figure>"}))
    nb.cells = cells
    nbformat.write(nb, path)


@pytest.fixture
def executed(tmp_path):
    folder = tmp_path / "notebooks"
    folder.mkdir()
    _executed_notebook(folder / "01_layers.ipynb", "Q1: layers", with_plot=True)
    _executed_notebook(folder / "02_softmax.ipynb", "Q2: softmax net")
    return folder


def test_html_report_has_title_toc_offline_math_and_hides_code_in_report_flavour(executed, tmp_path):
    out = tmp_path / "report"
    assert report.main(["--notebooks", str(executed), "--out", str(out), "--no-pdf"]) == 0
    html = (out / "hw4.html").read_text()
    assert report.TITLE in html and "Contents" in html
    assert 'href="#Q1:-layers"' in html and 'id="Q1:-layers"' in html  # the TOC links resolve
    # Whether the math renders is what Chromium shows, counted with the network closed:
    # tests/test_ui_math.py (files being there said nothing: 137 of 758 formulas failed with them all there).
    assert "cdn.jsdelivr" not in html and "cdnjs" not in html  # nothing loads from the network
    assert "BEGIN SOLUTION" not in html  # nbgrader delimiters are not headings in the report
    assert "SECRET_INPUT_MARKER" in html and "RESULT accuracy=0.99" in html and "data:image/png;base64" in html
    assert "profile = &#39;full&#39;" not in html and "profile = 'full'" not in html  # parameter cells dropped
    assert report.main(["--notebooks", str(executed), "--out", str(out), "--flavour", "report", "--no-pdf"]) == 0
    hidden = (out / "hw4_report.html").read_text()
    assert "SECRET_INPUT_MARKER" not in hidden and "RESULT accuracy=0.99" in hidden


def test_report_without_executed_notebooks_says_what_to_do(tmp_path, capsys):
    assert report.main(["--notebooks", str(tmp_path), "--out", str(tmp_path / "r"), "--no-pdf"]) == 1
    assert "run `make run` first" in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.skipif(not report.latex_available(), reason="xelatex/pandoc not installed")
def test_pdf_report_renders_math_and_contents(executed, tmp_path):
    out = tmp_path / "report"
    assert report.main(["--notebooks", str(executed), "--out", str(out)]) == 0
    pdf = out / "hw4.pdf"
    assert pdf.read_bytes()[:5] == b"%PDF-"
    if shutil.which("pdftotext"):
        text = subprocess.run(["pdftotext", str(pdf), "-"], capture_output=True, text=True).stdout
        assert "Contents" in text and "Q2: softmax net" in text and "RESULT accuracy=0.99" in text
        assert "\\frac" not in text  # the math was typeset, not printed raw


@pytest.mark.slow
@pytest.mark.skipif(not report.latex_available(), reason="xelatex/pandoc not installed")
def test_pdf_report_of_the_course_notebooks_compiles(tmp_path):
    """Every derivation of the real notebooks goes through LaTeX (the outputs are checked by `make run`)."""
    from course.execute import source_notebooks

    folder = tmp_path / "notebooks"
    folder.mkdir()
    for path in source_notebooks():
        shutil.copy(path, folder / path.name)
    out = tmp_path / "report"
    assert report.main(["--notebooks", str(folder), "--out", str(out), "--flavour", "report"]) == 0
    assert (out / "hw4_report.pdf").read_bytes()[:5] == b"%PDF-"


@pytest.mark.slow
@pytest.mark.skipif(not report.latex_available(), reason="xelatex/pandoc not installed")
def test_a_latex_error_is_reported_with_its_line(tmp_path, capsys):
    folder = tmp_path / "notebooks"
    folder.mkdir()
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("# Q1\n\nBroken: $\\log 2 \x07pprox 0.69$")]
    nbformat.write(nb, folder / "01_broken.ipynb")
    assert report.main(["--notebooks", str(folder), "--out", str(tmp_path / "r")]) == 1
    err = capsys.readouterr().err
    assert "LaTeX failed" in err and "invalid character" in err and "pprox" in err
