"""make release: the student version holds no solution and no hidden test, imports, and is consistent."""

from __future__ import annotations

import ast
import fcntl
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import nbformat
import pytest

from course.execute import source_notebooks
from course.paths import REPO
from grading.autograde.sandbox import site_packages
from grading.nbgrader.course_root import ASSIGNMENT
from grading.release.build import build_release
from grading.release.environments import CPU_INDEX_ARGS, pins, release_files
from grading.release.leaks import scan, secrets
from course.registry import load as load_registry
from grading.release.strip import BEGIN, END, region_functions, solution_regions, student_modules

REGISTRY = load_registry()


def shared_release(tmp_path_factory) -> dict:
    """One release (course + student folder) per test session, shared by the xdist workers."""
    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent
    base = root / "grading-release"
    with open(root / "grading-release.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (base / "done").exists():
            shutil.rmtree(base, ignore_errors=True)
            build_release(course=base / "course", out=base / "release")
            (base / "done").write_text("ok")
    return {"course": base / "course", "release": base / "release", "folder": base / "release" / ASSIGNMENT}


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    return shared_release(tmp_path_factory)


def test_layout(release):
    folder = release["folder"]
    names = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())
    assert {nb.name for nb in source_notebooks()} <= set(names)
    assert {"README.md", "environment.yml", "environment-cpu.yml", "requirements.txt", "hwlib/__init__.py",
            "hwlib/layers.py", "hwlib/check/__init__.py"} <= set(names)
    assert "hwlib/check/protocol.py" not in names      # the grader's file protocol ships with the grader only
    for name in names:
        assert name.endswith((".ipynb", ".md", ".yml")) or name == "requirements.txt" or name.startswith("hwlib/") \
            or name in ("jupyter/README.md", "jupyter/settings/overrides.json"), name
        assert not name.startswith(("grading/", "course/", "tests/", "bench/")) and "__pycache__" not in name, name
    with zipfile.ZipFile(release["release"] / f"{ASSIGNMENT}.zip") as zf:
        assert sorted(zf.namelist()) == [f"{ASSIGNMENT}/{n}" for n in names]


def test_no_solution_and_no_hidden_test_anywhere(release):
    leaks = scan(release["release"])
    assert not leaks, [(leak.path, leak.secret.kind, leak.secret.text[:60]) for leak in leaks[:10]]
    for path in release["folder"].rglob("*"):
        if path.is_file():
            lines = {line.strip() for line in path.read_text(errors="replace").splitlines()}
            assert not lines & {BEGIN, END, "### BEGIN HIDDEN TESTS", "### END HIDDEN TESTS"}, path


def test_the_leak_scan_finds_what_it_looks_for(release, tmp_path):
    """A scan that cannot fail proves nothing: plant a solution line and a hidden case, find both."""
    planted = tmp_path / "planted"
    shutil.copytree(release["release"], planted)
    solution = next(s for s in secrets() if s.kind == "solution" and "layers.py" in s.origin)
    hidden = next(s for s in secrets() if s.kind == "hidden-check" and "seed" in s.text)
    layers = planted / ASSIGNMENT / "hwlib" / "layers.py"
    layers.write_text(layers.read_text() + f"\n# {solution.text}\n")
    nb_path = planted / ASSIGNMENT / source_notebooks()[0].name
    nb = nbformat.read(nb_path, as_version=4)
    nb.cells.append(nbformat.v4.new_markdown_cell(hidden.text))
    nbformat.write(nb, nb_path)
    kinds = {(leak.secret.kind, Path(leak.path).name) for leak in scan(planted)}
    assert ("solution", "layers.py") in kinds and ("hidden-check", nb_path.name) in kinds


def test_student_modules_are_stubs_with_everything_else_intact(release):
    for path in student_modules(REPO / "hwlib"):
        rel = path.relative_to(REPO)
        student = (release["folder"] / rel).read_text()
        reference_tree = ast.parse(path.read_text())
        student_tree = ast.parse(student)
        # Functions, classes and methods (not helpers nested inside a solution) and their docstrings stay.
        assert _api(student_tree) == _api(reference_tree), rel
        # One stub per region of an assigned function; a region the profile gives ships its code.
        text = path.read_text()
        regions = list(zip(solution_regions(text), region_functions(text)))
        given = [r for r, f in regions if f in REGISTRY.given]
        assert student.count("raise NotImplementedError") >= len(regions) - len(given), rel
        for region in given:
            assert "\n".join(region.body) in student, f"{rel}:{region.begin}: the given code is not shipped"


