"""grading/release/strip.py: solution regions become stubs; everything else stays; bad markers fail loudly."""

from __future__ import annotations

import ast
import textwrap

import pytest

from course.paths import REPO
from grading.release.strip import StripError, solution_regions, strip_source, student_modules

MODULE = textwrap.dedent('''\
    """Doc: code between ``### BEGIN SOLUTION`` and ``### END SOLUTION`` is yours."""
    import numpy as np


    def f(x):
        """Square x."""
        if x is None:
            raise ValueError("f: x must not be None")
        ### BEGIN SOLUTION
        y = x ** 2
        ### END SOLUTION
        return y


    class Model:
        def loss(self, X):
            for i in range(3):
                ### BEGIN SOLUTION
                X = X + i
                ### END SOLUTION
            return X
''')


def test_regions_become_stubs_at_their_indentation():
    out = strip_source(MODULE)
    assert "y = x ** 2" not in out and "X = X + i" not in out
    assert "\n    # YOUR CODE HERE\n    raise NotImplementedError\n    return y\n" in out
    assert "            # YOUR CODE HERE\n            raise NotImplementedError\n" in out
    # Given code, docstrings (even one that quotes the markers) and validation are intact.
    assert '"""Square x."""' in out and 'raise ValueError("f: x must not be None")' in out
    assert out.splitlines()[0] == MODULE.splitlines()[0]
    namespace = {}
    exec(compile(out, "<student>", "exec"), namespace)
    with pytest.raises(NotImplementedError):
        namespace["f"](3)
    with pytest.raises(ValueError, match="x must not be None"):
        namespace["f"](None)


@pytest.mark.parametrize("bad, message", [
    ("def f():\n    ### BEGIN SOLUTION\n    return 1\n", "never closed"),
    ("def f():\n    return 1\n    ### END SOLUTION\n", "without a"),
    ("def f():\n    ### BEGIN SOLUTION\n    ### BEGIN SOLUTION\n    ### END SOLUTION\n", "inside the region"),
    ("### BEGIN SOLUTION\nX = 1\n### END SOLUTION\n", "outside a function"),
    ("def f():\n    if True:\n    ### BEGIN SOLUTION\n        return 1\n    ### END SOLUTION\n", "does not parse"),
])
def test_bad_markers_fail_the_release(bad, message):
    with pytest.raises(StripError, match=message):
        strip_source(bad, "bad.py")


def test_every_kit_module_strips_to_a_valid_student_module():
    modules = student_modules(REPO / "hwlib")
    assert any(p.name == "layers.py" for p in modules)
    for path in modules:
        text = path.read_text()
        regions = solution_regions(text, str(path))
        student = strip_source(text, str(path))
        tree = ast.parse(student)
        raises = [n for n in ast.walk(tree) if isinstance(n, ast.Raise) and isinstance(n.exc, ast.Name)
                  and n.exc.id == "NotImplementedError"]
        assert len(raises) >= len(regions), path
        assert not any(line.strip() in ("### BEGIN SOLUTION", "### END SOLUTION") for line in student.splitlines())
