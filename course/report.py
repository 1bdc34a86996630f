"""``make report``: the executed notebooks rendered as one report, HTML always, PDF with LaTeX.

Usage: ``python -m course.report [--flavour solution|report] [--notebooks DIR] [--out DIR]``.

* Reads the executed notebooks (``build/notebooks/NN_*.ipynb``, made by ``make run``) and merges
  them into one notebook: a title page, a table of contents, then every question in order.
* HTML (``build/report/hw4_report.html``) renders its math offline: MathJax is copied next to it
  from the ``jupyter-server-mathjax`` package (no CDN, no network), configured for the fonts that
  package ships (:data:`MATHJAX_SETTINGS`; nbgrader's feedback and formgrader use the same settings:
  grading/nbgrader/nbgrader_config.py). tests/test_ui_math.py counts what Chromium shows.
* PDF (``build/report/hw4_report.pdf``) goes through nbconvert's LaTeX exporter when ``xelatex``
  is installed (Debian: ``texlive-xetex texlive-fonts-recommended texlive-plain-generic pandoc``).
* The ``report`` flavour hides code cells (inputs); ``solution`` (default) keeps them.
"""

from __future__ import annotations

import argparse
import copy
import datetime as _dt
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import nbformat

from .paths import BUILD, EXECUTED as NOTEBOOK_DIR, REPORT as REPORT_DIR, REPO
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


# MathJax 2 as jupyter-server-mathjax ships it: the combined configuration below (it has no CommonHTML
# output, so nbconvert's default "TeX-AMS_CHTML-full" would load nothing and leave the TeX raw), the
# HTML-CSS and SVG outputs, and the STIX-Web fonts only. That configuration asks HTML-CSS for the TeX
# fonts, whose files are not shipped (jax/output/HTML-CSS/fonts/TeX/fontdata.js, fonts/HTML-CSS/TeX/otf):
# every formula needing a glyph from them, a prime for one, showed "[Math Processing Error]" (137 of the
# 758 formulas of the course's notebooks). MATHJAX_SETTINGS points both outputs at STIX-Web (what Jupyter's
# own pages do with this package) and turns the fast preview off (each formula drawn once, not twice:
# the full report typeset in 26 s instead of 90 s on two busy cores).
MATHJAX_CONFIG = "TeX-AMS-MML_HTMLorMML-full"
MATHJAX_SETTINGS = {
    "HTML-CSS": {"availableFonts": [], "preferredFont": None, "webFont": "STIX-Web", "imageFont": None},
    "SVG": {"font": "STIX-Web"},
    "fast-preview": {"disabled": True},
}
MATHJAX_LOCAL = "local/hw4"   # MATHJAX_SETTINGS as a MathJax configuration file, written into each copy
MATHJAX_QUERY = f"config={MATHJAX_CONFIG},Safe,{MATHJAX_LOCAL}"
MATHJAX_CACHE = BUILD / "mathjax"


def mathjax_source() -> Path:
    import jupyter_server_mathjax

    return Path(jupyter_server_mathjax.__file__).resolve().parent / "static"


def mathjax_settings_js() -> str:
    """``config/local/hw4.js``: :data:`MATHJAX_SETTINGS` as MathJax loads a configuration file (it names the
    package's version: a copy made from another version is made again)."""
    from jupyter_server_mathjax.__version__ import __version__

    return (f"/* Written by course/report.py for MathJax as jupyter-server-mathjax {__version__} ships it "
            "(STIX-Web fonts only). */\n"
            f"MathJax.Hub.Config({json.dumps(MATHJAX_SETTINGS, indent=1)});\n"
            f'MathJax.Ajax.loadComplete("[MathJax]/config/{MATHJAX_LOCAL}.js");\n')


def _check_source(src: Path) -> None:
    if not (src / "config" / f"{MATHJAX_CONFIG}.js").is_file():
        raise FileNotFoundError(f"MathJax in {src} has no config/{MATHJAX_CONFIG}.js: math would not render; "
                                "reinstall jupyter-server-mathjax (pinned in pyproject.toml)")


def copy_mathjax(dest: Path) -> str:
    """Copy MathJax 2 to ``dest/mathjax`` with the kit's configuration file (written last: a copy that
    has it is complete); return the URL, relative to ``dest``, that a page there loads it with."""
    src, target = mathjax_source(), Path(dest) / "mathjax"
    _check_source(src)
    settings = target / "config" / f"{MATHJAX_LOCAL}.js"
    text = mathjax_settings_js()
    if not ((target / "MathJax.js").is_file() and settings.is_file() and settings.read_text() == text):
        shutil.copytree(src, target, dirs_exist_ok=True)
        settings.parent.mkdir(parents=True, exist_ok=True)
        settings.write_text(text)
    return f"mathjax/MathJax.js?{MATHJAX_QUERY}"


def offline_mathjax() -> Path:
    """The kit's MathJax copy under ``build/mathjax/`` (one folder per package version and settings), made
    on first use, whole or not at all (copied aside, then renamed into place: grading workers may race)."""
    key = hashlib.sha256(mathjax_settings_js().encode()).hexdigest()[:12]
    target = MATHJAX_CACHE / key / "mathjax"
    if target.is_dir():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=".copy-", dir=target.parent))
    try:
        copy_mathjax(scratch)
        try:
            (scratch / "mathjax").rename(target)
        except OSError:
            if not target.is_dir():   # not another process's copy, put there first
                raise
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return target


def link_mathjax(dest: Path) -> Path:
    """``dest/mathjax``: hard links to :func:`offline_mathjax` (copies where the file system refuses links),
    the kit's configuration file last; nothing to do when it is there already. Used for nbgrader's
    feedback folders (grading/nbgrader/mathjax.py): no space taken per student."""
    from nbconvert.utils.io import link_or_copy

    cache, target = offline_mathjax(), Path(dest) / "mathjax"
    settings = Path("config") / f"{MATHJAX_LOCAL}.js"
    if (target / settings).is_file() and os.path.samefile(target / settings, cache / settings):
        return target

    def last(folder, names):   # the configuration file is linked once all the rest is there
        return {settings.name} if Path(folder) == cache / settings.parent else set()

    shutil.copytree(cache, target, dirs_exist_ok=True, copy_function=link_or_copy, ignore=last)
    link_or_copy(str(cache / settings), str(target / settings))
    return target


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
