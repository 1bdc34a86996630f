"""``make report``: the executed notebooks rendered as one report, HTML always, PDF with LaTeX.

Usage: ``python -m course.report [--flavour solution|report] [--notebooks DIR] [--out DIR]``.

* Reads the executed notebooks (``build/notebooks/NN_*.ipynb``, made by ``make run``) and merges
  them into one notebook: a title page, a table of contents, then every question in order.
* HTML (``build/report/hw4_report.html``) renders its math offline: MathJax is copied next to it
  from the ``jupyter-server-mathjax`` package (no CDN, no network).
* PDF (``build/report/hw4_report.pdf``) goes through nbconvert's LaTeX exporter when ``xelatex``
  is installed (Debian: ``texlive-xetex texlive-fonts-recommended texlive-plain-generic pandoc``).
* The ``report`` flavour hides code cells (inputs); ``solution`` (default) keeps them.
"""

from __future__ import annotations

import argparse
import copy
import datetime as _dt
import re
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat

from .paths import EXECUTED as NOTEBOOK_DIR, REPORT as REPORT_DIR, REPO
TITLE = "EECS 545 HW4: neural networks, CNNs, RNN captioning and transfer learning"
TEMPLATES = Path(__file__).resolve().parent / "templates"


def _anchor(text: str) -> str:
    """The id nbconvert gives a Markdown heading (spaces become dashes)."""
    return re.sub(r"\s+", "-", text.strip())


def headings(nb) -> list[tuple[int, str]]:
    """(level, text) of the level-1 and level-2 Markdown headings of a notebook."""
    found = []
    for cell in nb.cells:
        if cell.cell_type != "markdown":
            continue
        in_code = False
        for line in cell.source.splitlines():
            if line.startswith("```"):
                in_code = not in_code
            m = None if in_code else re.match(r"^(#{1,2})\s+(.*?)\s*#*$", line)
            if m:
                found.append((len(m.group(1)), m.group(2)))
    return found


_DELIMITER = re.compile(r"^[ \t]*###[ \t]*(BEGIN|END)[ \t]+(SOLUTION|HIDDEN TESTS)[ \t]*\n?", re.M)


def merge(notebooks: list[Path], flavour: str = "solution") -> nbformat.NotebookNode:
    """One notebook: title page, table of contents, then every notebook's cells in order."""
    if not notebooks:
        raise FileNotFoundError(f"no executed notebooks in {NOTEBOOK_DIR}: run `make run` first")
    parts = [nbformat.read(path, as_version=4) for path in notebooks]
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True).stdout.strip()
    toc = ["## Contents", ""]
    for nb in parts:
        for level, text in headings(nb):
            plain = re.sub(r"[`*$\\]", "", text)
            toc.append(f"{'    ' * (level - 1)}- [{plain}](#{_anchor(text)})")
    title = nbformat.v4.new_markdown_cell(
        f"# {TITLE}\n\nWorked solutions, executed on {_dt.date.today().isoformat()}"
        + (f" (kit commit `{commit}`)" if commit else "") + ".\n\n"
        + "Derivations, gradient checks, training curves, caption samples and transfer-learning results. "
        + ("Code cells are hidden in this flavour." if flavour == "report" else "")
    )
    merged = nbformat.v4.new_notebook()
    merged.metadata = copy.deepcopy(parts[0].metadata)
    merged.metadata["title"] = TITLE
    merged.metadata["authors"] = [{"name": "EECS 545 course staff"}]
    merged.cells = [title, nbformat.v4.new_markdown_cell("\n".join(toc))]
    for nb in parts:
        for cell in nb.cells:
            cell = copy.deepcopy(cell)
            if "parameters" in cell.metadata.get("tags", []) or "injected-parameters" in cell.metadata.get("tags", []):
                continue  # papermill's parameter cells are plumbing, not content
            if cell.cell_type == "markdown":  # nbgrader's delimiters are for the release, not for readers
                cell.source = _DELIMITER.sub("", cell.source)
            merged.cells.append(cell)
    return merged


# The combined configuration that jupyter-server-mathjax's MathJax 2 ships (it has no CommonHTML
# output, so nbconvert's default "TeX-AMS_CHTML-full" would load nothing and leave the TeX raw).
MATHJAX_CONFIG = "TeX-AMS-MML_HTMLorMML-full"


