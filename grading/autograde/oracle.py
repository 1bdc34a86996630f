"""The oracle layers a model check runs on, built from the reference and nothing more.

A check of a model (Q2-Q4) replaces the layers of *other* questions by correct ones, so that a bug
in Q1 costs points in Q1 only (the SoftmaxClassifier check then depends on the student's
``softmax_loss`` and model code, not on their ``fc_forward``). Those layers must not hand the
student a reference for anything graded in the same run, so for each set of families
:func:`build` writes a module ``hw4_oracle`` holding *only* their functions, taken from the kit's
reference ``hwlib/layers.py`` (and the ``hwlib/validation.py`` helpers it uses: one copy of the
logic, no PyTorch); the hidden checks mount its folder read-only in the sandboxes of the groups that
name those families, and in no other (``hidden.py``).
"""

from __future__ import annotations

import ast
import os
from pathlib import Path

from course.paths import REPO

__all__ = ["FAMILIES", "MODULE", "build"]

FAMILIES = {"fc": ("fc_forward", "fc_backward"), "relu": ("relu_forward", "relu_backward"),
            "softmax": ("softmax_loss",), "conv": ("conv_forward", "conv_backward"),
            "pool": ("max_pool_forward", "max_pool_backward")}
MODULE = "hw4_oracle"
LAYERS = REPO / "hwlib" / "layers.py"


def _inline(module: str) -> str:
    """The source of the kit's ``hwlib/<module>.py`` for inlining (its ``__future__`` import dropped)."""
    path = REPO / "hwlib" / f"{module}.py"
    tree = ast.parse(path.read_text())
    if any(isinstance(n, ast.ImportFrom) and n.level for n in ast.walk(tree)):
        raise ValueError(f"{path.relative_to(REPO)} imports other hwlib modules: the oracle inlines only "
                         "modules that import nothing of hwlib")
    return "\n".join(ast.get_source_segment(path.read_text(), n) for n in tree.body
                     if not (isinstance(n, ast.ImportFrom) and n.module == "__future__"))


def source(families) -> str:
    """The text of ``hw4_oracle`` for ``families`` (keys of :data:`FAMILIES`)."""
    unknown = sorted(set(families) - set(FAMILIES))
    if unknown:
        raise ValueError(f"unknown oracle families {unknown}; expected some of {sorted(FAMILIES)}")
    wanted = {f for family in families for f in FAMILIES[family]}
    others = {f for names in FAMILIES.values() for f in names} - wanted
    text = LAYERS.read_text()
    tree = ast.parse(text)
    parts = [f'"""Oracle layers {", ".join(sorted(families))}: generated from hwlib/layers.py by '
             'grading/autograde/oracle.py."""', "from __future__ import annotations"]
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and node.module == "__future__":
            continue
        if isinstance(node, ast.ImportFrom) and node.level:
            parts.append(_inline(node.module))
            continue
        if isinstance(node, ast.FunctionDef) and node.name in others:
            continue                     # a layer of a question this check grades: never in the oracle
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets):
            continue
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant):
            continue                     # the module docstring
        parts.append(ast.get_source_segment(text, node))
    parts.append(f"__all__ = {sorted(wanted)!r}")
    return "\n\n".join(parts) + "\n"


def build(folder: Path, families) -> Path:
    """Write ``folder/hw4_oracle.py`` for ``families`` (readable by the sandbox's uid); return ``folder``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{MODULE}.py"
    path.write_text(source(families))
    os.chmod(folder, 0o755)
    os.chmod(path, 0o644)
    return folder
