"""pip users and conda users get the same kit: environment.yml pins what pyproject.toml pins."""

from __future__ import annotations

import re
import tomllib

from .conftest import REPO


def test_environment_yml_pins_match_pyproject():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    pinned = set(project["dependencies"]) | set(project["optional-dependencies"]["dev"])
    assert all("==" in dep for dep in pinned), "every direct dependency is pinned"
    env_lines = (REPO / "environment.yml").read_text().splitlines()
    conda = {m.group(1) for line in env_lines if (m := re.match(r"\s+- ([A-Za-z0-9_.\-]+==[^\s#]+)", line))}
    assert conda == pinned
    assert any("python=3.11" in line for line in env_lines)


def test_torch_pins_are_the_ones_on_this_machine():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert "torch==2.14.1" in project["dependencies"] and "torchvision==0.29.1" in project["dependencies"]


def test_ci_runs_exactly_make_test():
    assert "make test" in (REPO / ".ci" / "run").read_text()
    assert "make test" in (REPO / "README.md").read_text() and "make run" in (REPO / "README.md").read_text()
