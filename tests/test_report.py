"""The report build: one HTML with offline math always, a PDF when LaTeX is installed."""

from __future__ import annotations

import re
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
    # MathJax loads from the copy beside the report, and every configuration the URL names is in that
    # copy (a missing one loads nothing: the TeX stays raw, as with nbconvert's default CHTML config).
    configs = re.search(r'src="mathjax/MathJax\.js\?config=([^"]+)"', html)
    assert configs, "the report does not load the local MathJax copy"
    for name in configs.group(1).split(","):
        assert (out / "mathjax" / "config" / f"{name}.js").is_file(), f"MathJax config {name} is not in the copy"
    assert "cdn.jsdelivr" not in html and "cdnjs" not in html  # nothing loads from the network
    assert (out / "mathjax" / "MathJax.js").is_file()
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
