"""Adding a question touches only the files the README's "Adding a question" section names.

In a copy of the repository, a toy question "Q7: leaky ReLU" is added exactly as that section says:
a forward/backward pair with solution regions in ``hwlib/layers.py``, a row of the check table in
``hwlib/check/layers.py``, a registry entry ``course/questions/q7_leaky_relu.toml`` and a short
notebook ``notebooks/07_leaky_relu.ipynb``. Then, with nothing else changed, the release is built
(the stub and the announced task are in it) and a perfect and a buggy submission are autograded:
the perfect one gets Q7's points, the buggy one loses exactly those, every other question scoring
the same.
"""

from __future__ import annotations

import csv
import filecmp
import fnmatch
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from course.paths import REPO

pytestmark = pytest.mark.slow

LEAKY = '''

def leaky_relu_forward(x, alpha=0.01):
    """Leaky ReLU: x where x > 0, alpha * x elsewhere.

    Inputs:
    - x: array of any shape
    - alpha: the slope for x <= 0

    Returns (out, cache): out shaped like x.
    """
    ### BEGIN SOLUTION
    out = np.where(x > 0, x, alpha * x)
    ### END SOLUTION
    return out, (x, alpha)


def leaky_relu_backward(dout, cache):
    """Backward pass of leaky ReLU: dout where x > 0, alpha * dout elsewhere."""
    x, alpha = cache
    ### BEGIN SOLUTION
    dx = np.where(x > 0, dout, alpha * dout)
    ### END SOLUTION
    return dx
'''

REGISTRY_ENTRY = '''# Q7: leaky ReLU (the extensibility test's toy question).

id = "Q7"
title = "Leaky ReLU"
points = 4

[tasks]
leaky_relu = { module = "hwlib/layers.py", functions = ["leaky_relu_forward", "leaky_relu_backward"], cell = "q7-leaky-relu-test" }

[cells]
q7-leaky-relu-test = { notebook = "07_leaky_relu", part = "leaky_relu", points = 4, graded = "auto" }

[hidden.q7-leaky-relu-test]
target = "leaky_relu"
budget_s = 30
cases = [
    { id = "leaky-2d-float64", draw = { shape = [6, 5] }, dtype = "float64", seed = 7101, points = 2 },
    { id = "leaky-4d-float32", draw = { shape = [2, 3, 4, 5] }, dtype = "float32", seed = 7102, points = 2 },
]
'''


def _notebook() -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    nb.metadata = {"kernelspec": {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"},
                   "language_info": {"name": "python", "version": "3.11"}}
    test = nbformat.v4.new_code_cell('"""leaky_relu_forward / leaky_relu_backward (4 points)."""\ncheck("leaky_relu")')
    test.metadata["nbgrader"] = {"grade": True, "grade_id": "q7-leaky-relu-test", "locked": True, "points": 4,
                                 "schema_version": 3, "solution": False}
    nb.cells = [nbformat.v4.new_markdown_cell("# Q7: leaky ReLU\n\nWrite `leaky_relu_forward` and "
                                              "`leaky_relu_backward` in `hwlib/layers.py`."),
                nbformat.v4.new_code_cell("from hwlib.check import check"), test]
    return nb


def add_question(repo: Path, check_row: str) -> None:
    """Q7, added as the README says: four files, nothing else."""
    layers = repo / "hwlib" / "layers.py"
    layers.write_text(layers.read_text().rstrip("\n") + "\n" + LEAKY)
    table = repo / "hwlib" / "check" / "layers.py"
    table.write_text(table.read_text().rstrip("\n") + "\n" + check_row)
    (repo / "course" / "questions" / "q7_leaky_relu.toml").write_text(REGISTRY_ENTRY)
    nbformat.write(_notebook(), repo / "notebooks" / "07_leaky_relu.ipynb")


def copy_repository(dest: Path) -> Path:
    """The repository's files as git sees them (tracked and untracked, not ignored), copied to ``dest``."""
    listing = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=REPO, check=True,
                             capture_output=True, text=True).stdout.split("\0")
    for rel in filter(None, listing):
        source = REPO / rel
        if source.is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dest / rel)
    return dest


def changed_files(before: Path, after: Path) -> set[str]:
    found = set()
    for path in after.rglob("*"):
        if path.is_file() and "__pycache__" not in path.parts:
            rel = path.relative_to(after)
            if not (before / rel).exists() or not filecmp.cmp(before / rel, path, shallow=False):
                found.add(rel.as_posix())
    return found