def _api(tree: ast.Module) -> list:
    """(name, docstring) of the module's functions and classes, and of the classes' methods."""
    out = []
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            out.append((node.name, ast.get_docstring(node)))
            if isinstance(node, ast.ClassDef):
                out += [(f"{node.name}.{m.name}", ast.get_docstring(m)) for m in node.body if isinstance(m, ast.FunctionDef)]
    return out


def _public_checks(folder: Path) -> subprocess.CompletedProcess:
    """``python -m hwlib.check`` against the hwlib in ``folder`` only (never the kit's)."""
    code = ("import sys, runpy; sys.path[:] = [sys.argv[1]] + [p for p in sys.path if p] + sys.argv[2:]; "
            "import hwlib; assert hwlib.__file__.startswith(sys.argv[1]), hwlib.__file__; "
            "sys.argv = ['hwlib.check']; runpy.run_module('hwlib.check', run_name='__main__')")
    return subprocess.run([sys.executable, "-I", "-S", "-c", code, str(folder), *site_packages()], cwd=folder,
                          capture_output=True, text=True, timeout=600,
                          env={"PATH": os.environ.get("PATH", ""), "HWLIB_QUIET": "1", "OMP_NUM_THREADS": "1"})


def test_public_checks_fail_on_the_release_and_pass_with_the_reference_put_back(release, tmp_path):
    res = _public_checks(release["folder"])
    assert res.returncode == 1, res.stdout + res.stderr
    failing = {line.split(":")[0].strip() for line in res.stdout.splitlines() if line.endswith("NOT IMPLEMENTED yet")}
    # Every check of an assigned task meets a stub; the checks that pass test given code only.
    assigned = {case.get("target", group.get("target")) for group in REGISTRY.hidden.values() for case in group["cases"]}
    assert assigned <= failing, (sorted(assigned - failing), res.stdout[-2000:])
    from hwlib.check import TARGETS
    assert res.stdout.splitlines()[-1].startswith(f"{len(TARGETS) - len(failing)}/{len(TARGETS)} checks pass"), res.stdout[-500:]
    restored = tmp_path / ASSIGNMENT
    shutil.copytree(release["folder"], restored)
    for path in student_modules(REPO / "hwlib"):
        shutil.copyfile(path, restored / path.relative_to(REPO))
    res = _public_checks(restored)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    assert "FAIL" not in res.stdout and "NOT IMPLEMENTED" not in res.stdout


def test_student_environment_is_the_homeworks_alone(release):
    """The release installs the student dependencies of pyproject.toml (conda, conda CPU-only, pip), no
    grading, report or test tool, and its README gives each path's one command."""
    folder = release["folder"]
    for name, text in release_files().items():
        assert (folder / name).read_text() == text, name
    student = set(pins("student"))
    requirements = {line for line in (folder / "requirements.txt").read_text().splitlines()
                    if line and not line.startswith("#")}
    assert requirements == student
    conda = (folder / "environment.yml").read_text()
    assert {line.strip()[2:] for line in conda.splitlines() if "==" in line} == student
    cpu = (folder / "environment-cpu.yml").read_text()
    assert "  - pytorch-cpu=2.14.1\n" in cpu and "  - torchvision=0.29.1\n" in cpu and "torch==" not in cpu
    for name in ("requirements.txt", "environment.yml", "environment-cpu.yml"):
        text = (folder / name).read_text().lower()
        for tool in ("nbgrader", "papermill", "pytest", "nbconvert", "mathjax", "notebook==", "-e ."):
            assert tool not in text, (name, tool)
    readme = (folder / "README.md").read_text()
    for command in ("conda env create -f environment.yml", "conda env create -f environment-cpu.yml",
                    "pip install -r requirements.txt", f"pip install -r requirements.txt {CPU_INDEX_ARGS}"):
        assert command in readme, command


