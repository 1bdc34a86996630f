"""``make release``: the student version of HW4 in ``build/release/`` (a folder and a zip).

``build/release/hw4/`` holds nbgrader's student notebooks (solutions and hidden tests removed, the
header in front), the student ``hwlib`` (every solution region replaced by ``raise
NotImplementedError``: grading/release/strip.py), the student README (grading/release/student_README.md) and
the student's install files ``environment.yml``, ``environment-cpu.yml`` and ``requirements.txt``
(pyproject.toml's student dependencies, no grading or test tools: grading/release/environments.py).
Grading code, tests, benchmarks and hidden checks stay behind. Before it returns, the release is
checked: no secret of grading/release/leaks.py anywhere in the folder or the zip, and every module of
the student ``hwlib`` imports.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

from course.paths import COURSE, RELEASE, REPO
from course import timings
from course.registry import Registry, load as load_registry

from ..autograde.sandbox import copy_regular_files, site_packages
from ..nbgrader.course_root import ASSIGNMENT, assemble, run_converter
from .environments import release_files
from .leaks import scan

__all__ = ["build_release", "student_readme", "check_imports"]

STUDENT_README = Path(__file__).with_name("student_README.md")


TIMES_NOTE = ("\n\nWall times measured with `python -m course.timings` from a fresh kernel, one notebook at a time; "
              "a busy machine (a load above its core count) makes a run slower than on your own laptop. "
              "Full MNIST, COCO and the ResNet-18 weights make the full runs of Q2-Q5 longer than on the built-in data.")


def student_readme(registry: Registry | None = None) -> str:
    """The release's README: ``student_README.md`` with the table of questions from the registry
    (each question's notebooks, points and the functions the student writes)."""
    registry = registry or load_registry()
    rows = ["| question | points | notebook | you write |", "|---|---|---|---|"]
    for name, q in registry.questions.items():
        notebooks = ", ".join(f"`{stem}.ipynb`" for stem in registry.notebooks_of(name))
        points = f"{q.points:g}" + (" extra credit" if q.extra_credit else "")
        by_module: dict[str, list[str]] = {}
        for task in registry.tasks_of(name):
            by_module.setdefault(task.module, []).extend(task.functions)
        tasks = "; ".join(f"`{module}`: " + ", ".join(f"`{f}`" for f in functions)
                          for module, functions in by_module.items())
        rows.append(f"| {name} {q.title} | {points} | {notebooks} | {tasks or 'derivations (Markdown)'} |")
    marker = "<!-- questions: the table below is generated from the course's question registry -->"
    template = STUDENT_README.read_text()
    if marker not in template:
        raise RuntimeError(f"{STUDENT_README}: the marker line {marker!r} is missing")
    times = "<!-- times: the table below is measured; grading/release/student_README.md says how -->"
    if times not in template:
        raise RuntimeError(f"{STUDENT_README}: the marker line {times!r} is missing")
    return template.replace(marker, "\n".join(rows)).replace(times, timings.table() + TIMES_NOTE)


def check_imports(hwlib_parent: Path) -> None:
    """Import every module of the student hwlib in a clean interpreter (only it and site-packages on the path)."""
    modules = sorted(".".join(p.relative_to(hwlib_parent).with_suffix("").parts)
                     for p in (hwlib_parent / "hwlib").rglob("*.py") if p.name != "__main__.py")
    modules = [m[: -len(".__init__")] if m.endswith(".__init__") else m for m in modules]
    code = ("import sys, importlib; sys.path[:] = [sys.argv[1]] + [p for p in sys.path if p] + sys.argv[2:]\n"
            "for m in " + repr(modules) + ":\n    importlib.import_module(m)\n"
            "import hwlib; assert hwlib.__file__.startswith(sys.argv[1]), hwlib.__file__\n")
    res = subprocess.run([sys.executable, "-I", "-S", "-c", code, str(hwlib_parent), *site_packages()],
                         capture_output=True, text=True, timeout=600, env={"PATH": os.environ.get("PATH", ""),
                                                                            "HWLIB_QUIET": "1"})
    if res.returncode != 0:
        raise RuntimeError(f"the student hwlib does not import:\n{res.stderr[-3000:]}")


def build_release(course: Path = COURSE, out: Path = RELEASE) -> Path:
    """Assemble the course, generate the student version, write folder and zip, check them; return the zip."""
    course = assemble(course)
    res = run_converter("generate_assignment", course)
    if not res["success"]:
        raise RuntimeError(f"nbgrader generate_assignment failed:\n{res.get('log', '')}\n{res.get('error', '')}")
    if out.exists():
        shutil.rmtree(out)
    dest = out / ASSIGNMENT
    copy_regular_files(course / "release" / ASSIGNMENT, dest)
    (dest / "README.md").write_text(student_readme())
    for name, text in release_files().items():  # environment.yml, environment-cpu.yml, requirements.txt
        (dest / name).write_text(text)
    # The course's JupyterLab settings, as in the kit (`python -m hwlib.lab` starts JupyterLab with them).
    shutil.copytree(REPO / "jupyter", dest / "jupyter")
    check_imports(dest)
    for junk in dest.rglob("__pycache__"):
        shutil.rmtree(junk)
    archive = out / f"{ASSIGNMENT}.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in sorted(dest.rglob("*")):
            if path.is_file():
                zf.write(path, path.relative_to(out).as_posix())
    leaks = scan(out)
    if leaks:
        listing = "\n".join(f"  {leak.path}: {leak.secret.kind} ({leak.secret.origin}): {leak.secret.text[:80]}"
                            for leak in leaks[:20])
        raise RuntimeError(f"the release leaks {len(leaks)} secret(s):\n{listing}")
    return archive
