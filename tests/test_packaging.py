"""Every install path installs the same pins: pyproject.toml holds them (the student's dependencies, the
instructor's and the tests' extras), the conda files are generated from it, and the Makefile asks
PyTorch's CPU index only when told to (TORCH=cpu)."""

from __future__ import annotations

import os
import re
import subprocess
import tomllib

import pytest

from grading.release.environments import CONDA_CPU, CPU_INDEX, CPU_INDEX_ARGS, kit_files, pins

from .conftest import REPO

# The homework's needs (issue 16) and what a student never runs.
STUDENT_NEEDS = {"numpy", "scipy", "matplotlib", "h5py", "torch", "torchvision", "tqdm", "mlxtend", "pooch",
                 "jupyterlab", "ipywidgets", "ipykernel", "nbclient", "nbformat"}
INSTRUCTOR_ONLY = {"nbgrader", "papermill", "pytest", "pytest-xdist", "nbconvert", "notebook",
                   "jupyter-server-mathjax"}


def _names(requirements) -> set[str]:
    return {re.split(r"[=<>!~\[; ]", r, maxsplit=1)[0].lower() for r in requirements}


def _environment_pins(text: str) -> tuple[set[str], set[str]]:
    """(conda specs, pip pins) of a conda environment file."""
    conda = set(re.findall(r"^  - ([A-Za-z0-9_.\-]+=[^\s#=][^\s#]*)$", text, flags=re.M))
    pip = set(re.findall(r"^      - ([A-Za-z0-9_.\-]+==[^\s#]+)$", text, flags=re.M))
    return conda, pip


def test_every_direct_dependency_is_pinned_once():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    groups = [project["dependencies"], *project["optional-dependencies"].values()]
    everything = [dep for group in groups for dep in group]
    assert all(re.fullmatch(r"[A-Za-z0-9_.\-]+==[^\s;]+", dep) for dep in everything), everything
    assert len(_names(everything)) == len(everything), "a package pinned in two groups"
    assert set(project["optional-dependencies"]) == {"instructor", "dev"}


def test_the_student_dependencies_are_the_homeworks_and_no_more():
    student = _names(pins("student"))
    assert STUDENT_NEEDS <= student, STUDENT_NEEDS - student
    assert not student & INSTRUCTOR_ONLY
    assert INSTRUCTOR_ONLY <= _names(pins("instructor", "dev"))


def test_torch_pins_are_the_ones_on_this_machine():
    assert {"torch==2.14.1", "torchvision==0.29.1"} <= set(pins("student"))


def test_kit_environment_files_are_generated_from_pyproject():
    """environment.yml and environment-cpu.yml are what grading/release/environments.py writes."""
    for name, text in kit_files().items():
        assert (REPO / name).read_text() == text, (
            f"{name} is out of date: .venv/bin/python -m grading.release.environments")


def test_conda_environments_pin_what_pyproject_pins():
    everything = set(pins("student", "instructor", "dev"))
    conda, pip = _environment_pins((REPO / "environment.yml").read_text())
    assert pip == everything and conda == {"python=3.11"}
    # The CPU variant: the same versions, torch and torchvision from conda-forge's CPU build.
    text = (REPO / "environment-cpu.yml").read_text()
    conda, pip = _environment_pins(text)
    versions = dict(pin.split("==") for pin in everything)
    assert conda == {"python=3.11"} | {f"{CONDA_CPU[name]}={versions[name]}" for name in CONDA_CPU}
    assert conda >= {"pytorch-cpu=2.14.1", "torchvision=0.29.1"}
    assert pip == {pin for pin in everything if pin.split("==")[0] not in CONDA_CPU}
    for env_file in ((REPO / "environment.yml").read_text(), text):
        assert "conda-forge" in env_file and "      - -e .\n" in env_file


def _make_n(tmp_path, *args: str, stamp: str | None = None) -> subprocess.CompletedProcess:
    """``make -n -B venv`` with a throwaway venv path (the checkout's .venv is never touched); the
    caller's make variables (MAKEFLAGS, TORCH) are dropped so only ``args`` count."""
    venv = tmp_path / "venv"
    if stamp is not None:
        venv.mkdir(parents=True, exist_ok=True)
        (venv / ".installed-stamp").write_text(stamp + "\n")
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL", "TORCH")}
    return subprocess.run(["make", "-n", "-B", "-C", str(REPO), f"VENV={venv}", *args, "venv"],
                          capture_output=True, text=True, env=env, timeout=60)


def _pip_install_line(res: subprocess.CompletedProcess) -> str:
    assert res.returncode == 0, res.stderr
    lines = [line for line in res.stdout.splitlines() if "pip install" in line and "-e " in line]
    assert len(lines) == 1, res.stdout
    return lines[0]


def test_makefile_default_installs_from_pypi(tmp_path):
    """The default (and .ci/run's `make test`) asks no other index: it installs wherever PyPI is reachable."""
    line = _pip_install_line(_make_n(tmp_path))
    assert "-e '.[instructor,dev]'" in line
    assert "--index-url" not in line and "download.pytorch.org" not in line


def test_makefile_passes_the_cpu_index_only_when_asked(tmp_path):
    res = _make_n(tmp_path, "TORCH=cpu")
    line = _pip_install_line(res)
    assert line.endswith(f"-e '.[instructor,dev]' {CPU_INDEX_ARGS}"), line
    assert "+cpu" in res.stdout, "TORCH=cpu checks that the CPU-only build was installed"
    assert "echo 'cpu' >" in res.stdout, "the venv remembers TORCH=cpu"


def test_makefile_keeps_the_venvs_torch_build(tmp_path):
    # A venv made with TORCH=cpu is reinstalled (pyproject changed) from the same index without TORCH=...
    assert _pip_install_line(_make_n(tmp_path / "a", stamp="cpu")).endswith(CPU_INDEX_ARGS)
    # ...and asking for the other build says to remove the venv instead of mixing the two.
    res = _make_n(tmp_path / "b", "TORCH=cpu", stamp="")
    assert res.returncode != 0 and "remove" in res.stderr and "TORCH=cpu" in res.stderr
    res = _make_n(tmp_path / "c", "TORCH=gpu")
    assert res.returncode != 0 and "TORCH=cpu" in res.stderr


def test_ci_runs_exactly_make_test():
    ci = (REPO / ".ci" / "run").read_text()
    assert "make test" in ci and "TORCH" not in ci, "CI takes the default path (PyTorch's CPU index may be unreachable)"
    readme = (REPO / "README.md").read_text()
    assert "make test" in readme and "make run" in readme


@pytest.mark.parametrize("text", ["make test TORCH=cpu", "make run TORCH=cpu", "environment-cpu.yml",
                                  "conda env create -f environment.yml"])
def test_readme_gives_each_install_path(text):
    assert text in (REPO / "README.md").read_text()


def test_the_cpu_index_is_the_same_everywhere():
    makefile = (REPO / "Makefile").read_text()
    assert f"TORCH_INDEX_cpu := {CPU_INDEX_ARGS}\n" in makefile
    assert CPU_INDEX in (REPO / "README.md").read_text()