def copy_mathjax(dest: Path) -> str:
    """Copy MathJax 2 next to the report; return the relative URL nbconvert should load."""
    import jupyter_server_mathjax

    src = Path(jupyter_server_mathjax.__file__).resolve().parent / "static"
    target = dest / "mathjax"
    if not (target / "MathJax.js").exists():
        shutil.copytree(src, target, dirs_exist_ok=True)
    if not (target / "config" / f"{MATHJAX_CONFIG}.js").is_file():
        raise FileNotFoundError(f"MathJax in {src} has no config/{MATHJAX_CONFIG}.js: the report's math would not "
                                "render; reinstall jupyter-server-mathjax (pinned in pyproject.toml)")
    return f"mathjax/MathJax.js?config={MATHJAX_CONFIG},Safe"


_REMOTE_SCRIPT = re.compile(r"<script\b(?:(?!</script>).)*?https?://(?:(?!</script>).)*?</script>", re.S)


def write_html(nb, out: Path, flavour: str) -> Path:
    from nbconvert import HTMLExporter

    exporter = HTMLExporter(mathjax_url=copy_mathjax(out.parent), exclude_input=flavour == "report",
                            exclude_input_prompt=True, exclude_output_prompt=True)
    body, _ = exporter.from_notebook_node(nb)
    # The lab template also loads require.js and mermaid from CDNs; the report needs neither, and
    # an offline reader's browser should not stall on them.
    body = _REMOTE_SCRIPT.sub("", body)
    out.write_text(body, encoding="utf-8")
    return out


def latex_available() -> bool:
    return shutil.which("xelatex") is not None and shutil.which("pandoc") is not None


def write_pdf(nb, out: Path, flavour: str) -> Path:
    from nbconvert import PDFExporter

    exporter = PDFExporter(exclude_input=flavour == "report", template_name="report_latex",
                           extra_template_basedirs=[str(TEMPLATES)], verbose=False)
    body, _ = exporter.from_notebook_node(nb, resources={"metadata": {"name": out.stem}})
    out.write_bytes(body)
    return out


def _latex_errors(log: str, limit: int = 5) -> str:
    """The ``!`` error lines of a LaTeX log, each with the source line it stopped at."""
    lines = (log or "").splitlines()
    found = []
    for i, line in enumerate(lines):
        if line.startswith("!") and "Emergency stop" not in line:
            context = next((lines[j] + " " + (lines[j + 1].strip() if j + 1 < len(lines) else "")
                            for j in range(i + 1, min(i + 8, len(lines))) if lines[j].startswith("l.")), "")
            found.append(f"  {line}\n    at {context}" if context else f"  {line}")
    return "\n".join(found[:limit]) or "\n".join("  " + line for line in lines[-15:])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m course.report", description=__doc__.splitlines()[0])
    parser.add_argument("--flavour", choices=["solution", "report"], default="solution",
                        help="'report' hides code cells")
    parser.add_argument("--notebooks", type=Path, default=NOTEBOOK_DIR)
    parser.add_argument("--out", type=Path, default=REPORT_DIR)
    parser.add_argument("--no-pdf", action="store_true")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    try:
        nb = merge(sorted(args.notebooks.glob("[0-9][0-9]_*.ipynb")), args.flavour)
    except FileNotFoundError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    suffix = "" if args.flavour == "solution" else "_report"
    html = write_html(nb, args.out / f"hw4{suffix}.html", args.flavour)
    print(f"HTML: {html}")
    if args.no_pdf:
        return 0
    if not latex_available():
        print("PDF: skipped (xelatex/pandoc not installed; on Debian: "
              "apt-get install texlive-xetex texlive-fonts-recommended texlive-plain-generic pandoc)")
        return 0
    from nbconvert.exporters.pdf import LatexFailed

    try:
        pdf = write_pdf(nb, args.out / f"hw4{suffix}.pdf", args.flavour)
    except LatexFailed as exc:
        print(f"error: LaTeX failed on the merged notebooks (the HTML report is fine):\n{_latex_errors(exc.output)}\n"
              "Fix the Markdown or output named above (a LaTeX command in a non-raw Python string loses its "
              "backslash), or run with --no-pdf.", file=sys.stderr)
        return 1
    print(f"PDF: {pdf}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