def readme_recipe() -> list[str]:
    """The file patterns the README's "Adding a question" section names (``<...>`` is a wildcard)."""
    text = (REPO / "README.md").read_text()
    section = text.split("## Adding a question", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"^\d+\. `([^`]+)`", section, flags=re.M)


def _run(repo: Path, *args: str, timeout: int = 900) -> str:
    env = {**os.environ, "HWLIB_QUIET": "1", "OMP_NUM_THREADS": "1"}
    res = subprocess.run([sys.executable, *args], cwd=repo, capture_output=True, text=True, timeout=timeout, env=env)
    assert res.returncode == 0, f"{' '.join(args)} failed:\n{res.stdout[-3000:]}\n{res.stderr[-3000:]}"
    return res.stdout


CHECK_ROW = '''

def _leaky_relu_inputs(rng, dtype, shape=(4, 5)):
    return {"x": _away_from_zero(rng, shape, dtype), "dout": rng.standard_normal(shape).astype(dtype)}


def _leaky_relu_ref(i):
    import torch
    x = torch.tensor(i["x"], requires_grad=True)
    out = torch.nn.functional.leaky_relu(x, 0.01)
    (dx,) = torch.autograd.grad(out, (x,), torch.tensor(i["dout"]))
    return {"out": out.detach().numpy(), "dx": dx.numpy()}


TARGETS += (
    layer_target("leaky_relu", LayerCall(_L, "leaky_relu_forward", "leaky_relu_backward", ("x",), ("dx",)),
                 _leaky_relu_inputs, _leaky_relu_ref, ({"shape": (4, 5)}, {"shape": (2, 3, 4)})),
)
'''


def test_adding_a_question_touches_only_the_files_the_readme_names(tmp_path):
    recipe = readme_recipe()
    assert len(recipe) <= 4, f"the README's recipe names {len(recipe)} files: {recipe}"
    original = copy_repository(tmp_path / "original")
    repo = copy_repository(tmp_path / "repo")
    add_question(repo, CHECK_ROW)
    touched = changed_files(original, repo)
    patterns = [re.sub(r"<[^>]+>", "*", p) for p in recipe]
    assert len(touched) == 4 and all(any(fnmatch.fnmatch(t, p) for p in patterns) for t in touched), \
        f"touched {sorted(touched)}; the README names {recipe}"

    # The public check runs on the reference and fails on the stub with the task's message.
    _run(repo, "-m", "hwlib.check", "leaky_relu")
    # The release: the stub, the announced task, the notebook.
    _run(repo, "-m", "grading", "release")
    release = repo / "build" / "release" / "hw4"
    assert "raise NotImplementedError" in (release / "hwlib" / "layers.py").read_text().split("def leaky_relu_forward")[1]
    assert "`leaky_relu_forward`, `leaky_relu_backward`" in (release / "README.md").read_text()
    assert (release / "07_leaky_relu.ipynb").exists()

    # A perfect and a buggy submission (the buggy one's leaky ReLU is a plain ReLU).
    samples = tmp_path / "samples"
    _run(repo, "-m", "grading", "samples", str(samples))
    subs = tmp_path / "submissions"
    shutil.copytree(samples / "perfect", subs / "perfect")
    shutil.copytree(samples / "perfect", subs / "buggy")
    layers = subs / "buggy" / "hw4" / "hwlib" / "layers.py"
    text = layers.read_text()
    assert "out = np.where(x > 0, x, alpha * x)" in text
    layers.write_text(text.replace("out = np.where(x > 0, x, alpha * x)", "out = np.maximum(x, 0)"))
    _run(repo, "-m", "grading", "autograde", str(subs), "--no-execute", "--no-nbgrader-feedback")
    with open(repo / "build" / "course" / "grades.csv") as fh:
        rows = {row["student"]: row for row in csv.DictReader(fh)}
    assert float(rows["perfect"]["Q7"]) == 4
    assert float(rows["buggy"]["Q7"]) == 0
    others = [q for q in rows["perfect"] if re.fullmatch(r"Q\d+", q) and q != "Q7"]
    assert others and all(rows["perfect"][q] == rows["buggy"][q] for q in others), (rows["perfect"], rows["buggy"])
