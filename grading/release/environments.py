"""Every install file, written from the one list of pins in ``pyproject.toml``.

``pyproject.toml`` holds the pins: ``dependencies`` is what ``hwlib`` needs (the student's
environment), the ``instructor`` extra adds the course build, report and grading tools, ``dev`` the
tests. From it come:

* the kit's ``environment.yml`` and ``environment-cpu.yml`` (the instructor's conda environments,
  committed; ``tests/test_packaging.py`` fails when they differ from what this module writes:
  regenerate them with ``.venv/bin/python -m grading.release.environments``);
* the release's ``environment.yml``, ``environment-cpu.yml`` and ``requirements.txt`` (the student's,
  written by ``make release``).

The ``-cpu`` conda files take conda-forge's CPU-only build of PyTorch (``pytorch-cpu``, the same
version) instead of PyPI's wheel, which on Linux pulls about 4 GB of NVIDIA CUDA libraries. For pip,
the CPU-only wheels come from PyTorch's own index (:data:`CPU_INDEX_ARGS`: ``make ... TORCH=cpu`` in
the kit, one documented command in the release).
"""

from __future__ import annotations

import argparse
import re
import sys
import tomllib
from pathlib import Path

from course.paths import REPO

__all__ = ["CPU_INDEX", "CPU_INDEX_ARGS", "CONDA_CPU", "ENV_NAME", "pins", "conda_environment",
           "requirements_txt", "kit_files", "release_files", "main"]

#: PyTorch's CPU-only wheel index (torch ``2.14.1+cpu``, torchvision ``0.29.1+cpu``); PyPI stays the
#: index for everything else, and ``==2.14.1`` admits the ``+cpu`` local versions.
CPU_INDEX = "https://download.pytorch.org/whl/cpu"
CPU_INDEX_ARGS = f"--index-url {CPU_INDEX} --extra-index-url https://pypi.org/simple"
#: conda-forge packages replacing the PyPI wheels in the CPU environment (same versions). The
#: ``pytorch-cpu`` metapackage pins the ``cpu_*`` build of ``pytorch``; torchvision follows it.
CONDA_CPU = {"torch": "pytorch-cpu", "torchvision": "torchvision"}
ENV_NAME = "eecs545-hw4"
PYTHON = "3.11"
GROUPS = ("student", "instructor", "dev")


def pins(*groups: str, pyproject: Path = REPO / "pyproject.toml") -> list[str]:
    """The pinned requirements of ``groups`` in pyproject order: ``student`` is the project's
    ``dependencies``, the others its optional-dependency groups of that name."""
    project = tomllib.loads(pyproject.read_text())["project"]
    out: list[str] = []
    for group in groups:
        if group not in GROUPS:
            raise ValueError(f"unknown dependency group {group!r}: expected one of {GROUPS}")
        out += project["dependencies"] if group == "student" else project["optional-dependencies"][group]
    return out


def _name_version(pin: str) -> tuple[str, str]:
    match = re.fullmatch(r"([A-Za-z0-9_.\-]+)==([^\s;]+)", pin)
    if not match:
        raise ValueError(f"{pin!r} is not pinned with == (pyproject.toml pins every direct dependency)")
    return match.group(1), match.group(2)


def conda_environment(requirements: list[str], *, header: str, cpu: bool = False, editable: bool = False) -> str:
    """A conda environment file: Python from conda-forge, the pins through pip; with ``cpu`` PyTorch
    and torchvision from conda-forge's CPU-only builds instead (pip then leaves them alone)."""
    conda = [f"python={PYTHON}", "pip"]
    pip = list(requirements)
    if cpu:
        versions = dict(_name_version(pin) for pin in requirements)
        conda += [f"{CONDA_CPU[name]}={versions[name]}" for name in CONDA_CPU]
        pip = [pin for pin in pip if _name_version(pin)[0] not in CONDA_CPU]
    pip += ["-e ."] if editable else []
    lines = [*(f"# {line}".rstrip() for line in header.strip().splitlines()),
             f"name: {ENV_NAME}", "channels:", "  - conda-forge", "dependencies:",
             *(f"  - {spec}" for spec in conda), "  - pip:", *(f"      - {pin}" for pin in pip)]
    return "\n".join(lines) + "\n"


def requirements_txt(requirements: list[str], *, header: str) -> str:
    """A pip requirements file: the pins, one per line."""
    return "\n".join([*(f"# {line}".rstrip() for line in header.strip().splitlines()), *requirements]) + "\n"


def kit_files() -> dict[str, str]:
    """The kit's conda environments (the instructor's: everything ``make`` installs, and the kit)."""
    everything = pins(*GROUPS)
    source = ("Generated from pyproject.toml by grading/release/environments.py; regenerate with\n"
              "`.venv/bin/python -m grading.release.environments` (tests/test_packaging.py checks it).\n")
    return {
        "environment.yml": conda_environment(everything, editable=True, header=(
            "Conda environment of the EECS 545 HW4 kit (the instructor's: the course build, grading, tests).\n"
            + source + f"  conda env create -f environment.yml && conda activate {ENV_NAME}\n"
            "PyTorch comes from PyPI: on Linux that is the CUDA build (about 4 GB of NVIDIA libraries).\n"
            "No NVIDIA GPU? environment-cpu.yml is the same with conda-forge's CPU-only PyTorch.")),
        "environment-cpu.yml": conda_environment(everything, editable=True, cpu=True, header=(
            "Conda environment of the EECS 545 HW4 kit with conda-forge's CPU-only PyTorch (no NVIDIA GPU).\n"
            + source + f"  conda env create -f environment-cpu.yml && conda activate {ENV_NAME}")),
    }


def release_files() -> dict[str, str]:
    """The student's install files (what the homework needs, no grading or test tools)."""
    student = pins("student")
    source = "Generated from the course kit's pyproject.toml (its student dependencies).\n"
    return {
        "environment.yml": conda_environment(student, header=(
            "Conda environment for EECS 545 HW4.\n" + source
            + f"  conda env create -f environment.yml && conda activate {ENV_NAME}\n"
            "No NVIDIA GPU? environment-cpu.yml is the same with conda-forge's CPU-only PyTorch (far smaller).")),
        "environment-cpu.yml": conda_environment(student, cpu=True, header=(
            "Conda environment for EECS 545 HW4 with conda-forge's CPU-only PyTorch (no NVIDIA GPU needed).\n"
            + source + f"  conda env create -f environment-cpu.yml && conda activate {ENV_NAME}")),
        "requirements.txt": requirements_txt(student, header=(
            "pip requirements for EECS 545 HW4 (Python 3.11).\n" + source
            + "  python3.11 -m venv .venv && .venv/bin/pip install -r requirements.txt\n"
            "No NVIDIA GPU? Add PyTorch's CPU-only wheel index (far smaller):\n"
            f"  .venv/bin/pip install -r requirements.txt {CPU_INDEX_ARGS}")),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m grading.release.environments",
                                     description="Write the kit's conda environment files from pyproject.toml.")
    parser.add_argument("--check", action="store_true", help="only say whether the committed files are up to date")
    args = parser.parse_args(argv)
    stale = [name for name, text in kit_files().items()
             if not (REPO / name).exists() or (REPO / name).read_text() != text]
    if args.check:
        for name in stale:
            print(f"{name} is out of date: python -m grading.release.environments", file=sys.stderr)
        return 1 if stale else 0
    for name in stale:
        (REPO / name).write_text(kit_files()[name])
        print(f"wrote {name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