def test_student_environment_has_what_the_release_imports(release):
    """Every package the release's hwlib and notebooks import comes with the student dependencies (a
    pin, or what a pin requires): nothing the student environment lacks, nothing only the kit has."""
    import importlib.metadata as md

    from packaging.requirements import Requirement

    folder = release["folder"]
    sources = [p.read_text() for p in (folder / "hwlib").rglob("*.py")]
    for path in sorted(folder.glob("*.ipynb")):
        sources += ["\n".join(line for line in c.source.splitlines() if not line.lstrip().startswith(("%", "!")))
                    for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code"]
    imported = set()
    for source in sources:
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.Import):
                imported |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                imported.add(node.module.split(".")[0])
    third_party = sorted(imported - set(sys.stdlib_module_names) - {"hwlib", "__future__"})
    # The distributions the student pins bring, following each installed distribution's requirements.
    closure, todo = set(), [Requirement(pin) for pin in pins("student")]
    while todo:
        req = todo.pop()
        name = req.name.lower().replace("_", "-")
        if name in closure or (req.marker and not req.marker.evaluate({"extra": ""})):
            continue
        closure.add(name)
        try:
            todo += [Requirement(r) for r in (md.requires(req.name) or [])]
        except md.PackageNotFoundError:  # not installed here (another platform's dependency)
            pass
    providers = md.packages_distributions()
    missing = {module: providers.get(module) for module in third_party
               if not {d.lower().replace("_", "-") for d in providers.get(module, [])} & closure}
    assert third_party and not missing, missing


def test_student_notebooks(release):
    for source in source_notebooks():
        nb = nbformat.read(release["folder"] / source.name, as_version=4)
        assert "restart the kernel" in nb.cells[0].source.lower()  # the course header comes first
        src = nbformat.read(source, as_version=4)
        graded = {c.metadata["nbgrader"]["grade_id"]: c for c in src.cells if c.metadata.get("nbgrader", {}).get("grade")}
        released = {c.metadata["nbgrader"]["grade_id"]: c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade")}
        # The profile's graded cells, with its points (nbgrader's: 0 for extra credit), and no other.
        listed = {gid for gid, c in REGISTRY.cells.items() if c.notebook == source.stem}
        assert set(released) == listed and listed <= set(graded), source.name
        for gid, cell in released.items():
            assert cell.metadata["nbgrader"].get("points") == REGISTRY.cells[gid].nbgrader_points, gid
            if cell.metadata["nbgrader"].get("solution"):
                assert "YOUR ANSWER HERE" in cell.source or "YOUR CODE HERE" in cell.source, gid
        others = {f"only-{p}" for p in REGISTRY.profiles if p != REGISTRY.profile}
        assert not any(set(c.metadata.get("tags", [])) & others for c in nb.cells), source.name


def test_no_answer_reaches_the_release_in_given_text(release):
    """Cells that state results students derive or report (tagged instructor-only) stay out of the
    release; the three found by reading a release as a student are gone, with a reason each."""
    import nbformat

    text = "\n".join(c.source for path in sorted(release["folder"].glob("*.ipynb"))
                     for c in nbformat.read(path, as_version=4).cells)
    assert r"$dX = dY\, W^\top$, $dW = X^\top dY$" not in text, "01's summary table states Q1's derivation answers"
    assert "here the two proofs are complete" not in text, "06 told students the proofs were done"
    assert "On raw pixels the seed's settings work" not in text, "02 explained what its report question asks"
    assert "Q2 stacks these layers" not in text  # the whole summary cell, not a sentence of it
    secrets_by_kind = {s.kind for s in secrets()}
    assert "instructor-only" in secrets_by_kind, "the leak scan must know the instructor-only cells"
    # The reference notebooks keep them (the report shows them).
    reference = nbformat.read(REPO / "notebooks" / "01_layers.ipynb", as_version=4)
    assert any("instructor-only" in c.metadata.get("tags", []) for c in reference.cells)


def test_the_course_has_an_exchange_and_formgrader_opens_with_the_course_settings(release, tmp_path):
    """formgrader finds nbgrader's exchange (no warning that it cannot be created), in the course and in
    a clone of it, and the TA's JupyterLab starts in the course folder with the course's settings."""
    from grading.nbgrader.course_root import clone, formgrader_command, load_config
    from hwlib.lab import SETTINGS
    for course in (release["course"], clone(release["course"], tmp_path / "copy")):
        root = load_config(course).Exchange.root
        assert root == str(course / "exchange") and (course / "exchange").is_dir(), root
        assert (course / "exchange").stat().st_mode & 0o777 == 0o777
    command = formgrader_command(release["course"])
    assert f"--LabApp.app_settings_dir={SETTINGS}" in command and command[-1] == "--LabApp.default_url=/formgrader"
    assert f"--ServerApp.root_dir={release['course']}" in command
