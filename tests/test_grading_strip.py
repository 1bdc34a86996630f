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
    # Given code, docstrings and validation are intact; a module docstring quoting the markers speaks
    # to students instead (their copy has no markers).
    assert '"""Square x."""' in out and 'raise ValueError("f: x must not be None")' in out
    assert out.startswith('"""The parts you write raise ``NotImplementedError``') and "BEGIN SOLUTION" not in out
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


# --- stubs that speak ---------------------------------------------------------------------------------

def test_a_stub_raises_the_message_of_its_function_and_the_docstring_speaks_to_students():
    out = strip_source(MODULE, "m.py", {"f": "f is yours to write (Q9: 2 points)", "Model.loss": "loss is yours"})
    namespace = {}
    exec(compile(out, "m.py", "exec"), namespace)
    with pytest.raises(NotImplementedError, match=r"^f is yours to write \(Q9: 2 points\)$"):
        namespace["f"](3)
    with pytest.raises(NotImplementedError, match="^loss is yours$"):
        namespace["Model"]().loss(1)
    assert "BEGIN SOLUTION" not in out and "``NotImplementedError``" in out.split('"""')[1]
    assert "ValueError" in out, "the input check around the region stays"


def test_every_task_function_gets_a_message_naming_its_question_points_and_an_existing_check():
    from course.registry import load
    from grading.release.strip import region_functions, stub_messages
    from hwlib.check import TARGETS

    registry = load()
    messages = stub_messages(registry)
    for task in registry.tasks:
        cell = registry.cells[task.cell]
        for function in task.functions:
            message = messages[function]
            assert message.startswith(f"{function} is yours to write ({task.question}: {cell.points:g} points")
            name = message.split("python -m hwlib.check ")[1].rstrip("`")
            assert name in TARGETS, (function, name)
    # The assembled student modules raise those messages.
    for path in student_modules(REPO / "hwlib"):
        text = path.read_text()
        student = strip_source(text, str(path), messages, registry.given)
        for function in region_functions(text, str(path)):
            if function in registry.given:   # shipped as given code in this profile: no stub
                assert f"{function} is yours" not in student, (path.name, function)
            else:
                assert repr(messages[function]) in student, (path.name, function)
        assert "BEGIN SOLUTION" not in student, path.name
