"""``make release``: the student version of HW4 in ``build/release/`` (a folder and a zip).

``build/release/hw4/`` holds nbgrader's student notebooks (solutions and hidden tests removed, the
header in front), the student ``hwlib`` (every solution region replaced by ``raise
NotImplementedError``: grading/strip.py), the student README (grading/student_README.md) and
``environment.yml`` (the kit's, without the line that installs the kit itself). Grading code, tests,
benchmarks and hidden checks stay behind. Before it returns, the release is checked: no secret of
grading/leaks.py anywhere in the folder or the zip, and every module of the student ``hwlib``
imports.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

from .course import ASSIGNMENT, BUILD, COURSE, assemble, run_converter
from .execute import REPO
from .leaks import scan
from .sandbox import copy_regular_files, site_packages

__all__ = ["RELEASE", "build_release", "student_environment", "check_imports"]

RELEASE = BUILD / "release"
STUDENT_README = Path(__file__).with_name("student_README.md")


def student_environment(path: Path = REPO / "environment.yml") -> str:
    """The kit's conda environment, minus the editable install of the kit (students have no pyproject)."""
    lines = [line for line in path.read_text().splitlines()
             if line.strip() not in ("- -e .", "- -e .[dev]")]
    header = "# Generated from the kit's environment.yml by grading/release.py (the same pins).\n"
    return header + "\n".join(lines) + "\n"


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
    shutil.copyfile(STUDENT_README, dest / "README.md")
    (dest / "environment.yml").write_text(student_environment())
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
